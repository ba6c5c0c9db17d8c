"""Property-based fuzzing (issue 17): the readers (JSONL, JSONL.gz/.zst, WET/WARC, text files), HTML
decoding and `predict_dump` on arbitrary bytes and arbitrary JSON values. Whatever the input: no
traceback, exactly one record per input record (a record, or an error record saying why), every text
writable as UTF-8, and `predict_dump` writes one output row per record, in input order.

PAGESIEVE_FUZZ_EXAMPLES=500 pytest tests/test_fuzz.py  # fuzz longer than the CI default
"""
import gzip
import io
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagesieve.dump import Fields, Limits, Record, check_limits, predict_dump, read_records, render
from pagesieve.predictor import Predictor

EXAMPLES = int(os.environ.get("PAGESIEVE_FUZZ_EXAMPLES", "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
SMALL = Limits(record_bytes=20_000, line_bytes=2_000, lines=200)  # small limits: the over-limit paths run too

# -- strategies ------------------------------------------------------------------------------------
# any character, lone surrogates (a cut emoji) and line separators (\u2028, \x85, \x0c, \r) included
chars = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=())
texts = st.text(chars, max_size=40) | st.sampled_from(["", " ", "\n", "\r\n", "a\rb", "x\u2028y", "\ud83d",
                                                       "<p>Hi</p>", "Home\nNews\n\nStory text."])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12)
# objects shaped like records: the fields a reader looks for, holding anything
record_objects = st.fixed_dictionaries({}, optional={
    "id": json_values, "text": json_values | texts, "lines": st.lists(json_values | texts, max_size=5) | json_values,
    "html": json_values | texts | st.sampled_from(["<html><body><p>Body</p></body></html>", "<", "<?xml?>"]),
    "url": texts})


@st.composite
def json_lines(draw):
    """One line of a JSONL file (without its newline): a JSON value written in some way, or raw bytes."""
    kind = draw(st.sampled_from(["record", "value", "bytes", "cut"]))
    if kind == "bytes":
        return draw(st.binary(max_size=60)).replace(b"\n", b" ")
    value = draw(record_objects if kind in ("record", "cut") else json_values)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), allow_nan=True)
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate written raw: bytes that are not UTF-8
    if kind == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    return data.replace(b"\n", b" ")


@st.composite
def jsonl_files(draw):
    lines = draw(st.lists(json_lines(), max_size=12))
    return b"\n".join(lines) + (b"\n" if lines and draw(st.booleans()) else b"")


def n_lines(data: bytes) -> int:
    """The records of a JSONL file: one per line, the last one with or without its newline."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


payloads = st.binary(max_size=300) | st.builds(
    lambda t, enc: t.encode(enc, "ignore"), st.text(chars, max_size=80),
    st.sampled_from(["utf-8", "cp1251", "shift_jis", "latin-1", "gb18030", "utf-16"])) | st.builds(
    lambda t, enc: f"<html><head><meta charset={enc}></head><body><p>{t}</p></body></html>".encode(enc, "ignore"),
    st.text(chars, max_size=60), st.sampled_from(["utf-8", "cp1251", "koi8-r", "euc-jp", "big5"]))
content_types = st.sampled_from(["text/html", "text/html; charset=utf-8", "text/html; charset=windows-1251",
                                 "text/html; charset=bogus", "text/html; charset=", "application/pdf", ""]) | \
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(lambda t: "text/html;" + t)


@st.composite
def warc_files(draw, kind):
    """(bytes of a WET or WARC file, the number of page records in it), whole or damaged."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=draw(st.booleans()))
    pages = 0
    for i in range(draw(st.integers(0, 5))):
        body = draw(payloads)
        fixed = {"warc_headers_dict": {"WARC-Record-ID": f"<urn:uuid:00000000-0000-0000-0000-{i:012d}>",
                                       "WARC-Date": "2026-01-01T00:00:00Z"}}  # the same bytes every time
        if kind == "wet":
            if draw(st.booleans()):
                w.write_record(w.create_warc_record(f"https://ex.com/{i}", "metadata", payload=io.BytesIO(body), **fixed))
                continue
            rec = w.create_warc_record(f"https://ex.com/{i}", "conversion", payload=io.BytesIO(body),
                                       warc_content_type="text/plain", **fixed)
        else:
            ctype = draw(content_types)
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            rec = w.create_warc_record(f"https://ex.com/{i}", "response", payload=io.BytesIO(body), http_headers=http,
                                       **fixed)
        w.write_record(rec)
        pages += 1
    data = buf.getvalue()
    damage = draw(st.sampled_from(["none", "none", "cut", "flip", "junk"]))
    if damage == "cut" and data:
        data = data[:draw(st.integers(0, len(data) - 1))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    elif damage == "junk":
        data += draw(st.binary(min_size=1, max_size=100))
    return data, pages, damage


# -- checks ----------------------------------------------------------------------------------------
def prepared(records) -> list[Record]:
    """Records as a run prepares them: HTML rendered, limits checked; each one sound."""
    out = []
    for r in records:
        r = check_limits(render(r, "innertext"), SMALL)
        assert isinstance(r.id, str)  # (the input's own id, even "")
        r.id.encode("utf-8")  # ids and texts are written as UTF-8: no lone surrogate survives
        if r.error is not None:
            assert isinstance(r.error, str) and r.error and "\n" not in r.error
        else:
            assert isinstance(r.lines, list) and all(isinstance(l, str) for l in r.lines)
            assert any(l.strip() for l in r.lines)
            "\n".join(r.lines).encode("utf-8")
        json.dumps(r.extra, ensure_ascii=False, default=str).encode("utf-8")
        out.append(r)
    return out


def read(path, **kw) -> list[Record]:
    return prepared(read_records(str(path), limits=SMALL, **kw))


# -- readers ---------------------------------------------------------------------------------------
@FUZZ
@given(data=jsonl_files(), compression=st.sampled_from(["", ".gz", ".zst"]), keep_fields=st.booleans())
def test_jsonl_readers_one_record_per_line(data, compression, keep_fields):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"d.jsonl{compression}"
        if compression == ".gz":
            path.write_bytes(gzip.compress(data, mtime=0))
        elif compression == ".zst":
            import zstandard

            path.write_bytes(zstandard.ZstdCompressor().compress(data))
        else:
            path.write_bytes(data)
        recs = read(path, keep_fields=keep_fields)
    assert len(recs) == n_lines(data)


@FUZZ
@given(data=jsonl_files(), compression=st.sampled_from([".gz", ".zst"]), cut=st.integers(0, 10_000),
       junk=st.binary(max_size=40))
def test_damaged_compressed_jsonl_never_raises(data, compression, cut, junk):
    """A compressed file cut short or with garbage after it: the records that decompress, then at most
    one error record for what is lost."""
    import zstandard

    packed = gzip.compress(data, mtime=0) if compression == ".gz" else zstandard.ZstdCompressor().compress(data)
    packed = packed[:cut % (len(packed) + 1)] + junk
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"d.jsonl{compression}"
        path.write_bytes(packed)
        recs = read(path)
    lost = [r for r in recs if r.error and r.error.startswith("truncated or corrupt input")]
    assert len(lost) <= 1 and (not lost or recs[-1] is lost[0])
    if not junk:  # cut only: what decompresses is a beginning of the data (junk can decompress to anything)
        assert len(recs) <= n_lines(data) + 1


@FUZZ
@given(data=st.binary(max_size=2000), fmt=st.sampled_from(["jsonl", "wet", "warc", "parquet"]))
def test_any_bytes_in_any_format_never_raise(data, fmt):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / {"jsonl": "d.jsonl", "wet": "d.wet", "warc": "d.warc", "parquet": "d.parquet"}[fmt]
        path.write_bytes(data)
        try:
            recs = read(path)
        except ValueError as e:  # a Parquet file without its footer: refused as a whole, in one line
            assert fmt == "parquet" and "\n" not in str(e)
            return
    if fmt == "jsonl":
        assert len(recs) == n_lines(data)


@FUZZ
@given(warc=st.sampled_from(["wet", "warc"]).flatmap(lambda k: st.tuples(st.just(k), warc_files(k))))
def test_wet_and_warc_one_record_per_page(warc):
    kind, (data, pages, damage) = warc
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"d.{kind}"
        path.write_bytes(data)
        recs = read(path)
    if damage == "none":
        assert len(recs) == pages
    elif damage == "cut":  # a record cut short is one error record, or one stands for what is lost
        assert len(recs) <= pages + 1
    # (a flipped byte can make anything of the file: only no traceback and sound records, checked above)


@FUZZ
@given(files=st.lists(st.binary(max_size=200) | texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
                      max_size=5))
def test_text_files_one_record_per_file(files):
    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate(files):
            (Path(tmp) / f"{i}.txt").write_bytes(data)
        if not files:  # an empty folder is refused, as a glob that matches nothing is
            with pytest.raises(FileNotFoundError, match="no file in this folder"):
                read(tmp, fmt="text")
            return
        recs = read(tmp, fmt="text")
    assert len(recs) == len(files)


@FUZZ
@given(data=payloads | st.binary(max_size=300), charset=st.none() | texts | st.sampled_from(
    ["utf-8", "windows-1251", "utf-16", "base64", "rot13", "x-user-defined", "iso-2022-jp", "unicode"]))
def test_html_bytes_decode_or_raise_a_charset_error(data, charset):
    from pagesieve.html import CharsetError, decode_html_info, html_to_lines

    try:
        d = decode_html_info(data, charset)
    except CharsetError:
        return
    d.text.encode("utf-8", "surrogatepass")
    assert d.source in ("bom", "http", "meta", "xml", "utf-8", "detected")
    try:
        lines = html_to_lines(data)
    except ValueError:  # no document (empty) or no charset: said so, never garbage lines
        return
    assert all(isinstance(l, str) for l in lines)


# -- predict_dump ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="torch")


@st.composite
def inputs(draw):
    """(file name, bytes) of an input in some format."""
    fmt = draw(st.sampled_from(["jsonl", "jsonl.gz", "wet", "warc"]))
    if fmt.startswith("jsonl"):
        data = draw(jsonl_files())
        return f"d.{fmt}", gzip.compress(data, mtime=0) if fmt.endswith(".gz") else data
    data, _, _ = draw(warc_files(fmt))
    return f"d.{fmt}", data


@FUZZ
@given(inp=inputs(), shard_size=st.integers(1, 7), keep_fields=st.booleans())
def test_predict_dump_one_row_per_record_in_order(predictor, inp, shard_size, keep_fields):
    name, data = inp
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / name, Path(tmp) / "out.jsonl"
        src.write_bytes(data)
        expected = read(src, keep_fields=keep_fields)
        summary = predict_dump([str(src)], str(out), predictor=predictor, shard_size=shard_size, limits=SMALL,
                               keep_fields=keep_fields, with_lines=True, progress=False)
        raw = out.read_bytes()
    rows = [json.loads(l) for l in raw.decode("utf-8").split("\n")[:-1]]  # strict UTF-8; U+2028 ends no row
    assert summary["records_in"] == summary["records_out"] == len(rows) == len(expected)
    assert [r["id"] for r in rows] == [r.id for r in expected]
    for row, rec in zip(rows, expected):
        if rec.error:
            assert row["error"] == rec.error and "labels" not in row
        else:
            assert "error" not in row and row["lines"] == rec.lines
            assert len(row["labels"]) == len(rec.lines)
            assert all((lab is None) == (not line.strip()) for lab, line in zip(row["labels"], rec.lines))


# -- what fuzzing found ----------------------------------------------------------------------------
def test_a_warc_cut_inside_a_record_header_is_an_error_record(tmp_path):
    """warcio raised AttributeError (not one of its own errors) on a header cut before its URI."""
    path = tmp_path / "d.warc"
    path.write_bytes(b"WARC/1.0\r\nWARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-000000000000>\r\n"
                     b"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Type: response")
    recs = read(path)
    assert len(recs) == 1 and recs[0].error.startswith("truncated or corrupt input")


def test_arc_records_have_the_same_ids_at_every_read(tmp_path):
    """warcio's ARC-to-WARC conversion gave each ARC record a new random id at every read: a resumed
    run's output was not the uninterrupted one's."""
    info = b"1 0 Example\nURL IP-address Archive-date Content-type Archive-length\n"
    http = "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=windows-1251\r\n\r\n<p>Привет</p>".encode("cp1251")
    path = tmp_path / "d.arc"
    path.write_bytes(b"filedesc://d.arc 0.0.0.0 20260101000000 text/plain %d\n%s\n" % (len(info), info) +
                     b"http://ex.com/ 1.2.3.4 20260101000000 text/html %d\n%s\n" % (len(http), http))
    first, again = read(path), read(path)
    assert [(r.id, r.extra, r.lines) for r in first] == [(r.id, r.extra, r.lines) for r in again] == [
        (f"{path}:2", {"url": "http://ex.com/"}, ["Привет"])]


@FUZZ
@given(data=payloads | st.binary(max_size=300), name=st.sampled_from(["page.html", "page.txt"]))
def test_label_command_on_any_bytes(predictor, monkeypatch, capsys, data, name):
    """`pagesieve label FILE`: labels, or says in one line why not (exit 2); never a traceback."""
    from pagesieve.cli import main as cli_main

    monkeypatch.setattr(Predictor, "from_pretrained", classmethod(lambda cls, *a, **k: predictor))  # loaded once
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            code = cli_main(["label", str(path)])
        except SystemExit as e:
            code = e.code
    out = capsys.readouterr()
    assert code in (0, 2) and "Traceback" not in out.err
    if code == 2:
        assert len(out.err.strip().splitlines()) == 1
