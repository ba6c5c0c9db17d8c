"""`Predictor`: label every line of a page as content / caption / navigation / ui_chrome."""
from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from . import modeling
from .encoding import EncodedPage, PageEncoder, choose_labels, merge_window_probs  # noqa: F401 (choose_labels: API)
from .html import check_renderer
from .labels import LABELS, check_keep
from .text import split_lines


@dataclass
class LinePrediction:
    index: int  # position of the line in the page (blank lines are skipped, not renumbered)
    text: str
    label: str
    probs: dict[str, float]

    def __repr__(self):
        return f"LinePrediction({self.index}, {self.label}, {self.probs[self.label]:.2f}, {self.text[:40]!r})"


def as_lines(text_or_lines: str | bytes | Sequence[str]) -> list[str]:
    """A page's lines: text split at its line breaks, or a list of lines. Text given as bytes must be
    UTF-8 (ValueError otherwise: decode it with its charset first); anything that is not a page
    (None, a number, a dict, lines that are not str) is a TypeError, never labeled as its repr."""
    if isinstance(text_or_lines, (bytes, bytearray)):
        text_or_lines = _utf8(bytes(text_or_lines))
    if isinstance(text_or_lines, str):
        return split_lines(text_or_lines)  # as `pagesieve predict` does: U+2028 & co. stay inside a line
    if isinstance(text_or_lines, (Mapping, Set)) or not isinstance(text_or_lines, Iterable):  # None too
        raise TypeError(f"a page is text (str) or a list of lines (str), not {type(text_or_lines).__name__}")
    lines = list(text_or_lines)
    for i, line in enumerate(lines):
        if not isinstance(line, str):
            raise TypeError(f"line {i} of the page is {type(line).__name__}, not str")
    return lines


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"text given as bytes is not UTF-8 (byte {data[e.start]:#04x} at offset {e.start}): "
                         "decode it with its charset first") from None


class Predictor:
    def __init__(self, model, tokenizer, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda":
            model = model.to(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.onnx = None  # an OnnxForward when use_onnx() was called
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.encoder = PageEncoder(tokenizer, **modeling.encoding_settings(model))

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None,
                        runtime: str = "torch") -> "Predictor":
        """Load a model; CUDA when available. `path`: a model folder (a release or an exported folder),
        a Hugging Face Hub id "org/name" (downloaded once into the Hub cache; offline, from that cache),
        or None: the released model (`model/` in a checkout, else the copy installed with the package);
        "fast": the released fast tier (`model/fast/`: a page transformer over cheap line vectors);
        "cascade": its own fast model on every line, then the base model on the lines that one is unsure of
        (`model/cascade/`, its fast model in `model/cascade/fast/`).

        `runtime` on a CPU: "torch" (fp32), "torch-int8" (torch dynamic quantization: faster, less
        accurate), "torch-bf16" (bfloat16), "onnx" (ONNX Runtime, fp32), "onnx-int8" (ONNX Runtime with
        int8 weights: the fastest, about as accurate as fp32), or "auto" (onnx-int8 on a CPU, torch on a
        GPU). The fast tier runs with torch only: "torch" (fp32), "torch-bf16", or "auto" (bf16 where
        the hardware does it natively, else fp32). The cascade passes `runtime` to its base model, and
        to its fast tier when the fast tier has it (else "auto"), or takes "FAST+BASE" (e.g. "torch+onnx-int8")."""
        from .onnxrt import resolve_runtime

        folder = modeling.resolve(path)
        from . import cascade, fast

        if cascade.is_cascade_dir(folder):  # a fast model, then the base model on the lines it is unsure of
            return cascade.CascadePredictor.from_folder(folder, device, runtime)
        if fast.is_fast_dir(folder):  # the fast tier: a page transformer over cheap line vectors
            fast.resolve_runtime(runtime, "cpu")  # one it lacks: refused before anything loads
            return fast.FastPredictor(fast.load(folder), modeling.load_tokenizer(folder), device, runtime)
        predictor = cls(modeling.load(folder), modeling.load_tokenizer(folder), device)
        runtime = resolve_runtime(runtime, predictor.device.type)
        if runtime.startswith("onnx"):
            predictor.use_onnx(int8=runtime.endswith("int8"))
        elif runtime == "torch-int8":
            predictor.quantize_int8()
        elif runtime == "torch-bf16":
            predictor.model = predictor.model.to(torch.bfloat16)
        return predictor

    # -- the core: pages of lines -> per-line probabilities ---------------------------
    def encode(self, pages: Sequence[Sequence[str]]) -> list[EncodedPage]:
        """Tokenize pages into windows (CPU work that can run while the model is busy)."""
        return self.encoder.encode_many(_pages(pages))

    @property
    def default_batch_size(self) -> int:
        """Windows per torch forward pass: large on a GPU; on a CPU 4, as 16 x 12 heads x 256 x 256
        attention scores no longer fit the cache (onnx-int8 in batches on the dev pages: 4 windows
        19.5-20 pages/s, 8: 18.3, 16: 17.4). ONNX Runtime runs each window alone: see OnnxForward."""
        return 128 if self.device.type == "cuda" else 4

    def ahead(self, encoded: list[EncodedPage], batch_size: int | None = None) -> list[np.ndarray] | None:
        """Work of `probs` that can run before the model is done with the pages before these (a dump runs it in
        its reading thread). None here: nothing. The cascade returns its fast tier's probabilities, and a dump
        then calls `probs(encoded, batch_size, ahead)`; a wrapper that overrides `probs` must take that third
        argument, or return None from `ahead`."""
        return None

    @torch.inference_mode()
    def probs(self, encoded: list[EncodedPage], batch_size: int | None = None) -> list[np.ndarray]:
        """Per page, (non-blank lines, classes) probabilities. With torch, windows of all pages are
        batched together, sorted by length so little is spent on padding; ONNX Runtime runs each
        window alone, several at once, so that int8 never depends on a page's batch neighbours
        (`batch_size` does not apply: see OnnxForward)."""
        check_batch_size(batch_size)
        jobs = [(p, w) for p, page in enumerate(encoded) for w in range(len(page.windows))]
        jobs.sort(key=lambda j: len(encoded[j[0]].windows[j[1]].input_ids))
        if self.onnx is not None:
            batches, run = [[j] for j in jobs], self.onnx.map
        else:
            size = batch_size or self.default_batch_size
            batches, run = [jobs[b:b + size] for b in range(0, len(jobs), size)], map

        def forward(batch):
            return self._forward([encoded[p].windows[w] for p, w in batch])

        out: dict[tuple[int, int], np.ndarray] = {}
        for batch, probs in zip(batches, run(forward, batches)):
            out.update(zip(batch, probs))
        return [merge_window_probs(page, [out[(p, w)] for w in range(len(page.windows))], len(self.labels))
                for p, page in enumerate(encoded)]

    def line_probs(self, pages: Sequence[Sequence[str]], batch_size: int | None = None) -> list[tuple[EncodedPage, np.ndarray]]:
        """For each page: its encoding and (non-blank lines, classes) probabilities."""
        encoded = self.encode(pages)
        return list(zip(encoded, self.probs(encoded, batch_size)))

    def quantize_int8(self) -> "Predictor":
        """Dynamic int8 quantization of the linear layers (CPU): ~2x faster, slightly less accurate."""
        import warnings

        if self.device.type != "cpu" or self.model is None:
            raise ValueError("torch int8 dynamic quantization runs on the CPU only, not with ONNX Runtime")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        return self

    def use_onnx(self, int8: bool = True, threads: int = 0) -> "Predictor":
        """Run the model with ONNX Runtime on the CPU (exported and cached on first use); `int8`
        quantizes the weights (faster, slightly less accurate: see the model card). `threads`:
        windows run at once (default: torch's thread count)."""
        from .onnxrt import OnnxForward

        if self.device.type != "cpu" or self.model is None:
            raise ValueError("the ONNX Runtime path runs on the CPU only, once")
        self.onnx = OnnxForward(self.model, int8=int8, threads=threads)
        self.model = None  # the session holds the weights: free torch's copy (~470 MB)
        return self

    @torch.inference_mode()
    def _forward(self, wins) -> list[np.ndarray]:
        width = max(len(w.input_ids) for w in wins)
        ids = np.full((len(wins), width), self.config.pad_token_id or 0, dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        positions = np.zeros((len(wins), max(len(w.label_positions) for w in wins)), dtype=np.int64)
        for i, w in enumerate(wins):
            n = len(w.input_ids)
            ids[i, :n] = w.input_ids
            types[i, :n] = w.token_type_ids
            mask[i, :n] = 1
            positions[i, :len(w.label_positions)] = w.label_positions
        if self.onnx is not None:  # logits of the label tokens only
            logits = self.onnx(ids, mask, types, positions)
            e = np.exp(logits - logits.max(-1, keepdims=True))
            probs = e / e.sum(-1, keepdims=True)
            return [probs[i, :len(w.label_positions)] for i, w in enumerate(wins)]
        inputs = {k: modeling.to_device(torch.from_numpy(v), self.device) for k, v in
                  (("input_ids", ids), ("token_type_ids", types), ("attention_mask", mask))}
        probs = torch.softmax(self.model(**inputs).logits.float(), dim=-1).cpu().numpy()
        return [probs[i, w.label_positions] for i, w in enumerate(wins)]

    # -- user API ----------------------------------------------------------------------
    def _results(self, lines: list[str], page: EncodedPage, probs: np.ndarray,
                 min_prob: Mapping[str, float] | None = None) -> list[LinePrediction]:
        ids = choose_labels(probs, self.labels, min_prob).tolist()
        labels = self.labels
        # Python floats from one tolist(), not numpy scalars line by line: the same values, faster
        return [LinePrediction(idx, lines[idx], labels[c], {lab: round(v, 4) for lab, v in zip(labels, row)})
                for idx, c, row in zip(page.kept, ids, probs.tolist())]

    def predict(self, text_or_lines: str | bytes | Sequence[str] | None = None, *, html: str | bytes | None = None,
                renderer: str = "innertext", min_prob: Mapping[str, float] | None = None) -> list[LinePrediction]:
        """Label each non-blank line of a page given as text (str, or UTF-8 bytes), a list of lines,
        or `html=`. Anything else raises TypeError or ValueError (see `as_lines`). `min_prob`:
        per-class thresholds, e.g. {"content": 0.8} (see `choose_labels` for the rule)."""
        if (text_or_lines is None) == (html is None):
            raise TypeError("predict() takes one page: text or a list of lines, or html=" +
                            (", not both" if html is not None else ""))
        check_renderer(renderer)
        return self.predict_many([html_lines(html, renderer) if html is not None else text_or_lines],
                                 min_prob=min_prob)[0]

    def predict_many(self, pages: Iterable[str | bytes | Sequence[str]], batch_size: int | None = None,
                     min_prob: Mapping[str, float] | None = None) -> list[list[LinePrediction]]:
        """`predict` for a list of pages (each text or a list of lines), windows batched across pages."""
        min_prob = check_min_prob(min_prob)
        pages = _pages(pages)
        return [self._results(lines, page, probs, min_prob)
                for lines, (page, probs) in zip(pages, self.line_probs(pages, batch_size))]

    def clean(self, text_or_lines: str | Sequence[str] | None = None, keep: Sequence[str] = ("content",), *,
              html: str | bytes | None = None, min_prob: Mapping[str, float] | None = None) -> str:
        """The page's text with only the lines whose label is in `keep` (labels chosen with `min_prob`)."""
        keep = check_keep(keep)
        return "\n".join(r.text for r in self.predict(text_or_lines, html=html, min_prob=min_prob)
                         if r.label in keep)


def check_batch_size(batch_size) -> None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")


def check_min_prob(min_prob: Mapping[str, float] | None) -> dict[str, float]:
    """Per-class thresholds as a dict, checked: known labels, numbers from 0 to 1 (ValueError otherwise)."""
    if not min_prob:
        return {}
    if not isinstance(min_prob, Mapping):
        raise TypeError(f"min_prob is a dict of label -> probability, not {type(min_prob).__name__}")
    bad = sorted(set(min_prob) - set(LABELS))
    if bad:
        raise ValueError(f"min_prob: unknown label(s) {', '.join(map(str, bad))}: choose from {', '.join(LABELS)}")
    for label, value in min_prob.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"min_prob: {label} must be a probability from 0 to 1, not {value!r}")
    return {label: float(value) for label, value in min_prob.items()}


def _pages(pages: Iterable[str | bytes | Sequence[str]]) -> list[list[str]]:
    """Each page's lines; a str (or bytes, or a dict) where a list of pages is expected is a TypeError,
    not pages of one character each."""
    if isinstance(pages, (str, bytes, bytearray, Mapping)) or not isinstance(pages, Iterable):  # None too
        raise TypeError(f"pages must be a list of pages (each text or a list of lines), not "
                        f"{type(pages).__name__}: for one page, use predict(page) or [page]")
    return [as_lines(p) for p in pages]


@dataclass
class HtmlPage:
    """An HTML page rendered to lines, with what Markdown output needs."""
    lines: list[str]
    title: str | None  # <title>, else og:title
    blocks: list[str | None]  # per line: "h1".."h6" or "li" when its text comes from one, else None


_BLOCK_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "li"}


def html_page(html: str | bytes, renderer: str = "innertext") -> HtmlPage:
    """`html_lines` with the page's title and the heading or list item each line comes from."""
    from .html import CharsetError, html_title, parse, render

    if not isinstance(html, (str, bytes)):
        raise TypeError(f"html must be str or bytes, not {type(html).__name__}")
    check_renderer(renderer)
    try:
        root = parse(html)
        lines = render(root, renderer)
    except CharsetError:
        raise
    except ValueError:  # no document: an empty page
        return HtmlPage([], None, [])

    def block(el) -> str | None:  # the nearest heading or list item around the line's main element
        while el is not None and el.tag not in _BLOCK_TAGS:
            el = el.getparent()
        return el.tag if el is not None else None

    return HtmlPage([line.text for line in lines], html_title(root), [block(line.element) for line in lines])


def html_lines(html: str | bytes, renderer: str = "innertext") -> list[str]:
    """Lines of an HTML page; empty or unparsable HTML is an empty page, an unknown renderer a ValueError."""
    from .html import try_html_lines

    if not isinstance(html, (str, bytes)):
        raise TypeError(f"html must be str or bytes, not {type(html).__name__}")
    check_renderer(renderer)  # before try_html_lines, which reads any ValueError as "no document"
    return try_html_lines(html, renderer) or []
