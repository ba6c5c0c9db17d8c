"""datatrove pipeline steps (the framework FineWeb was built with), so that pagesieve drops into a
corpus builder's pipeline on the Local, Slurm or Ray executors. Needs `pip install -e ".[datatrove]"`;
runnable pipelines: examples/datatrove_*.py.

- `PagesieveWarcReader`: the HTML response records of WARC files as documents, `text` the page's HTML
  decoded with pagesieve's charset rules (`pagesieve.html.decode_html`: byte-order mark, HTTP header,
  `<meta charset>`, then detection). datatrove's own `WarcReader` works too, but it decodes by detection
  alone and skips the pages whose detection says UTF-8 when they are not.
- `PagesieveExtractor`: `doc.text` holds HTML (what a WARC reader gives) -> the project's renderer ->
  labeled lines -> `doc.text` = the kept lines; the page's `<title>` goes to `metadata["title"]`.
- `PagesieveFilter` (also importable as `PagesieveLabeler`): `doc.text` holds page text, one line a line
  (JSONL, WET, another extractor's output) -> labeled lines -> `doc.text` = the kept lines.

Both label documents in batches (`batch_pages`) and are datatrove filters: `exclusion_writer=` gets the
dropped documents (with `metadata["filter_reason"]`), the stats count `total`, `forwarded`, `dropped` and
`dropped_<reason>`, and `lines_<label>`. A line is kept when its label is in `keep`; `min_prob`
gives per-class thresholds, as `pagesieve predict --min-prob` does (`{"content": 0.8}`: a line is
content only with at least 0.8, else it takes its next most probable label). Reasons to drop:
`no_html` (HTML that does not parse), `bad_charset`, `empty` (nothing kept: kept with empty text when
`drop_empty=False`), `line_share` / `char_share` (under `min_line_share` / `min_char_share` of the
page's non-blank lines / characters kept). Every labeled document gets in its metadata:
`pagesieve_labels` (one per line of the page, None for blank lines), `pagesieve_line_share`,
`pagesieve_char_share`, and with `store_probs=True` `pagesieve_probs` (per line the probabilities of
`pagesieve.labels.LABELS` in that order, None for blank lines). A dropped document keeps all its lines
(for the extractor: the rendered page), so that the labels line up with them.
"""
from __future__ import annotations

import functools
import os

from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.readers.base import BaseDiskReader

from .dump import BAD_CHARSET, Limits, Record, line_labels, render
from .html import check_renderer
from .labels import check_keep
from .text import split_lines


@functools.lru_cache(maxsize=2)
def _load_predictor(model, device, runtime, threads):
    """One model per process, however many tasks the process runs one after the other."""
    import torch

    from .predictor import Predictor

    if threads:  # before loading: ONNX Runtime takes torch's thread count
        torch.set_num_threads(threads)
    return Predictor.from_pretrained(model, device=device, runtime=runtime)


class PagesieveFilter(BaseFilter):
    name = "🧹 pagesieve"

    def __init__(self, model: str | None = None, keep: tuple[str, ...] = ("content",), *,
                 min_prob: dict[str, float] | None = None, min_line_share: float = 0.0, min_char_share: float = 0.0,
                 drop_empty: bool = True, store_labels: bool = True, store_probs: bool = False,
                 exclusion_writer=None, batch_pages: int = 64, window_batch: int | None = None,
                 device: str | None = None, runtime: str = "auto", threads: int | None = None):
        """`model`: a model folder, a Hub id, "fast" or "cascade" (the released tiers; default: the released
        model). `window_batch`: windows per torch forward pass (the fast tier and the cascade: pages per
        fast-tier pass; default: the predictor's). `threads`: CPU threads of the model in each task
        (default: the executor's cpus_per_task where it sets one, else torch's default)."""
        from .predictor import check_min_prob

        super().__init__(exclusion_writer, batch_size=batch_pages)
        self.model, self.keep, self.device, self.runtime, self.threads = model, check_keep(keep), device, runtime, threads
        self.min_prob, self.min_line_share, self.min_char_share = check_min_prob(min_prob), min_line_share, min_char_share
        self.drop_empty, self.store_labels, self.store_probs = drop_empty, store_labels, store_probs
        self.window_batch = window_batch
        self._predictor = None

    @property
    def predictor(self):
        if self._predictor is None:  # loaded in the worker, not pickled with the pipeline
            threads = self.threads or int(os.environ.get("DATATROVE_CPUS_PER_TASK", "-1"))
            self._predictor = _load_predictor(self.model, self.device, self.runtime, max(threads, 0))
        return self._predictor

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_predictor"] = None
        return state

    def page_lines(self, doc) -> tuple[list[str] | None, str | None]:
        """The lines to label, or None and the reason to drop the document."""
        return split_lines(doc.text), None

    def filter(self, doc):
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch):
        pages = [self.page_lines(doc) for doc in batch]
        todo = [i for i, (lines, _) in enumerate(pages) if lines]
        labeled = self.predictor.line_probs([pages[i][0] for i in todo], self.window_batch) if todo else []
        results = [self._unlabeled(doc, reason or "empty") for doc, (_, reason) in zip(batch, pages)]
        for i, (page, probs) in zip(todo, labeled):
            results[i] = self._decide(batch[i], pages[i][0], page, probs)
        return results

    def _unlabeled(self, doc, reason: str):
        if self.drop_empty:
            return False, reason
        doc.text = ""
        return True

    def _decide(self, doc, lines: list[str], page, probs):
        labels = line_labels(page, probs, self.min_prob)
        nonblank = page.kept
        for i in nonblank:
            self.stat_update(f"lines_{labels[i]}")
        kept = [i for i in nonblank if labels[i] in self.keep]
        chars = sum(len(lines[i].strip()) for i in nonblank)
        line_share = len(kept) / len(nonblank) if nonblank else 0.0
        char_share = sum(len(lines[i].strip()) for i in kept) / chars if chars else 0.0
        meta = doc.metadata
        if self.store_labels:
            meta["pagesieve_labels"] = labels
        if self.store_probs:
            rows: list[list[float] | None] = [None] * len(lines)
            for i, p in zip(nonblank, probs.tolist()):
                rows[i] = [round(v, 4) for v in p]
            meta["pagesieve_probs"] = rows
        meta["pagesieve_line_share"], meta["pagesieve_char_share"] = round(line_share, 4), round(char_share, 4)

        reason = ("empty" if not kept else "line_share" if line_share < self.min_line_share
                  else "char_share" if char_share < self.min_char_share else None)
        if reason is None or (reason == "empty" and not self.drop_empty):
            doc.text = "\n".join(lines[i] for i in kept)
            return True
        doc.text = "\n".join(lines)  # what the labels refer to, for the exclusion writer
        return False, reason


PagesieveLabeler = PagesieveFilter  # its name in 0.2.0, for the code written then


class PagesieveExtractor(PagesieveFilter):
    """HTML in `doc.text` (str, or bytes decoded by `pagesieve.html.decode_html`) -> the lines the
    `renderer` gives ("innertext", "textcontent" or "wet": see `pagesieve.html`) -> labels -> `doc.text`
    = the kept lines, like datatrove's Trafilatura extractor. The page's title (`<title>`, else
    og:title) goes to `metadata["title"]`. Takes the arguments of `PagesieveFilter`."""

    name = "⛏ pagesieve"
    type = "🛢 - EXTRAC"

    def __init__(self, model: str | None = None, keep: tuple[str, ...] = ("content",), *,
                 renderer: str = "innertext", **kwargs):
        check_renderer(renderer)
        super().__init__(model, keep, **kwargs)
        self.renderer = renderer

    def page_lines(self, doc):
        rec = render(Record(doc.id, html=doc.text), self.renderer)
        if rec.error:
            return None, {"empty page": "empty", BAD_CHARSET: "bad_charset"}.get(rec.error, "no_html")
        if rec.title:
            doc.metadata["title"] = rec.title
        return rec.lines, None


class PagesieveWarcReader(BaseDiskReader):
    """The HTML response records of WARC files (.warc, .warc.gz) as documents: `text` the page's HTML
    (decoded as `pagesieve.html.decode_html` does, with the charset of the HTTP header when it has one),
    `id` the WARC-Record-ID, metadata `url` and `date`. Records that are not HTML, corrupt, over
    `max_record_bytes` or in a charset that cannot be told are skipped and counted (`skipped_<why>`).
    Takes the arguments of datatrove's readers (`data_folder`, `glob_pattern`, `limit`, ...)."""

    name = "🕷 Warc (pagesieve)"
    _requires_dependencies = ["warcio"]

    def __init__(self, data_folder, *args, max_record_bytes: int = Limits.record_bytes, **kwargs):
        super().__init__(data_folder, *args, **kwargs)
        self.max_record_bytes = max_record_bytes

    def read_file(self, filepath: str):
        from warcio.archiveiterator import ArchiveIterator

        from .dump import _warc_page
        from .html import CharsetError, decode_html

        limits = Limits(record_bytes=self.max_record_bytes)
        with self.data_folder.open(filepath, "rb") as fh:  # warcio reads gzip members itself
            for n, rec in enumerate(ArchiveIterator(fh)):
                with self.track_time():
                    page = _warc_page(rec, f"{filepath}/{n}", limits, kinds=("response",))  # HTML only
                    if page is None:  # request, metadata, warcinfo... records
                        continue
                    try:
                        html = None if page.error else decode_html(page.html, page.charset)
                    except CharsetError:
                        page.error = "bad charset"
                    if page.error:
                        self.stat_update("skipped_" + page.error.split(" (")[0].replace(" ", "_"))
                        continue
                    doc = self.get_document_from_dict(
                        {"text": html, "id": page.id, "url": page.extra["url"],
                         "date": rec.rec_headers.get_header("WARC-Date")}, filepath, n)
                if doc is not None:
                    yield doc
