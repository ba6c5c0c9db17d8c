"""Fault-injection soak of `pagesieve predict` (issue 17); not run in CI.

    python benchmarks/soak.py                       # 1,000,000 records (~30 min on 2 shared cores)
    python benchmarks/soak.py --records 20000       # ~1.5 min (100,000: ~3 min)
    python benchmarks/soak.py --records 20000 --kills 8 --seed 3 --workdir /tmp/soak --keep

Builds a crawl of `--records` input records spread over JSONL.zst, Parquet, WET (.warc.wet.gz) and
WARC (.warc.gz, HTML in legacy charsets) shards, with every fault of issue 17 injected: bad JSON,
lone surrogates (escaped and as raw bytes), bad UTF-8, Unicode line separators, blank lines, values
that are not objects, records without text, empty pages, oversized records, over-long lines, pages of
too many lines, a compressed bomb (one line of 64 MB of spaces), a truncated .zst shard, a corrupt
Parquet row group, a WET shard cut inside its last record, HTML in windows-1251 / Shift_JIS / latin-1 /
GB18030 (HTTP header, <meta> or nothing declared) and binary bodies served as text/html.

The generator knows what each input record must give: its id (the record's own, or FILE:N for a
record that has none or cannot be read) and either a page (its lines, exactly) or an error of a given
kind. Then, with a tiny random model (fast; saved like tests/conftest.py does), runs of
`pagesieve predict INPUTS -o OUT/all.jsonl --with-lines` (`--output dir`: `-o OUT/`, one output per input):
1. a reference run, uninterrupted;
2. the soak run on another output: killed with SIGKILL at random moments `--kills` times (during the
   start-up, or while it works) and restarted with the same command each time; then once with the
   output files limited in size (RLIMIT_FSIZE; there is no size-limited tmpfs here): the disk fills up
   while the output is assembled and the run must stop with a one-line error, keeping its shards and
   leaving no partial output; then run to the end.
Checks: records out = records in; each output row is the expected one, in order (id; labels for
every line and the lines themselves, decoded right; or the expected error); no row missing or extra;
the soak's output byte-identical to the reference's; no traceback anywhere. Prints the figures and
exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

WORDS = {"en": "the weather report says rain will reach the coast by evening and winds".split(),
         "ru": "погода завтра будет дождливой на побережье ожидается сильный ветер".split(),
         "ar": "قال المتحدث إن الحكومة ستعلن عن خطة جديدة للاقتصاد هذا الأسبوع".split(),
         "ja": "東京 天気 明日 雨 海岸 夕方 風 強い 予報 発表".split()}
MENU = ["Home", "News", "Sport", "Главная", "Новости", "الرئيسية", "Subscribe", "Log in", "© 2026 Example"]
SEPARATORS = ["\u2028", "\u2029", "\x85", "\x0c", "\x1c", "\x0b"]  # text inside a line, not line ends
CHARSET_PAGES = {  # codec, label, the three lines of the page
    "cp1251": ("windows-1251", ["Главная Новости Спорт", "Лавров: конфликт может перерасти в региональный",
                                "Министр заявил в четверг, что переговоры продолжатся на следующей неделе."]),
    "shift_jis": ("Shift_JIS", ["ホーム ニュース", "東京都は木曜日、新しい交通計画を発表しました。",
                                "市民の生活に大きな影響があると専門家は指摘しています。"]),
    "latin-1": ("iso-8859-1", ["Accueil Actualités", "Le café était fermé à côté de la gare.",
                               "Le garçon a dit que la réunion aurait lieu là-bas, près du marché."]),
    "gb18030": ("gb2312", ["首页 新闻 体育", "国务院新闻办公室今天举行新闻发布会。", "介绍今年前三季度的经济运行情况。"]),
}
# the limits of the runs (small, so that oversized records are cheap to make)
MAX_RECORD, MAX_LINE, MAX_LINES = 20_000, 4_000, 300
CORRUPT = "truncated or corrupt input"


@dataclass
class Input:
    path: Path
    fmt: str
    expected: list = field(default_factory=list)  # (id, error kind or None, number of lines, digest of the lines)
    faults: dict = field(default_factory=dict)  # fault -> count
    written: int = 0  # records written (a truncated or corrupt file gives fewer)

    def add(self, rid, kind=None, lines=None, fault=None):
        self.expected.append((rid, kind, len(lines or ()), digest(lines) if lines is not None else None))
        if fault:
            self.faults[fault] = self.faults.get(fault, 0) + 1


def digest(lines: list[str]) -> bytes:
    return hashlib.sha1("\n".join(lines).encode("utf-8")).digest()


def rendered(lines: list[str]) -> list[str]:
    """The lines of html_page([lines[0], lines[-1], " ".join(lines)]) once rendered."""
    return [lines[0], lines[-1], " ".join(l for l in lines if l)]


def page_lines(rng: random.Random) -> list[str]:
    words = WORDS[rng.choice(list(WORDS))]
    body = [" ".join(rng.choices(words, k=rng.randint(4, 12))) for _ in range(rng.randint(1, 4))]
    lines = rng.sample(MENU, 3) + body + rng.sample(MENU, 2)
    if rng.random() < 0.2:
        lines.insert(rng.randint(1, len(lines) - 1), "")  # a blank line: a null label
    return lines


def html_page(lines: list[str], meta: str = "") -> str:
    nav, h1, p = lines
    return (f"<!doctype html><html><head>{meta}<title>t</title></head><body><nav>{nav}</nav>"
            f"<h1>{h1}</h1><p>{p}</p></body></html>")


# -- JSONL.zst -----------------------------------------------------------------------------------
def jsonl_record(inp: Input, rng: random.Random, rid: str, n: int, fault: float) -> bytes:
    """One line of a JSONL file (with its newline), its expectation added to `inp`."""
    fallback = f"{inp.path}:{n}"
    if fault >= 0.03:
        lines = page_lines(rng)
        inp.add(rid, None, lines)
        if rng.random() < 0.5:
            return json.dumps({"id": rid, "text": "\n".join(lines)}, ensure_ascii=False).encode() + b"\n"
        return json.dumps({"id": rid, "lines": lines, "url": f"https://ex.com/{rid}"}).encode() + b"\n"
    kind = rng.choice(["bad_json", "bad_utf8", "raw_surrogate", "escaped_surrogate", "separators", "blank_line",
                       "not_object", "no_text", "empty", "too_large", "line_too_long", "too_many_lines", "html"])
    lines = page_lines(rng)
    text = "\n".join(lines)
    if kind == "bad_json":
        inp.add(fallback, "bad JSON", fault=kind)
        return json.dumps({"id": rid, "text": text}).encode()[:-7] + b"\n"
    if kind == "bad_utf8":
        inp.add(fallback, "bad encoding", fault=kind)
        return json.dumps({"id": rid, "text": text}, ensure_ascii=False).encode()[:-2] + b' caf\xe9"}\n'  # latin-1
    if kind == "raw_surrogate":  # a cut emoji written as raw UTF-8-ish bytes: not UTF-8
        inp.add(fallback, "bad encoding", fault=kind)
        return b'{"id": "' + rid.encode() + b'", "text": "cut \xed\xa0\xbd emoji"}\n'
    if kind == "escaped_surrogate":  # "\ud83d" in JSON: a page, the surrogate replaced by U+FFFD
        data = json.dumps({"id": rid, "text": "\n".join([lines[0] + " \ud83d", *lines[1:]])}).encode() + b"\n"
        inp.add(rid, None, [lines[0] + " \ufffd", *lines[1:]], fault=kind)
        return data
    if kind == "separators":  # \u2028, \x85, \x0c... inside lines: the same number of lines
        lines = [l + rng.choice(SEPARATORS) + "x" if l else l for l in lines]
        inp.add(rid, None, lines, fault=kind)
        return json.dumps({"id": rid, "text": "\n".join(lines)}, ensure_ascii=rng.random() < 0.5).encode() + b"\n"
    if kind == "blank_line":
        inp.add(fallback, "blank line", fault=kind)
        return b"\n"
    if kind == "not_object":
        inp.add(fallback, "not a JSON object", fault=kind)
        return json.dumps(rng.choice([[1, 2], "text", 3, None, True])).encode() + b"\n"
    if kind == "no_text":
        inp.add(rid, "no text field", fault=kind)
        return json.dumps({"id": rid, "body": text}).encode() + b"\n"
    if kind == "empty":
        inp.add(rid, "empty page", fault=kind)
        return json.dumps({"id": rid, "text": rng.choice(["", " \n \n", "\n\n\n"])}).encode() + b"\n"
    if kind == "too_large":  # over --max-record-bytes: skipped unparsed, so the id is FILE:N
        inp.add(fallback, "record too large", fault=kind)
        return json.dumps({"id": rid, "text": text + "\n" + "x" * MAX_RECORD}).encode() + b"\n"
    if kind == "line_too_long":
        inp.add(rid, "line too long", fault=kind)
        return json.dumps({"id": rid, "text": text + "\n" + "y" * (MAX_LINE + 1)}).encode() + b"\n"
    if kind == "too_many_lines":
        inp.add(rid, "too many lines", fault=kind)
        return json.dumps({"id": rid, "text": "\n".join(["z"] * (MAX_LINES + 1))}).encode() + b"\n"
    # html: a JSON html field, rendered to its three lines
    inp.add(rid, None, rendered(lines), fault=kind)
    return json.dumps({"id": rid, "html": html_page([lines[0], lines[-1], " ".join(lines)])},
                      ensure_ascii=False).encode() + b"\n"


def write_jsonl_zst(inp: Input, n: int, rng: random.Random, prefix: str, truncate: bool, bomb: bool):
    import zstandard

    cctx = zstandard.ZstdCompressor(level=3)
    with open(inp.path, "wb") as raw, cctx.stream_writer(raw) as out:
        for i in range(1, n + 1):
            if bomb and i == n // 2:  # one line of 64 MB of spaces: a few KB compressed
                inp.add(f"{inp.path}:{i}", "record too large", fault="compressed_bomb")
                chunk = b" " * (1 << 20)
                for _ in range(64):
                    out.write(chunk)
                out.write(b"\n")
                continue
            out.write(jsonl_record(inp, rng, f"{prefix}{i}", i, rng.random()))
    if truncate:  # cut inside the frame: the records that decompress, then one error record
        data = inp.path.read_bytes()
        cut = len(data) * 2 // 3
        inp.path.write_bytes(data[:cut])
        prefix_bytes = zstandard.ZstdDecompressor().decompressobj().decompress(data[:cut])
        kept = prefix_bytes.count(b"\n")
        inp.expected = inp.expected[:kept] + [(f"{inp.path}:{kept + 1}", CORRUPT, 0, None)]
        inp.faults["truncated_zst (records lost)"] = n - kept


# -- Parquet ---------------------------------------------------------------------------------------
def write_parquet(inp: Input, n: int, rng: random.Random, prefix: str, corrupt: bool, group_rows: int = 1000):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for i in range(1, n + 1):
        rid, r = f"{prefix}{i}", rng.random()
        lines = page_lines(rng)
        if r >= 0.03:
            rows.append({"id": rid, "text": "\n".join(lines), "html": None})
            inp.add(rid, None, lines)
            continue
        kind = rng.choice(["empty", "no_text", "too_large", "line_too_long", "too_many_lines", "separators", "html"])
        if kind == "empty":
            rows.append({"id": rid, "text": " \n", "html": None})
            inp.add(rid, "empty page", fault=kind)
        elif kind == "no_text":
            rows.append({"id": rid, "text": None, "html": None})
            inp.add(rid, "no text field", fault=kind)
        elif kind == "too_large":
            rows.append({"id": rid, "text": "w" * (MAX_RECORD + 1), "html": None})
            inp.add(rid, "record too large", fault=kind)
        elif kind == "line_too_long":
            rows.append({"id": rid, "text": "Home\n" + "v" * (MAX_LINE + 1), "html": None})
            inp.add(rid, "line too long", fault=kind)
        elif kind == "too_many_lines":
            rows.append({"id": rid, "text": "\n".join(["u"] * (MAX_LINES + 1)), "html": None})
            inp.add(rid, "too many lines", fault=kind)
        elif kind == "separators":
            lines = [l + rng.choice(SEPARATORS) + "x" if l else l for l in lines]
            rows.append({"id": rid, "text": "\n".join(lines), "html": None})
            inp.add(rid, None, lines, fault=kind)
        else:
            rows.append({"id": rid, "text": None, "html": html_page([lines[0], lines[-1], " ".join(lines)])})
            inp.add(rid, None, rendered(lines), fault=kind)
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("html", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), inp.path, row_group_size=group_rows)
    if corrupt:  # the page header of one row group's text column overwritten: that row group is lost
        meta = pq.ParquetFile(inp.path).metadata
        group = meta.num_row_groups // 2
        col = meta.row_group(group).column(1)
        with open(inp.path, "r+b") as fh:
            fh.seek(col.data_page_offset)
            fh.write(b"\xff" * 16)
        first = sum(meta.row_group(g).num_rows for g in range(group))
        for k in range(first, first + meta.row_group(group).num_rows):
            inp.expected[k] = (f"{inp.path}:{k + 1}", CORRUPT, 0, None)
        inp.faults["corrupt_row_group (rows lost)"] = meta.row_group(group).num_rows


# -- WET and WARC ----------------------------------------------------------------------------------
def warc_id(prefix: str, i: int) -> str:
    h = hashlib.sha1(f"{prefix}{i}".encode()).hexdigest()
    return f"<urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}>"


def write_wet(inp: Input, n: int, rng: random.Random, prefix: str, truncate: bool):
    from warcio.warcwriter import WARCWriter

    with open(inp.path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warcinfo_record(inp.path.name, {"software": "soak"}))
        for i in range(1, n + 1):
            rid, r = warc_id(prefix, i), rng.random()
            headers = {"WARC-Record-ID": rid, "WARC-Date": "2026-01-01T00:00:00Z"}
            lines = page_lines(rng)
            if r < 0.01:  # a metadata record between pages: not a page, no output
                w.write_record(w.create_warc_record(f"https://ex.com/{prefix}{i}/m", "metadata",
                                                    payload=io.BytesIO(b"fetchTimeMs: 12\n"),
                                                    warc_headers_dict={**headers, "WARC-Record-ID": rid[:-2] + "m>"}))
                inp.faults["metadata_record"] = inp.faults.get("metadata_record", 0) + 1
            if r >= 0.03:
                body = "\n".join(lines).encode()
                inp.add(rid, None, lines)
            else:
                kind = rng.choice(["not_utf8", "empty", "too_large", "separators"])
                if kind == "not_utf8":
                    body = "Menü\nCafé crème".encode("latin-1")
                    inp.add(rid, "bad encoding", fault=kind)
                elif kind == "empty":
                    body = b" \n\n"
                    inp.add(rid, "empty page", fault=kind)
                elif kind == "too_large":
                    body = b"t" * (MAX_RECORD + 1)
                    inp.add(rid, "record too large", fault=kind)
                else:
                    lines = [l + rng.choice(SEPARATORS) + "x" if l else l for l in lines]
                    body = "\n".join(lines).encode()
                    inp.add(rid, None, lines, fault=kind)
            w.write_record(w.create_warc_record(f"https://ex.com/{prefix}{i}", "conversion", payload=io.BytesIO(body),
                                                warc_content_type="text/plain", warc_headers_dict=headers))
    if truncate:  # cut inside the last record: an error record in its place
        data = inp.path.read_bytes()
        inp.path.write_bytes(data[:len(data) - 40])
        inp.expected[-1] = (inp.expected[-1][0], CORRUPT, 0, None)  # (the record's id: its header is whole)
        inp.faults["truncated_wet (last record)"] = 1


def write_warc(inp: Input, n: int, rng: random.Random, prefix: str):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(inp.path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for i in range(1, n + 1):
            rid = warc_id(prefix, i)
            codec = rng.choice(list(CHARSET_PAGES))
            label, lines = CHARSET_PAGES[codec]
            how = rng.choice(["header", "meta", "none", "lying header", "junk", "pdf"])
            ctype, meta = "text/html", ""
            if how == "header":
                ctype = f"text/html; charset={label}"
            elif how == "meta":
                meta = f'<meta charset="{label}">'
            elif how == "lying header":
                ctype, meta = "text/html; charset=utf-8", f'<meta http-equiv="Content-Type" content="text/html; charset={label}">'
            body = html_page(lines, meta).encode(codec)
            if how == "junk":  # binary data served as text/html: no charset fits it
                body = bytes(rng.randrange(256) for _ in range(2000))
                inp.add(rid, "bad encoding", fault="binary_html")
            elif how == "pdf":
                ctype = "application/pdf"
                inp.add(rid, "not HTML", fault="not_html")
            else:
                inp.add(rid, None, lines, fault=f"charset_{how.replace(' ', '_')}")
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(f"https://ex.com/{prefix}{i}", "response", payload=io.BytesIO(body),
                                                http_headers=http, warc_headers_dict={
                                                    "WARC-Record-ID": rid, "WARC-Date": "2026-01-01T00:00:00Z"}))


def build_inputs(root: Path, n: int, files_per_format: int, rng: random.Random) -> list[Input]:
    share = {"jsonl.zst": ("jsonl", 0.4), "parquet": ("parquet", 0.3), "warc.wet.gz": ("wet", 0.25),
             "warc.gz": ("warc", 0.05)}
    inputs = []
    for ext, (kind, frac) in share.items():
        total = max(files_per_format, round(n * frac))
        for f in range(files_per_format):
            count = total // files_per_format + (1 if f < total % files_per_format else 0)
            inp = Input(root / kind / f"{kind}-{f:02d}.{ext}", ext)
            inp.path.parent.mkdir(parents=True, exist_ok=True)
            inp.written = count
            prefix = f"{kind[0]}{f}-"
            if ext == "jsonl.zst":
                write_jsonl_zst(inp, count, rng, prefix, truncate=f == 1, bomb=f == 0)
            elif ext == "parquet":
                write_parquet(inp, count, rng, prefix, corrupt=f == 1)
            elif ext == "warc.wet.gz":
                write_wet(inp, count, rng, prefix, truncate=f == 1)
            else:
                write_warc(inp, count, rng, prefix)
            inputs.append(inp)
    return inputs


# -- runs ------------------------------------------------------------------------------------------
def tiny_model(path: Path) -> Path:
    from pagesieve import modeling

    model = modeling.tiny_random(encoding=dict(max_length=64, line_token_budget=8, overlap=16))
    modeling.save(model, path)
    return path


class Runner:
    def __init__(self, inputs: list[Input], model: Path, args):
        self.base = [sys.executable, "-m", "pagesieve", "predict", *[str(i.path) for i in inputs],
                     "--model", str(model), "--runtime", args.runtime, "--shard-size", str(args.shard_size),
                     "--workers", str(args.workers), "--threads", str(args.threads), "--max-record-bytes", str(MAX_RECORD),
                     "--max-line-bytes", str(MAX_LINE), "--max-lines", str(MAX_LINES), "--with-lines"]
        self.env = {**os.environ, "TQDM_DISABLE": "1"}
        self.mode = args.output

    def start(self, out: Path, fsize: int | None = None) -> subprocess.Popen:
        def limit():
            if fsize:
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        target = str(out / "all.jsonl") if self.mode == "file" else str(out) + "/"
        out.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen([*self.base, "-o", target], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, env=self.env, preexec_fn=limit)

    def run(self, out: Path, fsize: int | None = None) -> tuple[int, str, float]:
        t = time.time()
        p = self.start(out, fsize)
        _, err = p.communicate()
        return p.returncode, err, time.time() - t


def no_traceback(err: str, what: str, failures: list):
    if "Traceback" in err:
        failures.append(f"{what}: traceback:\n{err[-3000:]}")


def output_files(out: Path, inputs: list[Input], mode: str) -> list[tuple[Path, list[Input]]]:
    """(output file, the inputs whose rows it holds, in order)."""
    if mode == "file":
        return [(out / "all.jsonl", inputs)]
    from pagesieve.dump import output_names

    return [(out / f"{name}.jsonl", [inp]) for name, inp in zip(output_names([str(i.path) for i in inputs]), inputs)]


def rows_of(path: Path):
    with open(path, "rb") as fh:  # rows end at \n only (U+2028 is text in a row)
        for line in fh:
            yield json.loads(line)


def check_output(path: Path, inputs: list[Input], failures: list, stats: dict):
    """Every row the expected one, in order: ids, labels for every line, the lines themselves (decoded
    right, not mixed up), the expected errors; no row missing, none extra."""
    if not path.exists():
        failures.append(f"{path}: missing")
        return
    rows = rows_of(path)
    for inp in inputs:
        bad = 0
        for k, (rid, kind, n_lines, lines) in enumerate(inp.expected):
            row = next(rows, None)
            if row is None:
                failures.append(f"{inp.path}: {len(inp.expected)} records in, {k} out")
                return
            stats["rows"] += 1
            ok = row.get("id") == rid
            if kind is None:
                labels = row.get("labels")
                ok = ok and "error" not in row and isinstance(labels, list) and len(labels) == n_lines
                ok = ok and isinstance(row.get("lines"), list) and digest(row["lines"]) == lines
                ok = ok and all((lab is None) == (not line.strip()) for lab, line in zip(labels, row["lines"]))
                stats["pages"] += 1
            else:
                ok = ok and str(row.get("error", "")).startswith(kind) and "labels" not in row
                stats["errors"] += 1
            if not ok:
                bad += 1
                if bad <= 3:
                    failures.append(f"{inp.path} row {k + 1}: expected id {rid!r} {kind or f'{n_lines} labels'}, "
                                    f"got {json.dumps(row, ensure_ascii=False)[:300]}")
        if bad > 3:
            failures.append(f"{inp.path}: {bad} rows not as expected")
    extra = sum(1 for _ in rows)
    if extra:
        failures.append(f"{path}: {extra} rows more than records in")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="input records in all (default 1,000,000)")
    ap.add_argument("--files-per-format", type=int, default=3, help="input files of each format (default 3)")
    ap.add_argument("--kills", type=int, default=6, help="SIGKILLs of the soak run (default 6)")
    ap.add_argument("--shard-size", type=int, help="records per shard (default: records / 100, 100 to 1000)")
    ap.add_argument("--workers", type=int, default=0, help="--workers of the runs (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="--threads of the runs (default 1: the tiny model needs "
                    "no more, and more threads than free cores make torch crawl)")
    ap.add_argument("--runtime", default="torch", help="--runtime of the runs (default torch: the tiny model is "
                    "fast either way)")
    ap.add_argument("--output", choices=("file", "dir"), default="file",
                    help="one output file for all inputs (default: resuming continues from the last shard), or "
                         "a directory: one output per input")
    ap.add_argument("--no-disk-full", action="store_true", help="skip the run with a size-limited output")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", help="folder for inputs and outputs (default: a temporary one, removed)")
    ap.add_argument("--keep", action="store_true", help="keep --workdir")
    args = ap.parse_args(argv)
    args.shard_size = args.shard_size or max(100, min(1000, args.records // 100))
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="pagesieve-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    try:
        t0 = time.time()
        inputs = build_inputs(work / "in", args.records, args.files_per_format, rng)
        model = tiny_model(work / "model")
        n_in = sum(len(i.expected) for i in inputs)
        size = sum(i.path.stat().st_size for i in inputs)
        print(f"inputs: {len(inputs)} files, {sum(i.written for i in inputs):,} records written, {size / 2**20:.1f} MiB, "
              f"built in {time.time() - t0:.0f} s; {n_in:,} records to read (truncation and corruption lose some: "
              "one error record stands for what a file loses)")
        for fmt in ("jsonl.zst", "parquet", "warc.wet.gz", "warc.gz"):
            print(f"  {fmt:12s} {sum(i.written for i in inputs if i.fmt == fmt):>9,} written "
                  f"{sum(len(i.expected) for i in inputs if i.fmt == fmt):>9,} to read")
        faults: dict = {}
        for i in inputs:
            for k, v in i.faults.items():
                faults[k] = faults.get(k, 0) + v
        print("  faults injected: " + ", ".join(f"{k} {v:,}" for k, v in sorted(faults.items())))
        runner = Runner(inputs, model, args)

        ref = work / "ref"
        code, err, ref_s = runner.run(ref)
        no_traceback(err, "reference run", failures)
        summary = next((l for l in err.splitlines() if l.startswith("pagesieve predict:")), "(no summary)")
        print(f"reference run: {ref_s:.0f} s ({n_in / ref_s:,.0f} records/s), exit {code}: {summary}")
        if code != 1:  # 1: the run is complete, and says that inputs were truncated or corrupt
            failures.append(f"reference run: exit {code}:\n{err[-2000:]}")
            raise SystemExit(report(failures))

        # the start-up of a run (imports, model): kills land before it, during it and during the work
        one = work / "one.jsonl"
        one.write_text('{"id": "x", "text": "Home"}\n')
        t = time.time()
        subprocess.run([*runner.base[:4], str(one), *runner.base[4 + len(inputs):], "-o", str(work / "one-out") + "/"],
                       capture_output=True, env=runner.env)
        startup_s = time.time() - t
        soak = work / "soak"
        events, kills, done = [], 0, False
        while kills < args.kills:  # SIGKILLs: during the start-up, or during the work (about 70% of it in all)
            if kills % 3 == 2:
                delay = rng.uniform(0.5, startup_s)
            else:
                delay = startup_s + rng.uniform(0, 1.4 * max(1.0, ref_s - startup_s) / args.kills)
            p = runner.start(soak)
            try:
                _, err = p.communicate(timeout=delay)
                events.append(f"run finished before its kill at {delay:.1f} s (exit {p.returncode})")
                no_traceback(err, "soak run", failures)
                done = True
                break
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                _, err = p.communicate()
                kills += 1
                no_traceback(err, f"soak run killed {kills}", failures)
                shards = {m.parent.name[:-len(".jsonl.parts")]: sum(s["records"] for s in json.loads(m.read_text())["shards"])
                          for m in sorted(soak.glob("*.parts/manifest.json"))}
                written = len(list(soak.glob("*.summary.json")))
                notes = [l.strip()[:160] for l in err.splitlines() if "redoing" in l or "error" in l]
                events.append(f"SIGKILL {kills} after {delay:.1f} s: records saved in shards: {shards or 0}"
                              + (f"; outputs written so far: {written}" if args.output == "dir" else "")
                              + "".join(f"\n    ({n})" for n in notes))
        if not args.no_disk_full and not done:  # then the disk fills up: output files limited to half the largest
            largest = max((p for p, _ in output_files(ref, inputs, args.output)),
                          key=lambda p: p.stat().st_size if p.exists() else 0)
            fsize = max(1 << 16, largest.stat().st_size // 2)
            code, err, s = runner.run(soak, fsize=fsize)
            no_traceback(err, "disk-full run", failures)
            last = err.strip().splitlines()[-1] if err.strip() else ""
            events.append(f"disk full (files limited to {fsize:,} bytes): stopped after {s:.0f} s, exit {code}: {last[:170]}")
            if code != 1 or "File too large" not in last:
                failures.append(f"disk-full run: expected exit 1 and a one-line error, got exit {code}: {err[-1500:]}")
            leftovers = [p for p in soak.iterdir() if p.suffix == ".tmp" or (p.suffix == ".jsonl" and args.output == "file")]
            if leftovers:
                failures.append(f"disk-full run left partial outputs: {leftovers[:5]}")
        if not done:
            code, err, s = runner.run(soak)
            no_traceback(err, "final soak run", failures)
            summary = next((l for l in err.splitlines() if l.startswith("pagesieve predict:")), "(no summary)")
            events.append(f"final run: {s:.0f} s, exit {code}: {summary}")
        print(f"soak run (start-up of a run: {startup_s:.0f} s):\n  " + "\n  ".join(events))

        stats, identical = {"rows": 0, "pages": 0, "errors": 0}, 0
        files = list(zip(output_files(ref, inputs, args.output), output_files(soak, inputs, args.output)))
        for (a, ins), (b, _) in files:
            check_output(b, ins, failures, stats)  # (the reference is compared with it byte for byte)
            if a.exists() and b.exists() and sha256(a) == sha256(b):
                identical += 1
            else:
                failures.append(f"{b}: not identical to the uninterrupted run's output")
        rows, pages, errors = stats["rows"], stats["pages"], stats["errors"]
        leftovers = list(soak.glob("*.parts")) + list(soak.glob("*.tmp"))
        if leftovers:
            failures.append(f"left behind: {leftovers[:5]}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"check: {n_in:,} records in, {rows:,} out ({pages:,} pages labeled, {errors:,} error records); "
              f"ids and rows as expected: {'yes' if not failures else 'NO'}; outputs identical to the "
              f"uninterrupted run: {identical}/{len(files)}; peak RSS of a run {peak:,.0f} MiB; "
              f"total {time.time() - t0:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return report(failures)


def report(failures: list) -> int:
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    print("soak: " + ("PASS" if not failures else f"FAIL ({len(failures)} problems)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
