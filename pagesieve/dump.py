"""Batch inference over dumps: `pagesieve predict` and `pagesieve.predict_dump(...)`.

Inputs (format from the name, or `fmt=`): JSONL (.jsonl/.ndjson, plain, .gz or .zst), Parquet
(streamed by row group), Common Crawl WET (.wet/.wet.gz: "conversion" records) and WARC
(.warc/.warc.gz: HTML "response" records, rendered to lines), plain-text files (a .txt file, a
directory or a glob: one page per file) and a saved Hugging Face `datasets` dataset.

Every input record gives exactly one output record, in input order: `{"id", "labels": [one per
input line, null for blank lines], ...}`, or `{"id", "error": reason}` when it cannot be read (bad
JSON, bad encoding, no text field, empty page, over a `Limits` size...). Text is split into lines
at \\n, \\r\\n and \\r only. A truncated or corrupt input file gives its readable records, then an
error record "truncated or corrupt input" for what is lost.

Work is written in shards of `shard_size` records next to the output (`OUTPUT.parts/`, locked by
one run at a time) with a manifest, so a killed run started again with the same command continues
where it stopped; the finished output is byte-identical to an uninterrupted run. The manifest holds
the run's identity (input fingerprints, model, runtime, options) and each shard's record count and
checksum: a changed input, model or runtime is refused, a damaged shard is redone. Reading, HTML
rendering and tokenizing run while the model works: in a background thread, or in `workers` processes.
"""
from __future__ import annotations

import collections
import contextlib
import gc
import glob
import gzip
import hashlib
import io
import json
import operator
import os
import queue
import re
import shutil
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .html import CharsetError, charset_from_content_type, decode_html, html_title, parse, render as render_html
from .labels import LABELS, check_keep
from .text import HTML_SUFFIXES, split_lines

FORMATS = ("jsonl", "parquet", "wet", "warc", "text", "hf")
# records prepared (rendered + tokenized) and run through the model together: small on a CPU so
# that worker processes share the work of one shard, large on a GPU to fill its batches
PIECE = {"cpu": 64, "cuda": 1024}
# the dump's first shard starts with smaller pieces (8, 16, 32, ... records): the model starts once 8 pages are
# ready, not 64, while the reading thread prepares the next (the fast tier on 308 pages from HTML waited 0.46 s of
# its 2.5 for the first 64; with this, 115 -> 123 pages/s)
FIRST_PIECE = 8


@dataclass
class Fields:
    id: str = "id"
    text: str = "text"
    lines: str = "lines"
    html: str = "html"


@dataclass
class Limits:
    """Per-record limits: a record over one becomes an error record (memory stays bounded whatever
    the input: a gzip bomb of one endless line is skipped, not read)."""
    record_bytes: int = 5_000_000
    line_bytes: int = 100_000
    lines: int = 20_000

    def __post_init__(self):
        if min(self.record_bytes, self.line_bytes, self.lines) < 1:
            raise ValueError(f"limits must be positive: {self}")


@dataclass
class Record:
    id: str
    lines: list[str] | None = None
    extra: dict = field(default_factory=dict)
    error: str | None = None
    html: str | bytes | None = None  # rendered to `lines` by `prepare` (in a worker), not by the reader
    charset: str | None = None  # of `html` bytes, from the HTTP header (WARC); the rest is told by `decode_html`
    title: str | None = None  # of an HTML page (`html_title`), set by `render`
    end: int | None = None  # bytes of its input read up to the end of this record (the progress bar)


def check_page(rec: Record) -> Record:
    if rec.error is None and not any(l.strip() for l in rec.lines):
        rec.error = "empty page"
    return rec


def _utf8_over(s: str | list[str], limit: int) -> bool:
    """Is the text (or the lines, joined) over `limit` bytes in UTF-8? Encoded only when it may be
    (a character is at most 4 bytes)."""
    if isinstance(s, list):
        if sum(map(len, s)) + len(s) <= limit // 4:
            return False
        s = "\n".join(s)
    return len(s) > limit or (len(s) > limit // 4 and len(s.encode("utf-8", "surrogatepass")) > limit)


def too_large(limit: int) -> str:
    return f"record too large (over {limit} bytes)"


def check_limits(rec: Record, limits: Limits) -> Record:
    """Lines per page and bytes per line (the bytes per record are checked by the readers)."""
    if rec.error is None:
        if len(rec.lines) > limits.lines:
            rec.error = f"too many lines ({len(rec.lines)}, over {limits.lines})"
        elif max(map(len, rec.lines), default=0) > limits.line_bytes // 4:  # else none can be over
            long = next((i for i, l in enumerate(rec.lines) if _utf8_over(l, limits.line_bytes)), None)
            if long is not None:
                rec.error = f"line too long (line {long + 1} is over {limits.line_bytes} bytes)"
        if rec.error:
            rec.lines = None
    return rec


BAD_ENCODING = "bad encoding (not UTF-8)"
BAD_CHARSET = "bad encoding (HTML in an unknown charset: not UTF-8, none declared, none detected)"
# the error of the record standing for what a truncated or corrupt input file no longer gives
CORRUPT = "truncated or corrupt input"
NO_TEXT = "no text field"  # a record without the field of its page (the fields looked for follow in brackets)


def text_page(rid: str, data: bytes, extra: dict | None = None, encoding: str = "utf-8") -> Record:
    """A page from a plain-text body, one line a line; an error record when it is not UTF-8."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return Record(rid, extra=extra or {}, error=BAD_ENCODING)
    return check_page(Record(rid, lines=split_lines(text), extra=extra or {}))


def render(rec: Record, renderer: str) -> Record:
    """HTML -> lines and title (or an error record). HTML bytes are decoded with their charset
    (`decode_html`: byte-order mark, HTTP header, <meta>, detection), never as UTF-8 with replacement
    characters."""
    if rec.html is not None and rec.error is None:
        html = rec.html
        rec.html = None
        try:
            root = parse(decode_html(bytes(html), rec.charset) if isinstance(html, (bytes, bytearray)) else html)
            rec.lines = [line.text for line in render_html(root, renderer, sources=False)]
        except CharsetError:
            rec.error = BAD_CHARSET
            return rec
        except ValueError:  # no document: empty, or not HTML at all
            rec.error = "HTML does not parse"
            return rec
        rec.title = html_title(root)
        check_page(rec)
    return rec


# -- reading ------------------------------------------------------------------------------
def detect_format(path: str) -> str:
    p = path.lower()
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "dataset_info.json")) or os.path.exists(os.path.join(path, "dataset_dict.json")):
            return "hf"
        return "text"
    if is_glob(path):
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
    if p.endswith((".txt", ".text", *HTML_SUFFIXES)):
        return "text"
    raise ValueError(f"{path}: cannot tell the format from the name; pass --format ({', '.join(FORMATS)})")


class CorruptInput(OSError):
    """An input file that ends too early or holds data that does not decode."""


class _ZstdStream(io.RawIOBase):
    """The decompressed bytes of a .zst file, any number of frames. zstandard's stream_reader stops
    quietly where a truncated file ends; this raises CorruptInput there. Compressed data is fed 1 KiB
    at a time, so even a zstd bomb decompresses in bounded pieces (at most ~32 MB)."""

    def __init__(self, path: str):
        import zstandard

        self.source = open(path, "rb")
        self._zstd = zstandard.ZstdDecompressor()
        self._error = zstandard.ZstdError
        self._frame = None  # the decompressor of the frame being read, None between frames
        self._out, self._pos = b"", 0
        self._failed = None  # raised once what was decompressed before the bad data is read

    def readable(self):
        return True

    def readinto(self, buf) -> int:
        while self._pos == len(self._out):
            if self._failed:
                raise self._failed
            data = self.source.read(1024)
            if not data:
                if self._frame is not None:
                    raise CorruptInput("the zstd data ends inside a frame (truncated file)")
                return 0
            self._out, self._pos = self._decompress(data), 0
        n = min(len(buf), len(self._out) - self._pos)
        buf[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n

    def _decompress(self, data: bytes) -> bytes:
        out = []
        try:
            while data:
                if self._frame is None:
                    self._frame = self._zstd.decompressobj()
                out.append(self._frame.decompress(data))
                data = b""
                if self._frame.eof:  # the next frame starts in what is left
                    data, self._frame = self._frame.unused_data, None
        except self._error as e:
            self._failed = CorruptInput(f"corrupt zstd data ({e})")
        return b"".join(out)

    def close(self):
        self.source.close()
        super().close()


def open_binary(path: str):
    if path.endswith((".zst", ".zstd")):
        return io.BufferedReader(_ZstdStream(path))
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def disk_position(fh) -> int:
    """How far into the file on disk a reader from `open_binary` has come (compressed bytes, give or
    take the decompressor's read-ahead): the progress of a run."""
    if isinstance(fh, gzip.GzipFile):
        return fh.fileobj.tell()
    if isinstance(getattr(fh, "raw", None), _ZstdStream):
        return fh.raw.source.tell()
    return fh.tell()


def _bounded_lines(fh, limit: int) -> Iterator[bytes | None]:
    """The lines of a binary file; None for a line over `limit` bytes, which is skipped, never held
    in memory whole."""
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield line


# JSON escapes of UTF-16 surrogates: json.loads turns a lone one (a cut emoji) into a str that
# cannot be written as UTF-8
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value):
    """A parsed JSON value with each lone surrogate replaced by U+FFFD (one character for one: the
    lines stay the same)."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def record_from_dict(rec, fallback_id: str, fields: Fields, keep_fields: bool,
                     limits: Limits | None = None) -> Record:
    if not isinstance(rec, dict):
        return Record(fallback_id, error="not a JSON object")
    limits = limits or Limits()
    rid = rec.get(fields.id)
    rid = str(rid) if rid is not None else fallback_id
    extra = {k: v for k, v in rec.items() if k not in (fields.text, fields.lines, fields.html, fields.id)} if keep_fields else {}
    html = None
    if isinstance(rec.get(fields.lines), list):
        page = [l if isinstance(l, str) else ("" if l is None else str(l)) for l in rec[fields.lines]]
    elif isinstance(rec.get(fields.text), str):
        page = rec[fields.text]
    elif isinstance(rec.get(fields.html), (str, bytes)):  # bytes: a binary column, decoded by `render`
        page = html = rec[fields.html]
    else:
        return Record(rid, extra=extra, error=f"{NO_TEXT} (looked for {fields.lines!r}, {fields.text!r}, {fields.html!r})")
    if len(page) > limits.record_bytes if isinstance(page, bytes) else _utf8_over(page, limits.record_bytes):
        return Record(rid, extra=extra, error=too_large(limits.record_bytes))
    if html is not None:
        return Record(rid, extra=extra, html=page)
    return check_page(Record(rid, lines=split_lines(page) if isinstance(page, str) else page, extra=extra))


def _jsonl_record(raw: bytes | None, fallback: str, fields, keep_fields, limits: Limits) -> Record:
    """The record of one JSONL line (None: a line over the limit)."""
    if raw is None:
        return Record(fallback, error=too_large(limits.record_bytes))
    if not raw.strip():
        return Record(fallback, error="blank line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Record(fallback, error=BAD_ENCODING)
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        return Record(fallback, error=f"bad JSON ({e.msg})")
    if _SURROGATE_ESCAPE.search(text):
        rec = _without_lone_surrogates(rec)
    return record_from_dict(rec, fallback, fields, keep_fields, limits)


def read_jsonl(path, fields, keep_fields, limits: Limits) -> Iterator[Record]:
    with open_binary(path) as fh:
        for n, raw in enumerate(_bounded_lines(fh, limits.record_bytes), 1):
            rec = _jsonl_record(raw, f"{path}:{n}", fields, keep_fields, limits)
            rec.end = disk_position(fh)
            yield rec


def read_parquet(path, fields, keep_fields, limits: Limits) -> Iterator[Record]:
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    pf = pq.ParquetFile(path)
    wanted = {fields.id, fields.text, fields.lines, fields.html}
    # Only the columns we use (a crawl shard may carry many more), in batches of rows: memory stays
    # bounded even when a row group holds gigabytes.
    # (None when none is there: every row then becomes a "no text field" error record.)
    columns = None if keep_fields else [c for c in pf.schema_arrow.names if c in wanted] or None
    n, size, total = 0, os.path.getsize(path), max(pf.metadata.num_rows, 1)
    for group in range(pf.num_row_groups):  # one by one: a corrupt row group loses its rows only
        rows = pf.metadata.row_group(group).num_rows
        try:
            for batch in pf.iter_batches(batch_size=256, row_groups=[group], columns=columns):
                for row in batch.to_pylist():
                    n += 1
                    rows -= 1
                    rec = record_from_dict(row, f"{path}:{n}", fields, keep_fields, limits)
                    rec.end = size * n // total  # the bytes read, as a share of the rows
                    yield rec
        except (OSError, ArrowException) as e:
            for _ in range(rows):  # still one output record per input row
                n += 1
                yield Record(f"{path}:{n}", error=f"{CORRUPT} (row group {group}: {type(e).__name__})",
                             end=size * n // total)


def _warc_body(rec, limit: int) -> tuple[bytes, str | None]:
    """A WARC record's payload (up to `limit` + 1 bytes) and what is wrong with it, if anything:
    a record cut short (Content-Length beyond the end of the data) or over the limit."""
    stream, chunks, size = rec.content_stream(), [], 0
    while size <= limit and (chunk := stream.read(min(1 << 16, limit + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
    while rec.raw_stream.read(1 << 20):  # the rest of the record: past the limit, or after the payload
        pass
    missing = getattr(rec.raw_stream, "limit", 0)  # bytes of Content-Length never read: the data ended
    if missing:
        return b"", f"{CORRUPT} (record cut short: {missing} of its {rec.length} bytes missing)"
    return b"".join(chunks), (too_large(limit) if size > limit else None)


def _warc_page(rec, fallback_id: str, limits: Limits,
               kinds: tuple[str, ...] = ("response", "conversion")) -> Record | None:
    """The page of a WARC record of one of `kinds`: a response's HTML or a conversion's text, in a WARC or a WET
    file alike (a WET file named .warc.gz still gives its pages); None for the other records (warcinfo, request,
    metadata...: not pages)."""
    # (an ARC record has no id: its place in the file is one, the same at every read)
    rid = rec.rec_headers.get_header("WARC-Record-ID") or fallback_id
    extra = {"url": rec.rec_headers.get_header("WARC-Target-URI") or rec.rec_headers.get_header("uri")}
    length = rec.rec_headers.get_header("Content-Length")
    if rec.length is None or (length is not None and not length.strip().isdigit()):
        # every record has one: its header was cut short, by the end of the file
        return Record(rid, extra=extra, error=f"{CORRUPT} (a record header without its Content-Length)")
    if rec.rec_type not in kinds:
        return None
    try:
        body, problem = _warc_body(rec, limits.record_bytes)
    except Exception as e:  # corrupt record (warcio raises many kinds)
        body, problem = b"", f"unreadable record ({type(e).__name__})"
    if problem:
        return Record(rid, extra=extra, error=problem)
    if rec.rec_type == "response":
        ctype = (rec.http_headers.get_header("Content-Type") if rec.http_headers else "") or ""
        if ctype and "html" not in ctype.lower():
            return Record(rid, extra=extra, error=f"not HTML ({ctype.split(';')[0]})")
        return Record(rid, extra=extra, html=body, charset=charset_from_content_type(ctype))
    return text_page(rid, body, extra)


def _warc_records(records) -> Iterator:
    """warcio's records; a record header it fails on with another exception than its own (a header cut
    before its WARC-Target-URI raises AttributeError) is CorruptInput, not a traceback."""
    from warcio.exceptions import ArchiveLoadFailed

    it = iter(records)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            return
        except (OSError, EOFError, zlib.error, ArchiveLoadFailed):
            raise
        except Exception as e:
            raise CorruptInput(f"unreadable record header ({type(e).__name__})") from None
        yield rec


def read_warc(path, limits: Limits) -> Iterator[Record]:
    from warcio.archiveiterator import ArchiveIterator

    with open(path, "rb") as fh:
        records = ArchiveIterator(fh)  # not arc2warc: it gives ARC records a new random id at every read
        n = end = 0
        for n, rec in enumerate(_warc_records(records), 1):
            page = _warc_page(rec, f"{path}:{n}", limits)
            end = records.get_record_offset() + records.get_record_length()
            if page is not None:
                page.end = end
                yield page
        # warcio ends quietly where a gzip member is cut before its first record header line: bytes
        # left after the last whole record (other than the blank lines between records) are a lost record
        tail = os.path.getsize(path) - end
        fh.seek(end)
        if tail > 0 and (tail > 4096 or fh.read(tail).strip()):
            yield Record(f"{path}:{n + 1}", error=f"{CORRUPT} ({tail} bytes after the last whole record)")


def is_glob(path: str) -> bool:
    """A pattern to expand: wildcards in a path that is not there (a folder may be named crawl[2024])."""
    return any(ch in path for ch in "*?[") and not os.path.exists(path)


def _own_file(name: str, names: set[str]) -> bool:
    """A file that a pagesieve run wrote, by its name among those of its folder: a summary, the output it
    describes, a file being written."""
    return name.endswith((".summary.json", ".tmp")) or name + ".summary.json" in names


def _listed_files(path: str) -> tuple[list[str], list[str]]:
    """(the files a folder or a glob stands for, sorted; those of them pagesieve wrote, left out). Hidden files and
    folders (.DS_Store, .git/) and unfinished runs' shard folders (*.parts/) are not listed; a file: itself."""
    if os.path.isdir(path):
        found = []
        for folder, dirs, names in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".") and not d.endswith(".parts")]
            in_folder = set(names)  # one set per folder, shared by its files
            found += [(os.path.join(folder, n), in_folder) for n in names if not n.startswith(".")]
    elif is_glob(path):
        listing: dict[str, set[str]] = {}
        found = []
        for f in glob.glob(path, recursive=True):
            parts = Path(f).parts
            if os.path.isfile(f) and not any(p.endswith(".parts") for p in parts[:-1]):
                folder = os.path.dirname(f) or "."
                if folder not in listing:
                    listing[folder] = set(os.listdir(folder))
                found.append((f, listing[folder]))
    else:
        return [path], []
    kept, own = [], []
    for f, names in found:
        (own if _own_file(os.path.basename(f), names) else kept).append(f)
    return sorted(kept), sorted(own)


def _text_files(path: str) -> list[str]:
    return _listed_files(path)[0]


def _no_files(path: str) -> FileNotFoundError:
    return FileNotFoundError(f"{path}: {'no file matches' if is_glob(path) else 'no file in this folder'} "
                             "(hidden files, and files that pagesieve wrote, are left out)")


def _text_file_page(f: str, limits: Limits) -> Record:
    try:
        if os.path.getsize(f) > limits.record_bytes:
            return Record(f, error=too_large(limits.record_bytes))
        data = Path(f).read_bytes()
    except OSError as e:
        return Record(f, error=f"unreadable ({e.strerror})")
    if b"\x00" in data[:8192]:
        return Record(f, error="binary file")
    if f.lower().endswith(HTML_SUFFIXES):
        return Record(f, html=data)  # its charset from the page (`decode_html`), rendered by `prepare`
    return text_page(f, data, encoding="utf-8-sig")  # a byte-order mark is not text


def read_text_files(path, limits: Limits) -> Iterator[Record]:
    end = 0
    for f in _text_files(path):
        rec = _text_file_page(f, limits)
        with contextlib.suppress(OSError):
            end += os.path.getsize(f)
        rec.end = end
        yield rec


def read_hf(path, fields, keep_fields, split, limits: Limits) -> Iterator[Record]:
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(path)
    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise ValueError(f"{path} has no split {split!r} (--split): it has {', '.join(ds) or 'none'}")
        ds = ds[split]
    for n, row in enumerate(ds, 1):
        yield record_from_dict(row, f"{path}:{n}", fields, keep_fields, limits)


def _salvaged(path: str, records: Iterator[Record], errors: tuple) -> Iterator[Record]:
    """A reader's records; when the file turns out truncated or corrupt, the records read so far,
    then one error record for the rest of the file (not a traceback that loses them all)."""
    n = 0
    try:
        for r in records:
            n += 1
            yield r
    except errors as e:
        detail = " ".join(str(e).split()) or type(e).__name__
        if len(detail) > 200:  # warcio quotes the bad line, binary and as long as it is
            detail = detail[:200] + "..."
        yield Record(f"{path}:{n + 1}", error=f"{CORRUPT} ({detail}; the rest of {path} is lost)")


def check_input(path: str, fmt: str | None = None) -> str:
    """The input's format, once it is known to be there (before any model is loaded)."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "text" and (is_glob(path) or os.path.isdir(path)) and not _text_files(path):
        raise _no_files(path)
    elif not os.path.exists(path) and not is_glob(path):
        raise FileNotFoundError(f"{path}: no such file")
    return fmt


def read_records(path: str, fmt: str | None = None, fields: Fields | None = None, keep_fields: bool = False,
                 hf_split: str = "train", limits: Limits | None = None) -> Iterator[Record]:
    """The records of one input, in order. HTML pages come with `html` set: `render` makes them lines."""
    fields, limits = fields or Fields(), limits or Limits()
    fmt = check_input(path, fmt)
    corrupt = (OSError, EOFError, zlib.error)  # CorruptInput, gzip's BadGzipFile and EOFError, read errors
    if fmt == "jsonl":
        return _salvaged(path, read_jsonl(path, fields, keep_fields, limits), corrupt)
    if fmt == "parquet":
        from pyarrow import ArrowException

        return _salvaged(path, read_parquet(path, fields, keep_fields, limits), (*corrupt, ArrowException))
    if fmt in ("wet", "warc"):
        from warcio.exceptions import ArchiveLoadFailed

        return _salvaged(path, read_warc(path, limits), (*corrupt, ArchiveLoadFailed))
    if fmt == "hf":
        return read_hf(path, fields, keep_fields, hf_split, limits)
    return read_text_files(path, limits)


# -- output records ----------------------------------------------------------------------------
def line_labels(page, probs, min_prob: dict[str, float] | None = None) -> list[str | None]:
    """The label of every line of a page (None for blank lines), with per-class thresholds."""
    from .encoding import per_line

    return [None if c is None else LABELS[c] for c in per_line(page, probs, min_prob)]


def output_record(rec: Record, page, probs, labels: list[str | None] | None, keep: tuple[str, ...] | None,
                  with_probs: bool, with_labels: bool, with_lines: bool) -> dict:
    """The output record of an input record (`labels`: its `line_labels`, None for an error record)."""
    out = {"id": rec.id}
    out.update(rec.extra)
    if rec.title and "title" not in out:  # a kept input field of that name wins
        out["title"] = rec.title
    if rec.error:
        out["error"] = rec.error
        return out
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


def prepare(chunk: list[Record], encoder, renderer: str, limits: Limits) -> tuple[list[Record], list[Record], list]:
    """Render the HTML and tokenize the readable pages of a chunk: (chunk, readable records, encodings)."""
    for r in chunk:
        check_limits(render(r, renderer), limits)
    ok = [r for r in chunk if not r.error]
    return chunk, ok, encoder.encode_many([r.lines for r in ok])


_WORKER: dict = {}


class WorkersFailed(RuntimeError):
    """The --workers processes stopped; what was written so far stays resumable."""


def _exit_with_parent(parent: int):
    """End this worker process when its parent is gone: a parent killed with SIGKILL cannot stop
    its workers, and they would wait on their queue forever (~340 MB each)."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _init_worker(encoder, renderer, limits, parent):
    _exit_with_parent(parent)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker process
    _WORKER.update(encoder=encoder, renderer=renderer, limits=limits)
    gc.freeze()  # the imports and the encoder, out of the collector's work (see _frozen_heap)


def _prepare_in_worker(item):
    tag, chunk = item
    return (tag, *prepare(chunk, _WORKER["encoder"], _WORKER["renderer"], _WORKER["limits"]))


def _prepared(items: Iterator[tuple], encoder, renderer: str, limits: Limits, workers: int) -> Iterator[tuple]:
    """(tag, chunk) -> (tag, *prepare(chunk)), in order: in this thread, or spread over `workers`
    processes with at most 2 chunks per worker in flight (the dump is never read further ahead)."""
    if workers <= 0:
        for tag, chunk in items:
            yield (tag, *prepare(chunk, encoder, renderer, limits))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the parent runs torch threads; scripts calling predict_dump(workers>0) need the
    # usual `if __name__ == "__main__":` guard. An executor, not multiprocessing.Pool: a worker that
    # cannot start or gets killed makes Pool wait forever, the executor raises.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(encoder, renderer, limits, os.getpid())) as pool:
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


def _fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes):
    """Write, flush to the disk, then rename into place: after a crash or power cut the file is
    either whole or absent, never empty or half written."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


# -- naming and checking the outputs before anything runs ------------------------------------
_COMPRESSED = (".gz", ".zst", ".zstd")
_FORMAT_SUFFIXES = (".warc.wet", ".jsonl", ".ndjson", ".json", ".parquet", ".wet", ".warc", ".arc", ".txt", ".text",
                    *HTML_SUFFIXES)


def _input_base(inp: str) -> Path:
    """The file or folder an input names: a glob stands for the folder before its first wildcard."""
    parts = Path(inp).parts
    wild = len(parts)
    if is_glob(inp):
        wild = next((i for i, part in enumerate(parts) if any(ch in part for ch in "*?[")), wild)
    return Path(os.path.abspath(Path(*parts[:wild]) if wild else "."))


def _stem(base: Path) -> str:
    """The name minus its compression and format suffixes: data.part1.jsonl.gz -> data.part1."""
    name = base.name
    for suffixes in (_COMPRESSED, _FORMAT_SUFFIXES):
        for suffix in suffixes:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[:-len(suffix)]
                break
    return name or "input"


def output_names(inputs: list[str]) -> list[str]:
    """One output name per input (directory output), never the same for two inputs: the input's
    name without its known suffixes, led by as many parent folders as it takes to tell equal names
    apart (a/shard.jsonl, b/shard.jsonl -> a__shard, b__shard)."""
    bases = [_input_base(i) for i in inputs]
    for i, j in ((i, j) for i in range(len(inputs)) for j in range(i)):
        if os.path.abspath(inputs[i]) == os.path.abspath(inputs[j]):
            raise ValueError(f"{inputs[i]} is given twice")
    stems = [_stem(b) for b in bases]
    names = list(stems)
    for depth in range(1, max(len(b.parts) for b in bases) + 1):
        clashing = {n for n in names if names.count(n) > 1}
        if not clashing:
            return names
        for k, n in enumerate(names):
            if n in clashing:
                names[k] = "__".join([*bases[k].parent.parts[1:][-depth:], stems[k]])
    clash = next(n for n in names if names.count(n) > 1)
    same = [inputs[k] for k, n in enumerate(names) if n == clash]
    raise ValueError(f"{' and '.join(same)} would be written to the same output {clash}.jsonl; "
                     "label them into separate output directories, or rename one")


def _output_suffix(out: Path) -> str:
    suffix = "".join(out.suffixes[-2:]) if out.suffix == ".gz" else out.suffix
    if suffix not in (".jsonl", ".jsonl.gz", ".parquet"):
        raise ValueError(f"{out}: output must end in .jsonl, .jsonl.gz or .parquet (or be a directory)")
    return suffix


def is_dir_output(output: str) -> bool:
    return output.endswith(os.sep) or Path(output).is_dir() or not Path(output).suffix


DUMP_FORMATS = ("jsonl", "parquet", "wet", "warc")  # files of many records each


def _format_by_name(path: str) -> str | None:
    try:
        return detect_format(path)
    except ValueError:
        return None


def _marker(path: str) -> bool:
    """A file beside dump files that is not one: named _* (Spark's _SUCCESS) or empty (or gone)."""
    try:
        return os.path.basename(path).startswith("_") or os.path.getsize(path) == 0
    except OSError:
        return True


def expand_inputs(inputs: list[str], fmt: str | None) -> list[str]:
    """The inputs as they are read: a folder or glob of dump files (JSONL, Parquet, WARC, WET, by their names)
    stands for those files, each read in its own format; a folder or glob of pages (text or HTML files) stays
    one input of one page per file. One that holds both is refused (files named _* and empty ones aside). With a
    dump format given, every file of a folder or glob is read in it; with text or hf, every input as told."""
    if fmt in ("text", "hf"):
        return list(inputs)
    out = []
    for inp in inputs:
        if not is_glob(inp) and not (os.path.isdir(inp) and detect_format(inp) == "text"):
            out.append(inp)
            continue
        files, own = _listed_files(inp)
        if own:
            print(f"pagesieve: {inp}: left out {len(own)} file(s) that pagesieve wrote ({own[0]}, ...): name them "
                  "to read them", file=sys.stderr)
        if fmt:  # --format jsonl etc.: every file of the folder or glob in that format, markers aside
            files = [f for f in files if not _marker(f)]
            if not files:
                raise _no_files(inp)
            out.extend(files)
            continue
        dumps = [f for f in files if _format_by_name(f) in DUMP_FORMATS]
        others = [f for f in files if f not in set(dumps) and not _marker(f)] if dumps else []
        if dumps and others:
            other = others[0]
            raise ValueError(f"{inp} holds dump files ({dumps[0]}, ...) and other files ({other}, ...): name the "
                             "dump files alone (a quoted glob such as 'DIR/*.jsonl.gz'), or pass --format text to "
                             "read every file as one page")
        out.extend(dumps or [inp])
    return out


def plan_outputs(inputs: list[str], output: str, fmt: str | None) -> list[tuple[list[str], Path]]:
    """(inputs, output file) per output, every input checked to be there and every output name to be
    good: mistakes are found before the model loads and before anything is written. A folder or glob of dump
    files is its files (`expand_inputs`): with a directory output, one output each."""
    inputs = expand_inputs(inputs, fmt)
    for inp in inputs:
        check_input(inp, fmt)
    out = Path(output)
    if is_dir_output(output):
        jobs = [([inp], out / f"{name}.jsonl") for inp, name in zip(inputs, output_names(inputs))]
    else:
        _output_suffix(out)
        jobs = [(inputs, out)]
    for _, path in jobs:
        if any(os.path.abspath(inp) == os.path.abspath(path) for inp in inputs):
            raise ValueError(f"{path}: the output would overwrite an input")
        # a non-empty file that no run of pagesieve wrote (no summary, no unfinished run beside it) is the user's
        summary = path.with_name(path.name + ".summary.json")
        manifest = path.with_name(path.name + ".parts") / "manifest.json"
        if path.exists() and path.stat().st_size and not summary.exists() and not manifest.exists():
            raise ValueError(f"{path} exists and is not the output of a pagesieve run (no {summary.name} beside it): "
                             "remove it, or write to another output")
    return jobs


try:
    import fcntl
except ImportError:  # Windows: outputs are not locked
    fcntl = None


class OutputBusy(ValueError):
    """Another run is writing the same output."""


@contextlib.contextmanager
def locked_parts(out: Path) -> Iterator[Path]:
    """OUTPUT.parts/ (shards and manifest), created and held by this run alone: a second run on the
    same output (a requeued cluster job) stops at once instead of mixing its records in. A run that
    wrote no shard leaves no folder behind."""
    parts = out.with_name(out.name + ".parts")
    for _ in range(3):
        created = not parts.exists()
        try:
            parts.mkdir(parents=True, exist_ok=True)
            fd = os.open(parts / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ValueError(f"{out}: cannot write the output there ({e.strerror})") from None
        if fcntl is None:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputBusy(f"{out}: another pagesieve run (pid {holder}) is writing this output; let it "
                             "finish, or write to another output") from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(parts / "lock").st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)  # locked a lock file that a finishing run had just removed: take the new one
    else:
        raise OutputBusy(f"{out}: other pagesieve runs keep starting and finishing on this output")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield parts
    finally:
        if created and parts.is_dir() and not (parts / "manifest.json").exists():
            shutil.rmtree(parts, ignore_errors=True)  # removed while still locked
        os.close(fd)


# -- what a run is: resuming continues only the same run --------------------------------------
def _file_fingerprint(path: str, chunk: int = 1 << 20) -> dict:
    """Size, modification time and a hash of the first and last MiB: a file replaced or rewritten at
    the same path does not pass for the one a run started on."""
    st = os.stat(path)
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        h.update(fh.read(chunk))
        if st.st_size > chunk:
            fh.seek(max(chunk, st.st_size - chunk))
            h.update(fh.read(chunk))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha1": h.hexdigest()}


def input_fingerprint(path: str) -> dict:
    if os.path.isfile(path):
        return _file_fingerprint(path)
    # a folder (text files, a saved dataset) or a glob: its files' names, sizes and times
    files = ([str(p) for p in Path(path).rglob("*") if p.is_file()] if detect_format(path) == "hf"
             else _text_files(path))  # a saved dataset: all its files; pages: those read
    h = hashlib.sha1()
    for f in sorted(files):
        st = os.stat(f)
        h.update(f"{os.path.relpath(f, path) if os.path.isdir(path) else f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"files": len(files), "sha1": h.hexdigest()}


def model_identity(predictor) -> dict:
    """What a predictor's labels depend on: its model (config and a sample of every weight tensor, or
    the ONNX export's name, which holds a hash of them) and its runtime (engine, device, dtype)."""
    h = hashlib.sha1()
    parts = getattr(predictor, "parts", None)  # a cascade: its models' identities, and its settings below
    if parts:
        ids = [model_identity(p) for p in parts]
        h.update(json.dumps(ids).encode())
    config = getattr(predictor, "config", None)
    h.update(config.to_json_string().encode() if config is not None else b"")
    onnx, model = getattr(predictor, "onnx", None), getattr(predictor, "model", None)
    if onnx is not None:
        runtime = f"onnx {Path(onnx.path).name}" + "".join(f" -{o}" for o in getattr(onnx, "disabled", ()))
        h.update(runtime.encode())
    elif model is not None:
        import torch

        quantized = any("quantized" in type(m).__module__ for m in model.modules())
        dtype = getattr(predictor, "compute_dtype", None) or next(model.parameters()).dtype  # autocast: not the weights'
        runtime = f"torch{'-int8' if quantized else ''} {predictor.device.type} {dtype}"
        for name, t in model.state_dict().items():
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                flat = t.detach().reshape(-1)
                h.update(name.encode())
                h.update(flat[::max(1, flat.numel() // 4096)].float().cpu().numpy().tobytes())
    elif parts:
        runtime = " + ".join(i["runtime"] for i in ids)
    else:
        runtime = type(predictor).__name__
    return {"model": h.hexdigest(), "runtime": runtime}


def predict_dump(inputs: list[str] | str, output: str, *, predictor=None, model: str | None = None,
                 device: str | None = None, fmt: str | None = None, fields: Fields | None = None,
                 keep: tuple[str, ...] | None = None, with_probs: bool = False, with_labels: bool = True,
                 with_lines: bool = False, keep_fields: bool = False, renderer: str = "innertext",
                 hf_split: str = "train", batch_size: int | None = None, shard_size: int = 1000,
                 runtime: str = "auto", workers: int = 0, limits: Limits | None = None,
                 progress: bool = True, min_prob: dict[str, float] | None = None) -> dict:
    """Label every record of the inputs into `output` (.jsonl, .jsonl.gz, .parquet, or a directory:
    one output per input). Returns the summary (records in/out, errors by reason, non-blank lines by
    label), also written to OUTPUT.summary.json with `elapsed_s`: the seconds spent reading, labeling
    and writing that output, over all the runs that made it (model loading not counted).

    `min_prob`: per-class thresholds, e.g. {"content": 0.8} (the rule: `encoding.choose_labels`).
    `progress`: a bar on stderr, with a total and an ETA: pages when the inputs' record counts are
    cheap to know (Parquet metadata, text files, datasets), else bytes read of the input files.

    `workers` > 0 renders and tokenizes in that many processes while the model runs (0: one
    background thread); the output is the same either way. During the run the objects that exist before
    it are frozen (`gc.freeze`: the collector skips them, and `gc.get_objects` does not list them), unless
    some are frozen already; they are thawed after it. `limits`: sizes over which a record is an
    error record (`Limits()` by default). Missing inputs, bad output names, unwritable outputs and
    outputs another run holds raise (ValueError, FileNotFoundError) before the model loads."""
    from .predictor import check_min_prob

    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    if not inputs:
        raise ValueError("no input")
    min_prob = check_min_prob(min_prob)
    keep = check_keep(keep) if keep else None
    shard_size, workers = _whole("shard_size", shard_size, 1), _whole("workers", workers, 0)
    jobs = plan_outputs(inputs, output, fmt)
    opts = dict(fmt=fmt, fields=vars(fields or Fields()), keep=list(keep or []), with_probs=with_probs,
                with_labels=with_labels, with_lines=with_lines, keep_fields=keep_fields, renderer=renderer,
                hf_split=hf_split, shard_size=shard_size, limits=vars(limits or Limits()))
    if min_prob:  # only when set: an unfinished run of an earlier version stays resumable
        opts["min_prob"] = min_prob
    with contextlib.ExitStack() as stack:
        parts = [stack.enter_context(locked_parts(out)) for _, out in jobs]
        if predictor is None:
            from .predictor import Predictor

            predictor = Predictor.from_pretrained(model, device=device, runtime=runtime)
        identity = model_identity(predictor)
        stack.enter_context(_frozen_heap())
        summaries = [_run_one(job_inputs, out, p, predictor, identity, batch_size, opts, workers, progress)
                     for (job_inputs, out), p in zip(jobs, parts)]
    return _merge_summaries(summaries) if is_dir_output(output) else summaries[0]


def _whole(name: str, value, least: int) -> int:
    """`value` as an int (a numpy int too), or a ValueError naming it when it is no whole number >= least."""
    try:
        n = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        n = None
    if n is None or n < least:
        raise ValueError(f"{name} must be a whole number >= {least}, not {value!r}")
    return n


@contextlib.contextmanager
def _frozen_heap():
    """Keep the objects that exist before the run (torch's, transformers', the model's: 200,000-400,000) out of
    the collector's work while it runs: each full collection went over all of them (~1.4 ms a page of the fast
    tier: CHANGELOG). Garbage is collected first; what of them dies during the run is freed after it, when
    the heap is thawed. Nothing is frozen or thawed when anything in the process is frozen already."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    try:
        gc.freeze()
        yield
    finally:
        gc.unfreeze()


def _merge_summaries(summaries: list[dict]) -> dict:
    errors, lines = collections.Counter(), collections.Counter()
    for s in summaries:
        errors.update(s["errors"])
        lines.update(s["lines"])
    return {"records_in": sum(s["records_in"] for s in summaries), "records_out": sum(s["records_out"] for s in summaries),
            "errors": dict(errors), "lines": {label: lines[label] for label in LABELS},
            "outputs": [s["output"] for s in summaries]}


# what reading inputs gives, by version, in every run's key: an output finished by a run of another is labeled
# again, and its unfinished shards are not continued (2: folders and globs of dump files, HTML files, WARC and WET
# records of either kind, hidden files and pagesieve's own left out of folders)
READER = 2


def _run_key(identity: dict) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _finished(out: Path, parts: Path, key: str) -> dict | None:
    """The summary of `out` when the same run (same key) already finished it, else None: a restarted
    run keeps its finished outputs instead of labeling them again."""
    if not out.exists() or (parts / "manifest.json").exists():
        return None
    try:
        done = json.loads(out.with_name(out.name + ".summary.json").read_text())
    except (OSError, ValueError):
        return None
    if done.get("run") != key:
        return None
    return {k: v for k, v in done.items() if k not in ("run", "elapsed_s")}


def _manifest(parts: Path, identity: dict) -> dict:
    """The manifest of this run: a new one, or the unfinished run's when it is the same run (same
    inputs and contents, model, runtime and options), with its shards checked."""
    key = _run_key(identity)
    path = parts / "manifest.json"
    if not path.exists():
        return {"key": key, **identity, "shards": []}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = {}
    if old.get("key") != key:
        if old and old.get("reader") != identity["reader"]:
            raise ValueError(f"{parts} holds an unfinished run of an earlier pagesieve version, which read inputs "
                             f"otherwise; delete {parts} to start again, or write to another output.")
        changed = [what for k, what in (("inputs", "input files"), ("fingerprints", "input contents"),
                                        ("model", "model"), ("runtime", "runtime"), ("options", "options"))
                   if old.get(k) != identity[k]]
        hint = ""
        if "runtime" in changed and old.get("runtime"):  # e.g. --runtime auto on another machine, or another version
            hint = (f" The unfinished run used the runtime '{old['runtime']}', this one '{identity['runtime']}': "
                    "rerun with the --runtime that gives the first (torch, torch-bf16, ...; a cascade's two as "
                    "FAST+BASE, e.g. torch+onnx-int8) to continue it.")
        raise ValueError(f"{parts} holds an unfinished run with other inputs or options (differs: "
                         f"{', '.join(changed) or 'unreadable manifest'}); delete {parts} to start again, "
                         f"or write to another output.{hint}")
    for i, s in enumerate(old["shards"]):
        problem = _shard_problem(parts / s["file"], s)
        if problem:  # redo it and what follows
            print(f"pagesieve: {parts / s['file']} {problem}: redoing the run from record "
                  f"{sum(x['records'] for x in old['shards'][:i])}", file=sys.stderr)
            old["shards"] = old["shards"][:i]
            _write_atomic(path, json.dumps(old, indent=1).encode())
            break
    return old


def _shard_problem(path: Path, shard: dict) -> str | None:
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if data.count(b"\n") != shard["records"] or hashlib.sha1(data).hexdigest() != shard["sha1"]:
        return "does not match the manifest (record count or checksum)"
    return None


def record_count(path: str, fmt: str | None = None, hf_split: str = "train") -> int | None:
    """The number of records of an input when it is cheap to know (Parquet metadata, text files, a
    saved dataset), else None."""
    fmt = fmt or detect_format(path)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        if fmt == "text":
            return len(_text_files(path))
        if fmt == "hf":
            from datasets import DatasetDict, load_from_disk

            ds = load_from_disk(path)
            return (ds[hf_split] if isinstance(ds, DatasetDict) else ds).num_rows
    except Exception:  # unreadable or corrupt: its reader tells what is wrong
        return None
    return None


def input_size(path: str) -> int | None:
    """The bytes on disk of an input the readers report progress in (`Record.end`), else None."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    if detect_format(path) == "text":
        return sum(os.path.getsize(f) for f in _text_files(path))
    return None


class Progress:
    """The progress bar of one output, with a total and an ETA when the input's size is known: in
    pages when every input's record count is cheap to know, else in bytes of the input files read."""

    def __init__(self, name: str, inputs: list[str], fmt: str | None, hf_split: str, done: int, enabled: bool):
        self.name, self.enabled, self.bar, self.pages = name, enabled, None, done
        counts = [record_count(i, fmt, hf_split) for i in inputs] if enabled else [None]
        # the inputs' sizes only when the bar counts bytes (stat-ing a folder of text files is not free)
        self.sizes = [input_size(i) for i in inputs] if enabled and None in counts else [None] * len(inputs)
        self.by_bytes = None in counts and None not in self.sizes
        self.total = sum(self.sizes) if self.by_bytes else (sum(counts) if None not in counts else None)
        self.position = 0 if self.by_bytes else done  # bytes of the inputs read (`Record.end`), or pages

    def skipped(self, rec: Record):
        """A record that a resumed run reads again and skips (its shard is done)."""
        if self.by_bytes and rec.end is not None:
            self.position = max(self.position, rec.end)

    def update(self, chunk: list[Record]):
        self.pages += len(chunk)
        if not self.enabled:
            return
        if self.bar is None:  # made at the first piece: a resumed run's rate and ETA count only its own work
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.position, desc=self.name, file=sys.stderr,
                            dynamic_ncols=True, **(dict(unit="B", unit_scale=True, unit_divisor=1024)
                                                   if self.by_bytes else dict(unit="page")))
        ends = [r.end for r in chunk if r.end is not None]
        self.position = max([self.position, *ends]) if self.by_bytes else self.pages
        self.bar.update(self.position - self.bar.n)
        if self.by_bytes:
            self.bar.set_postfix_str(f"{self.pages} pages", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _run_one(inputs: list[str], out: Path, parts: Path, predictor, identity: dict, batch_size: int | None,
             opts: dict, workers: int, progress: bool) -> dict:
    suffix = _output_suffix(out)
    manifest_path = parts / "manifest.json"
    run = {"inputs": inputs, "fingerprints": [input_fingerprint(i) for i in inputs], **identity, "options": opts,
           "reader": READER}
    finished = _finished(out, parts, _run_key(run))
    if finished is not None:  # the same run again (a restarted job): its finished outputs stay
        print(f"pagesieve: {out} was finished by the same run: kept (remove it to label again)", file=sys.stderr)
        return finished
    manifest = _manifest(parts, run)
    done_records = sum(s["records"] for s in manifest["shards"])
    fields, limits = Fields(**opts["fields"]), Limits(**opts["limits"])
    bar = Progress(out.name, inputs, opts["fmt"], opts["hf_split"], done_records, progress)

    def records():
        base = 0  # bytes of the inputs before this one: `end` counts from the start of the first
        for inp, size in zip(inputs, bar.sizes):
            for r in read_records(inp, opts["fmt"], fields, opts["keep_fields"], opts["hf_split"], limits):
                if r.end is not None:
                    r.end += base
                yield r
            base += size or 0

    def skipped(it, n):  # resume: skip what finished shards already hold
        for k, r in enumerate(it):
            if k >= n:
                yield r
            else:
                bar.skipped(r)

    shard_size = opts["shard_size"]
    keep = tuple(opts["keep"]) or None
    min_prob = opts.get("min_prob")

    piece = PIECE.get(predictor.device.type, 64)

    def pieces():  # shards cut into pieces of <= `piece` records; the tag marks a shard's last piece
        # a shard's pieces depend on its number only, so a resumed run batches pages as the first run did
        for k, shard in enumerate(_chunks(skipped(records(), done_records), shard_size), len(manifest["shards"])):
            i, size = 0, min(FIRST_PIECE, piece) if k == 0 else piece
            while i < len(shard):
                yield i + size >= len(shard), shard[i:i + size]
                i, size = i + size, min(2 * size, piece)

    lines, errors, by_label, n_records = [], collections.Counter(), collections.Counter(), 0
    shard_started = time.monotonic()
    ahead_of = getattr(predictor, "ahead", None)  # a predictor without it (duck-typed) has nothing to run ahead

    def run_ahead(items):  # in the reading thread: the model's work that need not wait for the chunks before
        for tag, chunk, ok, encoded in items:
            yield tag, chunk, ok, encoded, ahead_of(encoded, batch_size) if ok and ahead_of else None

    prepared = _prepared(pieces(), predictor.encoder, opts["renderer"], limits, workers)
    for shard_ends, chunk, ok, encoded, ahead in _prefetch(run_ahead(prepared)):
        if not ok:
            probs = []
        elif ahead is None:
            probs = predictor.probs(encoded, batch_size)
        else:
            probs = predictor.probs(encoded, batch_size, ahead)
        by_id = {id(r): (e, p) for r, e, p in zip(ok, encoded, probs)}
        for r in chunk:
            page, pr = by_id.get(id(r), (None, None))
            if r.error:
                errors[r.error.split(" (")[0]] += 1
            labels = None if r.error else line_labels(page, pr, min_prob)
            by_label.update(label for label in labels or () if label)
            lines.append(json.dumps(output_record(r, page, pr, labels, keep, opts["with_probs"], opts["with_labels"],
                                                  opts["with_lines"]), ensure_ascii=False, default=str))
        n_records += len(chunk)
        bar.update(chunk)
        if shard_ends:
            name = f"shard-{len(manifest['shards']):06d}.jsonl"
            data = ("\n".join(lines) + "\n").encode("utf-8")
            _write_atomic(parts / name, data)
            now = time.monotonic()
            manifest["shards"].append({"file": name, "records": n_records, "sha1": hashlib.sha1(data).hexdigest(),
                                       "errors": dict(errors), "lines": dict(by_label),
                                       "seconds": round(now - shard_started, 3)})
            _write_atomic(manifest_path, json.dumps(manifest, indent=1).encode())  # the shard counts only once listed
            lines, errors, by_label, n_records, shard_started = [], collections.Counter(), collections.Counter(), 0, now
    bar.close()

    written = _assemble(parts, manifest, out, suffix)
    errors, by_label = collections.Counter(), collections.Counter()
    for s in manifest["shards"]:
        errors.update(s["errors"])
        by_label.update(s.get("lines", {}))
    total = sum(s["records"] for s in manifest["shards"])
    # the work of this run and of the runs it resumes (their shards' time), model loading not counted
    elapsed = sum(s.get("seconds", 0) for s in manifest["shards"]) + (time.monotonic() - shard_started)
    summary = {"output": str(out), "records_in": total, "records_out": written, "errors": dict(errors),
               "lines": {label: by_label[label] for label in LABELS}}
    _write_atomic(out.with_name(out.name + ".summary.json"),
                  json.dumps({**summary, "elapsed_s": round(elapsed, 1), "run": manifest["key"]}, indent=1).encode())
    shutil.rmtree(parts)
    return summary


def parquet_schema(opts: dict):
    """A fixed schema, whatever the shard: id, error, then the requested outputs; the input's other
    fields (keep_fields) as one JSON column `fields`."""
    import pyarrow as pa

    cols = [("id", pa.string()), ("title", pa.string()), ("error", pa.string())]  # title: of HTML pages
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
        if not isinstance(r.get("title", ""), str):  # a kept input field "title" that is not text
            extra["title"], r = r["title"], {**r, "title": None}
        for n in schema.names:
            cols[n].append(json.dumps(extra, ensure_ascii=False, default=str) if n == "fields" else r.get(n))
    return pa.table(cols, schema=schema)


def _assemble(parts: Path, manifest: dict, out: Path, suffix: str) -> int:
    """Join the shards into the output, each checked against the manifest again; returns the number
    of records written. On failure (a full disk) no partial output is left."""
    tmp = out.with_name(out.name + ".tmp")

    def shards():  # the bytes of each shard, one in memory at a time
        for s in manifest["shards"]:
            data = (parts / s["file"]).read_bytes()
            if hashlib.sha1(data).hexdigest() != s["sha1"]:
                raise RuntimeError(f"{parts / s['file']} changed while the run was writing it; rerun the same "
                                   "command to redo it")
            yield data

    written = 0
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            schema = parquet_schema(manifest["options"])
            with pq.ParquetWriter(str(tmp), schema) as writer:
                for data in shards():
                    rows = [json.loads(l) for l in data.split(b"\n")[:-1]]  # (U+2028 is no line end)
                    writer.write_table(to_table(rows, schema))
                    written += len(rows)
        else:
            with open(tmp, "wb") as raw:
                sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if suffix == ".jsonl.gz" else raw
                for data in shards():
                    sink.write(data)
                    written += data.count(b"\n")
                if sink is not raw:
                    sink.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)
    return written
