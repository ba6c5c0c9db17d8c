"""Batch inference over dumps: `pagesieve predict` and `pagesieve.predict_dump(...)`.

Inputs (format from the name, or `fmt=`): JSONL (.jsonl/.ndjson, plain, .gz or .zst), Parquet
(streamed by row group), Common Crawl WET (.wet/.wet.gz: "conversion" records) and WARC
(.warc/.warc.gz: HTML "response" records, rendered to lines), plain-text files (a .txt file, a
directory or a glob: one page per file) and a saved Hugging Face `datasets` dataset.

Every input record gives exactly one output record, in input order: `{"id", "labels": [one per
input line, null for blank lines], ...}`, or `{"id", "error": reason}` when it cannot be read (bad
JSON, bad encoding, no text field, empty page...). Work is written in shards of `shard_size`
records next to the output (`OUTPUT.parts/`) with a manifest, so a killed run started again with the
same command continues where it stopped; the finished output is byte-identical to an uninterrupted
run. Reading, HTML rendering and tokenizing run while the model works: in a background thread, or
in `workers` processes.
"""
from __future__ import annotations

import collections
import glob
import gzip
import hashlib
import io
import json
import os
import queue
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .encoding import per_line
from .html import try_html_lines
from .labels import LABELS

FORMATS = ("jsonl", "parquet", "wet", "warc", "text", "hf")
# records prepared (rendered + tokenized) and run through the model together: small on a CPU so
# that worker processes share the work of one shard, large on a GPU to fill its batches
PIECE = {"cpu": 64, "cuda": 1024}


@dataclass
class Fields:
    id: str = "id"
    text: str = "text"
    lines: str = "lines"
    html: str = "html"


@dataclass
class Record:
    id: str
    lines: list[str] | None = None
    extra: dict = field(default_factory=dict)
    error: str | None = None
    html: str | bytes | None = None  # rendered to `lines` by `prepare` (in a worker), not by the reader


def check_page(rec: Record) -> Record:
    if rec.error is None and not any(l.strip() for l in rec.lines):
        rec.error = "empty page"
    return rec


BAD_ENCODING = "bad encoding (not UTF-8)"


def text_page(rid: str, data: bytes, extra: dict | None = None, encoding: str = "utf-8") -> Record:
    """A page from a plain-text body, one line a line; an error record when it is not UTF-8."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return Record(rid, extra=extra or {}, error=BAD_ENCODING)
    return check_page(Record(rid, lines=text.splitlines(), extra=extra or {}))


def render(rec: Record, renderer: str) -> Record:
    """HTML -> lines (or an error record)."""
    if rec.html is not None and rec.error is None:
        lines = try_html_lines(rec.html, renderer)
        rec.html = None
        if lines is None:
            rec.error = "HTML does not parse"
        else:
            rec.lines = lines
            check_page(rec)
    return rec


# -- reading ------------------------------------------------------------------------------
def detect_format(path: str) -> str:
    p = path.lower()
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "dataset_info.json")) or os.path.exists(os.path.join(path, "dataset_dict.json")):
            return "hf"
        return "text"
    if any(ch in path for ch in "*?["):
        return "text"
    for suffix in (".gz", ".zst", ".zstd"):
        if p.endswith(suffix):
            p = p[: -len(suffix)]
    if p.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if p.endswith(".parquet"):
        return "parquet"
    if p.endswith(".wet") or p.endswith(".warc.wet"):
        return "wet"
    if p.endswith((".warc", ".arc")):
        return "warc"
    if p.endswith((".txt", ".text")):
        return "text"
    raise ValueError(f"{path}: cannot tell the format from the name; pass --format ({', '.join(FORMATS)})")


def open_binary(path: str):
    if path.endswith((".zst", ".zstd")):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True))
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def record_from_dict(rec, fallback_id: str, fields: Fields, keep_fields: bool) -> Record:
    if not isinstance(rec, dict):
        return Record(fallback_id, error="not a JSON object")
    rid = rec.get(fields.id)
    rid = str(rid) if rid is not None else fallback_id
    extra = {k: v for k, v in rec.items() if k not in (fields.text, fields.lines, fields.html, fields.id)} if keep_fields else {}
    if isinstance(rec.get(fields.lines), list):
        lines = [l if isinstance(l, str) else ("" if l is None else str(l)) for l in rec[fields.lines]]
    elif isinstance(rec.get(fields.text), str):
        lines = rec[fields.text].splitlines()
    elif isinstance(rec.get(fields.html), str):
        return Record(rid, extra=extra, html=rec[fields.html])
    else:
        return Record(rid, extra=extra, error=f"no text field (looked for {fields.lines!r}, {fields.text!r}, {fields.html!r})")
    return check_page(Record(rid, lines=lines, extra=extra))


def read_jsonl(path, fields, keep_fields) -> Iterator[Record]:
    with open_binary(path) as fh:
        for n, raw in enumerate(fh, 1):
            fallback = f"{path}:{n}"
            if not raw.strip():
                yield Record(fallback, error="blank line")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Record(fallback, error=BAD_ENCODING)
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as e:
                yield Record(fallback, error=f"bad JSON ({e.msg})")
                continue
            yield record_from_dict(rec, fallback, fields, keep_fields)


def read_parquet(path, fields, keep_fields) -> Iterator[Record]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    wanted = {fields.id, fields.text, fields.lines, fields.html}
    # Only the columns we use (a crawl shard may carry many more), in batches of rows: memory stays
    # bounded even when a row group holds gigabytes.
    # (None when none is there: every row then becomes a "no text field" error record.)
    columns = None if keep_fields else [c for c in pf.schema_arrow.names if c in wanted] or None
    n = 0
    for batch in pf.iter_batches(batch_size=256, columns=columns):
        for row in batch.to_pylist():
            n += 1
            yield record_from_dict(row, f"{path}:{n}", fields, keep_fields)


def read_warc(path, fmt) -> Iterator[Record]:
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as fh:
        for n, rec in enumerate(ArchiveIterator(fh, arc2warc=True), 1):
            kind = rec.rec_type
            if (fmt == "wet" and kind != "conversion") or (fmt == "warc" and kind != "response"):
                continue  # warcinfo, request, metadata...: not pages
            rid = rec.rec_headers.get_header("WARC-Record-ID") or f"{path}:{n}"
            extra = {"url": rec.rec_headers.get_header("WARC-Target-URI")}
            try:
                body = rec.content_stream().read()
            except Exception as e:  # truncated or corrupt record
                yield Record(rid, extra=extra, error=f"unreadable record ({type(e).__name__})")
                continue
            if fmt == "warc":
                ctype = (rec.http_headers.get_header("Content-Type") if rec.http_headers else "") or ""
                if ctype and "html" not in ctype.lower():
                    yield Record(rid, extra=extra, error=f"not HTML ({ctype.split(';')[0]})")
                else:
                    yield Record(rid, extra=extra, html=body)
                continue
            yield text_page(rid, body, extra)


def read_text_files(path) -> Iterator[Record]:
    if os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).rglob("*") if p.is_file())
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path, recursive=True))
    else:
        files = [path]
    for f in files:
        try:
            data = Path(f).read_bytes()
        except OSError as e:
            yield Record(f, error=f"unreadable ({e.strerror})")
            continue
        if b"\x00" in data[:8192]:
            yield Record(f, error="binary file")
            continue
        yield text_page(f, data, encoding="utf-8-sig")  # a byte-order mark is not text


def read_hf(path, fields, keep_fields, split) -> Iterator[Record]:
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(path)
    if isinstance(ds, DatasetDict):
        ds = ds[split]
    for n, row in enumerate(ds, 1):
        yield record_from_dict(row, f"{path}:{n}", fields, keep_fields)


def read_records(path: str, fmt: str | None = None, fields: Fields | None = None, keep_fields: bool = False,
                 hf_split: str = "train") -> Iterator[Record]:
    """The records of one input, in order. HTML pages come with `html` set: `render` makes them lines."""
    fields = fields or Fields()
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt != "text" and not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    if fmt == "jsonl":
        return read_jsonl(path, fields, keep_fields)
    if fmt == "parquet":
        return read_parquet(path, fields, keep_fields)
    if fmt in ("wet", "warc"):
        return read_warc(path, fmt)
    if fmt == "hf":
        return read_hf(path, fields, keep_fields, hf_split)
    return read_text_files(path)


# -- output records ----------------------------------------------------------------------------
def output_record(rec: Record, page, probs, keep: tuple[str, ...] | None, with_probs: bool,
                  with_labels: bool, with_lines: bool) -> dict:
    out = {"id": rec.id}
    out.update(rec.extra)
    if rec.error:
        out["error"] = rec.error
        return out
    labels = [LABELS[c] if c is not None else None for c in per_line(page, probs)]
    if with_labels:
        out["labels"] = labels
    if with_probs:
        p_out = [None] * len(rec.lines)
        for row, i in enumerate(page.kept):
            p_out[i] = [round(float(x), 4) for x in probs[row]]
        out["probs"] = p_out
    if with_lines:
        out["lines"] = rec.lines
    if keep:
        out["text"] = "\n".join(rec.lines[i] for i in page.kept if labels[i] in keep)
    return out


# -- the run ----------------------------------------------------------------------------------
def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    chunk = []
    for r in records:
        chunk.append(r)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prepare(chunk: list[Record], encoder, renderer: str) -> tuple[list[Record], list[Record], list]:
    """Render the HTML and tokenize the readable pages of a chunk: (chunk, readable records, encodings)."""
    for r in chunk:
        render(r, renderer)
    ok = [r for r in chunk if not r.error]
    return chunk, ok, encoder.encode_many([r.lines for r in ok])


_WORKER: dict = {}


class WorkersFailed(RuntimeError):
    """The --workers processes stopped; what was written so far stays resumable."""


def _init_worker(encoder, renderer):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process
    _WORKER.update(encoder=encoder, renderer=renderer)


def _prepare_in_worker(item):
    tag, chunk = item
    return (tag, *prepare(chunk, _WORKER["encoder"], _WORKER["renderer"]))


def _prepared(items: Iterator[tuple], encoder, renderer: str, workers: int) -> Iterator[tuple]:
    """(tag, chunk) -> (tag, *prepare(chunk)), in order: in this thread, or spread over `workers`
    processes with at most 2 chunks per worker in flight (the dump is never read further ahead)."""
    if workers <= 0:
        for tag, chunk in items:
            yield (tag, *prepare(chunk, encoder, renderer))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the parent runs torch threads; scripts calling predict_dump(workers>0) need the
    # usual `if __name__ == "__main__":` guard. An executor, not multiprocessing.Pool: a worker that
    # cannot start or gets killed makes Pool wait forever, the executor raises.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(encoder, renderer)) as pool:
        pending: collections.deque = collections.deque()
        try:
            for item in items:
                pending.append(pool.submit(_prepare_in_worker, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as e:
            raise WorkersFailed(f"the {workers} worker processes stopped (one could not start or was killed: "
                                "see the messages above). The finished shards are kept: rerun the same "
                                "command to continue, or with --workers 0 to do without processes") from e


def _prefetch(it: Iterator, depth: int = 2) -> Iterator:
    """Run `it` in a background thread (reading + tokenizing while the model works)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def work():
        try:
            for item in it:
                q.put(item)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)
        q.put(done)

    threading.Thread(target=work, daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _write_atomic(path: Path, data: bytes):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def predict_dump(inputs: list[str] | str, output: str, *, predictor=None, model: str | None = None,
                 device: str | None = None, fmt: str | None = None, fields: Fields | None = None,
                 keep: tuple[str, ...] | None = None, with_probs: bool = False, with_labels: bool = True,
                 with_lines: bool = False, keep_fields: bool = False, renderer: str = "innertext",
                 hf_split: str = "train", batch_size: int | None = None, shard_size: int = 1000,
                 runtime: str = "auto", workers: int = 0, progress: bool = True) -> dict:
    """Label every record of the inputs into `output` (.jsonl, .jsonl.gz, .parquet, or a directory:
    one output per input). Returns the summary (records in/out, errors by reason).

    `workers` > 0 renders and tokenizes in that many processes while the model runs (0: one
    background thread); the output is the same either way."""
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    if not inputs:
        raise ValueError("no input")
    if keep:
        bad = set(keep) - set(LABELS)
        if bad:
            raise ValueError(f"unknown label(s) {sorted(bad)}: choose from {', '.join(LABELS)}")
    out = Path(output)
    is_dir_out = output.endswith(os.sep) or out.is_dir() or not out.suffix
    if predictor is None:
        from .predictor import Predictor

        predictor = Predictor.from_pretrained(model, device=device, runtime=runtime)
    opts = dict(fmt=fmt, fields=vars(fields or Fields()), keep=list(keep or []), with_probs=with_probs,
                with_labels=with_labels, with_lines=with_lines, keep_fields=keep_fields, renderer=renderer,
                hf_split=hf_split, shard_size=shard_size)
    if is_dir_out:
        out.mkdir(parents=True, exist_ok=True)
        summaries = []
        for inp in inputs:
            name = Path(inp.rstrip("/*")).name.split(".")[0] or "input"
            summaries.append(_run_one([inp], out / f"{name}.jsonl", predictor, batch_size, opts, workers, progress))
        return _merge_summaries(summaries)
    return _run_one(inputs, out, predictor, batch_size, opts, workers, progress)


def _merge_summaries(summaries: list[dict]) -> dict:
    errors = collections.Counter()
    for s in summaries:
        errors.update(s["errors"])
    return {"records_in": sum(s["records_in"] for s in summaries), "records_out": sum(s["records_out"] for s in summaries),
            "errors": dict(errors), "outputs": [s["output"] for s in summaries]}


def _run_one(inputs: list[str], out: Path, predictor, batch_size: int | None, opts: dict, workers: int,
             progress: bool) -> dict:
    from tqdm import tqdm

    suffix = "".join(out.suffixes[-2:]) if out.suffix == ".gz" else out.suffix
    if suffix not in (".jsonl", ".jsonl.gz", ".parquet"):
        raise ValueError(f"{out}: output must end in .jsonl, .jsonl.gz or .parquet (or be a directory)")
    parts = out.with_name(out.name + ".parts")
    manifest_path = parts / "manifest.json"
    key = hashlib.sha1(json.dumps({"inputs": inputs, "opts": opts}, sort_keys=True).encode()).hexdigest()[:16]
    manifest = {"key": key, "inputs": inputs, "options": opts, "shards": []}
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("key") != key:
            raise ValueError(f"{parts} holds an unfinished run with other inputs or options; "
                             f"delete it or rerun with the same command")
        manifest = old
    parts.mkdir(parents=True, exist_ok=True)
    done_records = sum(s["records"] for s in manifest["shards"])
    fields = Fields(**opts["fields"])

    def records():
        for inp in inputs:
            yield from read_records(inp, opts["fmt"], fields, opts["keep_fields"], opts["hf_split"])

    def skipped(it, n):  # resume: skip what finished shards already hold
        for k, r in enumerate(it):
            if k >= n:
                yield r

    shard_size = opts["shard_size"]
    keep = tuple(opts["keep"]) or None

    piece = PIECE.get(predictor.device.type, 64)

    def pieces():  # shards cut into pieces of <= `piece` records; the tag marks a shard's last piece
        for shard in _chunks(skipped(records(), done_records), shard_size):
            for i in range(0, len(shard), piece):
                yield i + piece >= len(shard), shard[i:i + piece]

    bar = tqdm(total=None, initial=done_records, unit="page", desc=out.name, disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    lines, errors, n_records = [], collections.Counter(), 0
    for shard_ends, chunk, ok, encoded in _prefetch(_prepared(pieces(), predictor.encoder, opts["renderer"], workers)):
        probs = predictor.probs(encoded, batch_size) if ok else []
        by_id = {id(r): (e, p) for r, e, p in zip(ok, encoded, probs)}
        for r in chunk:
            page, pr = by_id.get(id(r), (None, None))
            if r.error:
                errors[r.error.split(" (")[0]] += 1
            lines.append(json.dumps(output_record(r, page, pr, keep, opts["with_probs"], opts["with_labels"],
                                                  opts["with_lines"]), ensure_ascii=False))
        n_records += len(chunk)
        bar.update(len(chunk))
        if shard_ends:
            name = f"shard-{len(manifest['shards']):06d}.jsonl"
            _write_atomic(parts / name, ("\n".join(lines) + "\n").encode("utf-8"))
            manifest["shards"].append({"file": name, "records": n_records, "errors": dict(errors)})
            _write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())  # the shard counts only once listed
            lines, errors, n_records = [], collections.Counter(), 0
    bar.close()

    written = _assemble(parts, manifest, out, suffix)
    errors = collections.Counter()
    for s in manifest["shards"]:
        errors.update(s["errors"])
    total = sum(s["records"] for s in manifest["shards"])
    summary = {"output": str(out), "records_in": total, "records_out": written,
               "errors": dict(errors)}
    (out.with_name(out.name + ".summary.json")).write_text(json.dumps(summary, indent=1))
    shutil.rmtree(parts)
    return summary


def parquet_schema(opts: dict):
    """A fixed schema, whatever the shard: id, error, then the requested outputs; the input's other
    fields (keep_fields) as one JSON column `fields`."""
    import pyarrow as pa

    cols = [("id", pa.string()), ("error", pa.string())]
    if opts["with_labels"]:
        cols.append(("labels", pa.list_(pa.string())))
    if opts["with_probs"]:
        cols.append(("probs", pa.list_(pa.list_(pa.float32()))))
    if opts["with_lines"]:
        cols.append(("lines", pa.list_(pa.string())))
    if opts["keep"]:
        cols.append(("text", pa.string()))
    if opts["keep_fields"]:
        cols.append(("fields", pa.string()))
    return pa.schema(cols)


def to_table(rows: list[dict], schema):
    import pyarrow as pa

    names = set(schema.names)
    cols = {n: [] for n in schema.names}
    for r in rows:
        extra = {k: v for k, v in r.items() if k not in names}
        for n in schema.names:
            cols[n].append(json.dumps(extra, ensure_ascii=False, default=str) if n == "fields" else r.get(n))
    return pa.table(cols, schema=schema)


def _assemble(parts: Path, manifest: dict, out: Path, suffix: str) -> int:
    """Join the shards into the output; returns the number of records written."""
    tmp = out.with_name(out.name + ".tmp")
    written = 0
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        schema = parquet_schema(manifest["options"])
        with pq.ParquetWriter(str(tmp), schema) as writer:
            for s in manifest["shards"]:  # one shard in memory at a time
                rows = [json.loads(l) for l in open(parts / s["file"], encoding="utf-8")]
                writer.write_table(to_table(rows, schema))
                written += len(rows)
    else:
        with open(tmp, "wb") as raw:
            sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if suffix == ".jsonl.gz" else raw
            for s in manifest["shards"]:
                data = (parts / s["file"]).read_bytes()
                sink.write(data)
                written += data.count(b"\n")
            if sink is not raw:
                sink.close()
    os.replace(tmp, out)
    return written
