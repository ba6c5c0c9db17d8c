"""`pagesieve predict` / predict_dump: every format, one output per input record, errors reported,
resumable with byte-identical output."""
import gzip
import io
import json

import pytest

from pagesieve.dump import detect_format, predict_dump, read_records
from pagesieve.predictor import Predictor


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor.from_pretrained(tiny_model_dir, device="cpu")


def make_jsonl(path, n=40, bad_every=7):
    with open(path, "wb") as fh:
        for i in range(n):
            if i % bad_every == 3:
                fh.write(b"{not json\n")
            elif i % bad_every == 4:
                fh.write(json.dumps({"id": f"r{i}", "body": "no text field"}).encode() + b"\n")
            elif i % bad_every == 5:
                fh.write(b'{"id": "latin", "text": "caf\xe9"}\n')  # not UTF-8
            elif i % bad_every == 6:
                fh.write(json.dumps({"id": f"r{i}", "text": "  \n "}).encode() + b"\n")
            else:
                text = "\n".join(["Home", f"Story number {i} is told here.", "", "Share"] * (1 + i % 3))
                fh.write(json.dumps({"id": f"r{i}", "text": text, "meta": i}).encode() + b"\n")
    return n


def read_out(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(l) for l in fh]


def test_jsonl_one_output_per_input_with_errors(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    n = make_jsonl(src)
    out = tmp_path / "out.jsonl"
    summary = predict_dump([str(src)], str(out), predictor=predictor, keep=("content", "navigation", "caption", "ui_chrome"),
                           with_probs=True, keep_fields=True, shard_size=8, progress=False)
    rows = read_out(out)
    assert len(rows) == n == summary["records_in"] == summary["records_out"]
    assert summary["errors"] == {"bad JSON": 6, "no text field": 6, "bad encoding": 5, "empty page": 5}
    good = [r for r in rows if "error" not in r]
    for r in good:
        lines = r["text"].split("\n")
        assert len(r["labels"]) == len(r["probs"])
        assert [x is None for x in r["labels"]] == [p is None for p in r["probs"]]
        assert r["meta"] == int(r["id"][1:])
        assert len(lines) == sum(l is not None for l in r["labels"])
    assert rows[3]["error"].startswith("bad JSON") and rows[3]["id"].endswith(":4")
    assert [r["id"] for r in rows if r["id"].startswith("r")] == sorted(
        [r["id"] for r in rows if r["id"].startswith("r")], key=lambda x: int(x[1:]))


class Boom(Exception):
    pass


class Flaky:
    """The predictor, counting the pages of each model call, and dying after `after` calls like a killed job."""

    def __init__(self, inner, after=None):
        self.inner, self.after, self.sizes = inner, after, []

    def __getattr__(self, name):  # the same model and runtime: the run it starts can be resumed
        return getattr(self.inner, name)

    def probs(self, encoded, batch_size):
        if self.after is not None and len(self.sizes) >= self.after:
            raise Boom()
        self.sizes.append(len(encoded))
        return self.inner.probs(encoded, batch_size)


@pytest.mark.parametrize("shard_size,n", [(7, 60), (90, 200)])  # 90: shards of several pieces (64 on a CPU)
def test_interrupted_run_resumes_byte_identical(predictor, tmp_path, shard_size, n):
    src = tmp_path / "in.jsonl"
    make_jsonl(src, n=n)
    full = tmp_path / "full.jsonl.gz"
    predict_dump([str(src)], str(full), predictor=predictor, shard_size=shard_size, progress=False)

    part = tmp_path / "part.jsonl.gz"
    with pytest.raises(Boom):  # after 5 model calls, so a shard is written first (of 90 records: 8, 16, 32, 34)
        predict_dump([str(src)], str(part), predictor=Flaky(predictor, 5), shard_size=shard_size, progress=False)
    manifest = json.loads((tmp_path / "part.jsonl.gz.parts" / "manifest.json").read_text())
    assert not part.exists() and manifest["shards"] and manifest["shards"][0]["records"] == shard_size
    summary = predict_dump([str(src)], str(part), predictor=predictor, shard_size=shard_size, progress=False)
    assert part.read_bytes() == full.read_bytes()
    assert summary["records_in"] == n
    # the same command again keeps the finished output (test_dump_faults.py); removed, it is labeled again
    part.unlink()
    # a different command on the same unfinished parts is refused, not mixed
    with pytest.raises(Boom):
        predict_dump([str(src)], str(part), predictor=Flaky(predictor, 5), shard_size=shard_size, progress=False)
    with pytest.raises(ValueError, match="other inputs or options"):
        predict_dump([str(src)], str(part), predictor=predictor, shard_size=5, progress=False)


def test_a_dumps_first_shard_starts_with_small_pieces_and_a_resumed_run_cuts_as_the_first_did(predictor, tmp_path, monkeypatch):
    import pagesieve.dump as dump

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": f"Home\nStory {i} here.\nShare"}) + "\n" for i in range(300)))
    counting = Flaky(predictor)
    predict_dump([str(src)], str(tmp_path / "ramp.jsonl"), predictor=counting, shard_size=200, progress=False)
    assert counting.sizes == [8, 16, 32, 64, 64, 16, 64, 36]  # shards of 200 and 100: only the first starts small

    with pytest.raises(Boom):  # killed in the second shard
        predict_dump([str(src)], str(tmp_path / "resumed.jsonl"), predictor=Flaky(predictor, 7), shard_size=200,
                     progress=False)
    counting = Flaky(predictor)
    predict_dump([str(src)], str(tmp_path / "resumed.jsonl"), predictor=counting, shard_size=200, progress=False)
    assert counting.sizes == [64, 36]  # the second shard again, cut as the first run cut it
    assert (tmp_path / "resumed.jsonl").read_bytes() == (tmp_path / "ramp.jsonl").read_bytes()
    monkeypatch.setattr(dump, "FIRST_PIECE", 64)
    predict_dump([str(src)], str(tmp_path / "flat.jsonl"), predictor=predictor, shard_size=200, progress=False)
    assert (tmp_path / "ramp.jsonl").read_bytes() == (tmp_path / "flat.jsonl").read_bytes()


def test_parquet_in_and_out(predictor, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"p{i}", "text": f"Menu\nParagraph {i} of the article.", "n": i} for i in range(25)]
    rows[5]["text"] = None
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet", row_group_size=10)
    out = tmp_path / "out.parquet"
    s = predict_dump([str(tmp_path / "in.parquet")], str(out), predictor=predictor, keep=("content",),
                     keep_fields=True, shard_size=10, progress=False)
    t = pq.read_table(out).to_pylist()
    assert len(t) == 25 and s["errors"] == {"no text field": 1}
    assert t[5]["error"] and t[5]["labels"] is None
    assert len(t[0]["labels"]) == 2 and json.loads(t[0]["fields"]) == {"n": 0}


def test_parquet_reads_only_needed_columns_and_never_drops_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pagesieve.dump import Fields, read_records

    rows = [{"id": f"p{i}", "text": f"line {i}", "blob": "x" * 100} for i in range(600)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet", row_group_size=600)  # > one batch
    recs = list(read_records(str(tmp_path / "a.parquet"), fields=Fields()))
    assert [r.id for r in recs] == [f"p{i}" for i in range(600)] and recs[599].lines == ["line 599"]
    pq.write_table(pa.Table.from_pylist([{"other": 1}, {"other": 2}]), tmp_path / "b.parquet")
    recs = list(read_records(str(tmp_path / "b.parquet"), fields=Fields()))
    assert len(recs) == 2 and all(r.error.startswith("no text field") for r in recs)


def make_warc(path, kind):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warcinfo_record("x.warc.gz", {"software": "test"}))
        for i in range(3):
            if kind == "wet":
                body = f"Home\nWorld\nText of page {i}.\n".encode()
                rec = w.create_warc_record(f"https://ex.com/{i}", "conversion", payload=io.BytesIO(body),
                                           warc_content_type="text/plain")
            else:
                body = f"<html><body><nav>Home</nav><p>Text of page {i}.</p></body></html>".encode()
                http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
                rec = w.create_warc_record(f"https://ex.com/{i}", "response", payload=io.BytesIO(body), http_headers=http)
            w.write_record(rec)


@pytest.mark.parametrize("kind", ["wet", "warc"])
def test_wet_and_warc(predictor, tmp_path, kind):
    src = tmp_path / f"crawl.{kind}.gz" if kind == "wet" else tmp_path / "crawl.warc.gz"
    make_warc(src, kind)
    assert detect_format(str(src)) == kind
    out = tmp_path / "out.jsonl"
    s = predict_dump([str(src)], str(out), predictor=predictor, with_lines=True, progress=False)
    rows = read_out(out)
    assert s["records_in"] == 3 and len(rows) == 3
    assert rows[0]["url"] == "https://ex.com/0"
    assert rows[0]["lines"][-1] == "Text of page 0."
    assert all(r["id"].startswith("<urn:uuid:") for r in rows)
    other = "warc" if kind == "wet" else "wet"  # the file's records, whatever its name or --format says
    assert [r.lines for r in read_records(str(src), fmt=other)] == [r.lines for r in read_records(str(src))]
    misnamed = tmp_path / f"misnamed.{other}.gz"
    misnamed.write_bytes(src.read_bytes())
    assert predict_dump([str(misnamed)], str(tmp_path / "o2.jsonl"), predictor=predictor, progress=False)["records_in"] == 3


def test_bodies_that_are_not_utf8_become_error_records(tmp_path):
    from warcio.warcwriter import WARCWriter

    wet = tmp_path / "crawl.wet.gz"
    with open(wet, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for body in ("Menü\nText.".encode("latin-1"), "Menü\nText.".encode()):
            w.write_record(w.create_warc_record("https://ex.com/", "conversion", payload=io.BytesIO(body),
                                                warc_content_type="text/plain"))
    assert [(r.error, r.lines) for r in read_records(str(wet))] == [
        ("bad encoding (not UTF-8)", None), (None, ["Menü", "Text."])]
    d = tmp_path / "pages"
    d.mkdir()
    (d / "a.txt").write_bytes("\ufeffMenü\nText.".encode())  # a byte-order mark is not part of the first line
    (d / "b.txt").write_bytes("Menü".encode("latin-1"))
    assert [(r.error, r.lines) for r in read_records(str(d))] == [
        (None, ["Menü", "Text."]), ("bad encoding (not UTF-8)", None)]


def test_text_files_hf_dataset_and_directory_output(predictor, tmp_path):
    from datasets import Dataset

    d = tmp_path / "pages"
    d.mkdir()
    (d / "a.txt").write_text("Home\nA story.")
    (d / "b.txt").write_text("")
    (d / "c.bin").write_bytes(b"\x00\x01" * 10)
    Dataset.from_list([{"id": "h1", "lines": ["Menu", "Body"]}, {"id": "h2", "lines": []}]).save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "outdir"
    s = predict_dump([str(d), str(tmp_path / "ds")], str(out) + "/", predictor=predictor, progress=False)
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["ds.jsonl", "pages.jsonl"]
    pages = read_out(out / "pages.jsonl")
    assert [r.get("error") for r in pages] == [None, "empty page", "binary file"]
    ds = read_out(out / "ds.jsonl")
    assert ds[0]["labels"] and ds[1]["error"] == "empty page"
    assert s["records_in"] == 5


def test_a_folder_or_glob_of_dump_files_is_read_file_by_file(predictor, tmp_path):
    """Shards named by a folder or a quoted glob are each read in their own format, not as text pages."""
    d = tmp_path / "shards"
    d.mkdir()
    make_jsonl(d / "a.jsonl", n=10)
    with gzip.open(d / "b.jsonl.gz", "wb") as fh:
        fh.write((d / "a.jsonl").read_bytes())
    (d / ".DS_Store").write_bytes(b"\x00junk")  # hidden: not an input
    single = read_out_after(predict_dump, [str(d / "a.jsonl")], tmp_path / "single.jsonl", predictor)
    for given in (str(d), str(d / "*.jsonl*")):
        out = tmp_path / f"out{len(given)}"
        s = predict_dump([given], str(out) + "/", predictor=predictor, progress=False)
        assert sorted(p.name for p in out.glob("*.jsonl")) == ["a.jsonl", "b.jsonl"]
        for name in ("a.jsonl", "b.jsonl"):  # the records of a shard read alone (bad ones' ids name their file)
            rows = read_out(out / name)
            assert [(r.get("labels"), r.get("error")) for r in rows] == [(r.get("labels"), r.get("error")) for r in single]
        assert s["records_in"] == 20
    (d / "notes.txt").write_text("a page, not a shard")
    with pytest.raises(ValueError, match="dump files .* and other files"):
        predict_dump([str(d)], str(tmp_path / "mixed.jsonl"), predictor=predictor, progress=False)
    s = predict_dump([str(d)], str(tmp_path / "as-text.jsonl"), predictor=predictor, fmt="text", progress=False)
    assert s["records_in"] == 3  # as told: every file one page


def read_out_after(run, inputs, out, predictor):
    run(inputs, str(out), predictor=predictor, progress=False)
    return read_out(out)


def test_html_files_are_rendered_as_pages(predictor, tmp_path):
    d = tmp_path / "pages"
    d.mkdir()
    html = '<html><head><meta charset="windows-1252"></head><body><nav>Home</nav><p>Caf\xe9 story.</p></body></html>'
    (d / "a.html").write_bytes(html.encode("cp1252"))  # its charset from the page, as with HTML records
    (d / "b.txt").write_text("<p>kept as text</p>")
    assert detect_format(str(d / "a.html")) == "text"
    rows = read_out_after(predict_dump, [str(d)], tmp_path / "o.jsonl", predictor)
    html_row = read_out_after(predict_dump, [str(d / "a.html")], tmp_path / "one.jsonl", predictor)[0]
    assert html_row == rows[0] and len(rows[0]["labels"]) == 2  # two lines: Home, the story (no tags)
    assert len(rows[1]["labels"]) == 1
    predict_dump([str(d)], str(tmp_path / "with-lines.jsonl"), predictor=predictor, with_lines=True, progress=False)
    assert [r["lines"] for r in read_out(tmp_path / "with-lines.jsonl")] == [["Home", "Café story."],
                                                                            ["<p>kept as text</p>"]]


def test_bad_arguments(predictor, tmp_path):
    with pytest.raises(ValueError, match="format"):
        detect_format("dump.bin")
    with pytest.raises(FileNotFoundError):
        list(read_records(str(tmp_path / "missing.jsonl")))
    with pytest.raises(ValueError, match="output must end"):
        (tmp_path / "x.jsonl").write_text("{}\n")
        predict_dump([str(tmp_path / "x.jsonl")], str(tmp_path / "out.csv"), predictor=predictor, progress=False)
    with pytest.raises(ValueError, match="unknown label"):
        predict_dump([str(tmp_path / "x.jsonl")], str(tmp_path / "o.jsonl"), predictor=predictor, keep=("body",))
    for bad in (dict(shard_size=0), dict(shard_size=-3), dict(workers=-1)):
        with pytest.raises(ValueError, match="must be a whole number"):
            predict_dump([str(tmp_path / "x.jsonl")], str(tmp_path / "o.jsonl"), predictor=predictor, **bad)


def test_cli_predict(tiny_model_dir, tmp_path, capsys):
    from pagesieve.cli import main

    src = tmp_path / "in.jsonl.gz"
    with gzip.open(src, "wt") as fh:
        fh.write(json.dumps({"doc": "d1", "content": "Home\nText."}) + "\n")
    code = main(["predict", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_model_dir),
                 "--id-field", "doc", "--text-field", "content", "--keep", "content,navigation,caption,ui_chrome"])
    err = capsys.readouterr().err
    assert code == 0 and "1 records in, 1 out" in err
    row = read_out(tmp_path / "o.jsonl")[0]
    assert row["id"] == "d1" and row["text"] == "Home\nText."
    code = main(["predict", str(src), "-o", str(tmp_path / "o.csv"), "--model", str(tiny_model_dir)])
    assert code == 2


def test_zstd_jsonl(tmp_path):
    import zstandard

    data = "".join(json.dumps({"id": f"z{i}", "text": "Home\nBody"}) + "\n" for i in range(3)).encode()
    (tmp_path / "d.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    assert [(r.id, r.lines) for r in read_records(str(tmp_path / "d.jsonl.zst"))] == [(f"z{i}", ["Home", "Body"]) for i in range(3)]


def test_worker_processes_give_the_same_output(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    make_jsonl(src, n=150)
    warc = tmp_path / "crawl.warc.gz"
    make_warc(warc, "warc")
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    s1 = predict_dump([str(src), str(warc)], str(one), predictor=predictor, shard_size=70, progress=False)
    s2 = predict_dump([str(src), str(warc)], str(many), predictor=predictor, shard_size=70, workers=2, progress=False)
    assert s1 == {**s2, "output": s1["output"]}
    assert one.read_bytes() == many.read_bytes()
    assert s1["records_in"] == 153


class _UnpicklableInWorker:
    """Stands for an encoder that a worker process cannot rebuild (it unpickles as int('x'))."""

    def __reduce__(self):
        return (int, ("not a number",))


def test_workers_that_cannot_start_stop_the_run_with_an_error(predictor, tmp_path):
    """A worker that fails to start must end the run with a clear error (multiprocessing.Pool waited
    forever); the shards written so far stay and the same command resumes."""
    import threading

    from pagesieve.dump import WorkersFailed

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    make_jsonl(src, n=20)
    good = predictor.encoder
    predictor.encoder = _UnpicklableInWorker()
    result = {}

    def run():
        try:
            predict_dump([str(src)], str(out), predictor=predictor, workers=1, progress=False)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            result["error"] = e

    try:
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(120)
        assert not t.is_alive(), "predict_dump hung on workers that cannot start"
    finally:
        predictor.encoder = good
    assert isinstance(result.get("error"), WorkersFailed) and "--workers 0" in str(result["error"])
    s = predict_dump([str(src)], str(out), predictor=predictor, workers=0, progress=False)  # same output path: resumes
    assert s["records_in"] == 20 and len(read_out(out)) == 20


def test_the_heap_is_frozen_during_a_run_and_thawed_after(predictor, tmp_path, monkeypatch):
    """The collector skips the objects that exist before the run (imports, model) during it, and only then,
    also when the run fails; a freeze made before the run is left as it is."""
    import gc

    src = tmp_path / "in.jsonl"
    make_jsonl(src, n=4, bad_every=100)
    seen = []
    probs = predictor.probs

    def watched(*args, **kwargs):
        seen.append((gc.get_freeze_count(), any(o is predictor for o in gc.get_objects())))
        return probs(*args, **kwargs)

    monkeypatch.setattr(predictor, "probs", watched)
    try:
        assert gc.get_freeze_count() == 0
        predict_dump([str(src)], str(tmp_path / "a.jsonl"), predictor=predictor, progress=False)
        assert seen and all(count > 0 and not listed for count, listed in seen)  # the predictor is frozen
        assert gc.get_freeze_count() == 0
        monkeypatch.setattr(predictor, "probs", lambda *a, **k: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            predict_dump([str(src)], str(tmp_path / "failed.jsonl"), predictor=predictor, progress=False)
        assert gc.get_freeze_count() == 0
        monkeypatch.setattr(predictor, "probs", probs)
        gc.freeze()
        predict_dump([str(src)], str(tmp_path / "b.jsonl"), predictor=predictor, progress=False)
        assert gc.get_freeze_count() > 0  # (less by what the run freed)
    finally:
        gc.unfreeze()
    assert read_out(tmp_path / "a.jsonl") == read_out(tmp_path / "b.jsonl")


def test_folder_inputs_leave_out_pagesieves_own_files_and_take_names_with_brackets(predictor, tmp_path, capsys):
    import numpy as np

    d = tmp_path / "crawl[2024]"  # a folder whose name holds a wildcard character: a folder, not a pattern
    d.mkdir()
    make_jsonl(d / "a.jsonl", n=8)
    make_jsonl(d / "b[1].jsonl", n=8)
    (d / "_SUCCESS").write_text("")  # markers and empty files are not "other files"
    assert detect_format(str(d / "b[1].jsonl")) == "jsonl"
    first = predict_dump([str(d)], str(d / "all.jsonl"), predictor=predictor, progress=False)  # output inside
    assert first["records_in"] == 16
    capsys.readouterr()
    again = predict_dump([str(d)], str(d / "all.jsonl"), predictor=predictor, shard_size=np.int64(1000), progress=False)
    err = capsys.readouterr().err
    assert again == first and "finished by the same run: kept" in err  # its own output not read, and said so
    assert "left out 2 file(s) that pagesieve wrote" in err  # all.jsonl and its summary
    with pytest.raises(ValueError, match="would overwrite an input"):
        predict_dump([str(d)], str(d) + "/", predictor=predictor, progress=False)  # outputs a.jsonl over a.jsonl
    alone = predict_dump([str(d / "b[1].jsonl")], str(tmp_path / "b.jsonl"), predictor=predictor, progress=False)
    assert alone["records_in"] == 8  # a file named with brackets is read, not matched as a pattern

    e = tmp_path / "data"
    e.mkdir()
    make_jsonl(e / "part-0.data", n=5)
    assert predict_dump([str(e)], str(tmp_path / "e.jsonl"), predictor=predictor, fmt="jsonl",
                        progress=False)["records_in"] == 5  # --format jsonl: each file of the folder in it
    (e / "_SUCCESS").write_text("")  # a marker, even with --format given
    assert predict_dump([str(e)], str(tmp_path / "e2.jsonl"), predictor=predictor, fmt="jsonl",
                        progress=False)["records_in"] == 5
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden").write_text("x")
    for fmt in (None, "jsonl", "text"):
        with pytest.raises(FileNotFoundError, match="no file in this folder"):
            predict_dump([str(tmp_path / "empty")], str(tmp_path / "x.jsonl"), predictor=predictor, fmt=fmt,
                         progress=False)


def test_runs_of_another_reader_version_are_labeled_again_not_kept_or_continued(predictor, tmp_path, capsys,
                                                                             monkeypatch):
    import pagesieve.dump as dump

    src = tmp_path / "in.jsonl"
    make_jsonl(src, n=40)
    out = tmp_path / "o.jsonl"
    out.write_text("")  # a file made ready for the output (empty): not the user's data
    monkeypatch.setattr(dump, "READER", 1)  # as an earlier version read inputs
    predict_dump([str(src)], str(out), predictor=predictor, progress=False)
    with pytest.raises(Boom):  # and an unfinished run of it
        predict_dump([str(src)], str(tmp_path / "part.jsonl"), predictor=Flaky(predictor, 2), shard_size=8,
                     progress=False)
    monkeypatch.setattr(dump, "READER", 2)
    capsys.readouterr()
    predict_dump([str(src)], str(out), predictor=predictor, progress=False)
    assert "kept" not in capsys.readouterr().err
    with pytest.raises(ValueError, match="unfinished run of an earlier pagesieve version"):
        predict_dump([str(src)], str(tmp_path / "part.jsonl"), predictor=predictor, shard_size=8, progress=False)
