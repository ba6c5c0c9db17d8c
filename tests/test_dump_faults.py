"""`pagesieve predict` under the faults a crawl throws (issue 17): colliding output names, lone
surrogates, Unicode line separators, truncated and corrupt inputs, changed inputs or models on
resume, damaged shards, two runs on one output, killed parents, oversized records, and one-line
errors instead of tracebacks. Each test failed on the code before the fix."""
import errno
import fcntl
import gzip
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pagesieve.dump import predict_dump, read_records
from pagesieve.predictor import Predictor

CORRUPT = "truncated or corrupt input"  # the error of what a damaged input file no longer gives


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="torch")


def page(i):
    return "\n".join(["Home", f"Story number {i} is told here.", "", "Share"])


def write_jsonl(path, ids, opener=open):
    with opener(path, "wt", encoding="utf-8") as fh:
        for i in ids:
            fh.write(json.dumps({"id": f"r{i}", "text": page(i)}) + "\n")


def read_out(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(l) for l in fh]


class Boom(Exception):
    pass


class Flaky:
    """The same predictor, but the run dies after `after` model calls, like a killed job."""

    def __init__(self, inner, after):
        self.inner, self.calls, self.after = inner, 0, after

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def probs(self, encoded, batch_size=None):
        self.calls += 1
        if self.calls > self.after:
            raise Boom()
        return self.inner.probs(encoded, batch_size)


def interrupted(src, out, predictor, shard_size=5):
    with pytest.raises(Boom):
        predict_dump([str(src)], str(out), predictor=Flaky(predictor, 2), shard_size=shard_size, progress=False)
    parts = Path(str(out) + ".parts")
    assert (parts / "manifest.json").exists()
    return parts


# -- 1. directory output names ---------------------------------------------------------------
def test_directory_outputs_of_different_inputs_never_collide(predictor, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    inputs = {tmp_path / "data.part1.jsonl": range(0, 3), tmp_path / "data.part2.jsonl": range(3, 8),
              tmp_path / "a" / "shard.jsonl": range(8, 10), tmp_path / "b" / "shard.jsonl": range(10, 14)}
    for path, ids in inputs.items():
        write_jsonl(path, ids)
    out = tmp_path / "out"
    s = predict_dump([str(p) for p in inputs], str(out) + "/", predictor=predictor, progress=False)
    names = ["data.part1.jsonl", "data.part2.jsonl", "a__shard.jsonl", "b__shard.jsonl"]
    assert sorted(p.name for p in out.glob("*.jsonl")) == sorted(names)
    for name, ids in zip(names, inputs.values()):
        assert [r["id"] for r in read_out(out / name)] == [f"r{i}" for i in ids]
    assert s["records_in"] == s["records_out"] == 14 == sum(len(read_out(out / n)) for n in names)


def test_a_restarted_directory_run_keeps_its_finished_outputs(predictor, tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, range(0, 4))
    write_jsonl(b, range(4, 9))
    out = tmp_path / "out"
    first = predict_dump([str(a), str(b)], str(out) + "/", predictor=predictor, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.jsonl")}
    write_jsonl(b, range(4, 10))  # b changed: only its output is labeled again
    capsys.readouterr()
    again = predict_dump([str(a), str(b)], str(out) + "/", predictor=predictor, progress=False)
    assert (out / "a.jsonl").stat().st_mtime_ns == before["a.jsonl"]
    assert (out / "b.jsonl").stat().st_mtime_ns != before["b.jsonl"]
    assert "a.jsonl was finished by the same run: kept" in capsys.readouterr().err
    assert first["records_in"] == 9 and again["records_in"] == again["records_out"] == 10
    assert [r["id"] for r in read_out(out / "b.jsonl")] == [f"r{i}" for i in range(4, 10)]


def test_directory_output_names_that_stay_ambiguous_are_refused(predictor, tmp_path):
    write_jsonl(tmp_path / "data.jsonl", range(2))
    write_jsonl(tmp_path / "data.jsonl.gz", range(2), gzip.open)
    with pytest.raises(ValueError, match="same output"):
        predict_dump([str(tmp_path / "data.jsonl"), str(tmp_path / "data.jsonl.gz")], str(tmp_path / "o") + "/",
                     predictor=predictor, progress=False)
    with pytest.raises(ValueError, match="given twice"):
        predict_dump([str(tmp_path / "data.jsonl")] * 2, str(tmp_path / "o") + "/", predictor=predictor,
                     progress=False)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    from pagesieve.dump import output_names

    assert output_names(["x/a/s.jsonl", "y/a/s.jsonl.gz", "z/b/s.parquet", "pages/*.txt"]) == [
        "x__a__s", "y__a__s", "b__s", "pages"]


# -- 3. lone surrogates ------------------------------------------------------------------------
def test_a_lone_surrogate_does_not_stop_the_run(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([
        json.dumps({"id": "a", "text": "Home\nFirst story."}),
        '{"id": "cut", "text": "A cut emoji \\ud83d\\nNext line"}',
        '{"id": "cut-id-\\udc00", "text": "Home\\nStory."}',
        '{"id": "pair", "text": "A whole emoji \\ud83d\\ude00\\nNext line"}',
        json.dumps({"id": "z", "text": "Home\nLast story."}),
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    s = predict_dump([str(src)], str(out), predictor=predictor, with_lines=True, progress=False)
    rows = [json.loads(l) for l in out.read_bytes().decode("utf-8").splitlines()]  # strict UTF-8
    assert s["records_in"] == s["records_out"] == 5 and s["errors"] == {}
    assert rows[1]["lines"] == ["A cut emoji \ufffd", "Next line"] and len(rows[1]["labels"]) == 2
    assert rows[2]["id"] == "cut-id-\ufffd"
    assert rows[3]["lines"][0] == "A whole emoji \U0001F600"


# -- 10. Unicode line separators --------------------------------------------------------------
SEPARATORS = "Home\u2028still home\nA\x85B\x0cC\x1cD\x1dE\x1eF\x0bG\u2029H\r\nWindows line\rOld Mac line\nLast"
SEPARATED = ["Home\u2028still home", "A\x85B\x0cC\x1cD\x1dE\x1eF\x0bG\u2029H", "Windows line", "Old Mac line", "Last"]


def test_only_newlines_split_lines(predictor, tmp_path):
    from warcio.warcwriter import WARCWriter

    (tmp_path / "in.jsonl").write_text(json.dumps({"id": "p", "text": SEPARATORS}) + "\n")
    assert [r.lines for r in read_records(str(tmp_path / "in.jsonl"))] == [SEPARATED]
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "p.txt").write_bytes(SEPARATORS.encode())
    assert [r.lines for r in read_records(str(tmp_path / "pages"))] == [SEPARATED]
    with open(tmp_path / "c.wet.gz", "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warc_record("https://ex.com/", "conversion", payload=io.BytesIO(SEPARATORS.encode()),
                                            warc_content_type="text/plain"))
    assert [r.lines for r in read_records(str(tmp_path / "c.wet.gz"))] == [SEPARATED]

    text = "Menu\x1cItem\nStory \u2028 goes on\x85here.\n\nFooter\x0c"
    (tmp_path / "n.jsonl").write_text(json.dumps({"id": "n", "text": text}) + "\n")
    predict_dump([str(tmp_path / "n.jsonl")], str(tmp_path / "out.jsonl"), predictor=predictor, progress=False)
    labels = read_out(tmp_path / "out.jsonl")[0]["labels"]
    assert len(labels) == len(text.split("\n")) and labels[2] is None


# -- 12. one-line errors, found before the model loads ------------------------------------------
@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: these mistakes must be found first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the mistake was found")

    monkeypatch.setattr(Predictor, "from_pretrained", refuse)


def test_input_and_output_mistakes_are_one_line_errors_before_the_model_loads(tmp_path, no_model, capsys):
    from pagesieve.cli import main

    src = tmp_path / "in.jsonl"
    write_jsonl(src, range(2))
    (tmp_path / "a-file").write_text("not a folder")
    cases = [
        ([str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o1.jsonl")], "no such file"),
        ([str(src), str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "o2.jsonl")], "no such file"),
        ([str(tmp_path / "nothing" / "*.txt"), "-o", str(tmp_path / "o3.jsonl")], "no file matches"),
        ([str(src), "-o", str(tmp_path / "o4.csv")], "output must end"),
        ([str(src), "-o", str(tmp_path / "a-file" / "o5.jsonl")], "cannot write"),
        ([str(src), "-o", str(tmp_path / "a-file" / "outdir") + "/"], "cannot write"),
        ([str(src), "-o", str(src)], "overwrite an input"),
    ]
    for args, message in cases:
        assert main(["predict", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.rglob("*.parts"))


def test_a_full_disk_is_a_one_line_error_and_the_run_resumes(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from pagesieve import dump
    from pagesieve.cli import main

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, range(12))
    real_write, writes = dump._write_atomic, []

    def write_until_full(path, data):
        writes.append(path)
        if len(writes) > 2:  # a shard and its manifest entry, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(dump, "_write_atomic", write_until_full)
    args = ["predict", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--runtime", "torch",
            "--shard-size", "5"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "rerun the same command" in err and "Traceback" not in err
    monkeypatch.setattr(dump, "_write_atomic", real_write)
    assert main(args) == 0 and [r["id"] for r in read_out(out)] == [f"r{i}" for i in range(12)]


def truncated_gzip(path, n=60):
    data = "".join(json.dumps({"id": f"r{i}", "text": page(i) * 20}) + "\n" for i in range(n)).encode()
    blob = gzip.compress(data)
    path.write_bytes(blob[: len(blob) * 2 // 3])


def test_a_truncated_gzip_gives_its_readable_records_then_an_error(tiny_model_dir, tmp_path, capsys):
    from pagesieve.cli import main

    src = tmp_path / "in.jsonl.gz"
    truncated_gzip(src)
    recs = list(read_records(str(src)))
    assert len(recs) > 10 and all(r.error is None for r in recs[:-1])
    assert recs[-1].error.startswith(CORRUPT) and [r.id for r in recs[:-1]] == [f"r{i}" for i in range(len(recs) - 1)]
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--runtime", "torch"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "truncated or corrupt" in err
    rows = read_out(out)
    assert len(rows) == len(recs) and rows[-1]["error"].startswith(CORRUPT) and "labels" in rows[-2]


def test_a_corrupt_parquet_row_group_loses_only_its_rows(predictor, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": f"p{i}", "text": f"Menu\nParagraph {i} of the article, long enough to compress." * 3}
            for i in range(30)]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src, row_group_size=10)
    raw = bytearray(src.read_bytes())
    text_column = pq.ParquetFile(src).metadata.row_group(1).column(1)
    start = text_column.data_page_offset + 8
    raw[start:start + 300] = b"\xff" * 300  # the second row group's text page
    src.write_bytes(bytes(raw))
    out = tmp_path / "out.jsonl"
    s = predict_dump([str(src)], str(out), predictor=predictor, progress=False)
    got = read_out(out)
    assert s["records_in"] == s["records_out"] == 30 and s["errors"] == {CORRUPT: 10}
    assert [r["id"] for r in got[:10]] + [r["id"] for r in got[20:]] == [f"p{i}" for i in [*range(10), *range(20, 30)]]
    assert all(r["error"].startswith(CORRUPT) for r in got[10:20]) and all("labels" in r for r in got[20:])
    (tmp_path / "cut.parquet").write_bytes(bytes(raw[: len(raw) // 2]))  # no footer left
    recs = list(read_records(str(tmp_path / "cut.parquet")))
    assert len(recs) == 1 and recs[0].error.startswith(CORRUPT)


# -- 4. truncated inputs are not complete -------------------------------------------------------
def test_a_truncated_zstd_is_reported_not_taken_as_complete(tmp_path):
    import zstandard

    data = "".join(json.dumps({"id": f"z{i}", "text": page(i) * 30}) + "\n" for i in range(400)).encode()
    blob = zstandard.ZstdCompressor().compress(data)
    (tmp_path / "whole.jsonl.zst").write_bytes(blob + blob)
    assert len(list(read_records(str(tmp_path / "whole.jsonl.zst")))) == 800  # two frames, all read
    (tmp_path / "cut.jsonl.zst").write_bytes(blob[: len(blob) // 2])
    recs = list(read_records(str(tmp_path / "cut.jsonl.zst")))
    assert len(recs) < 400 and recs[-1].error.startswith(CORRUPT) and all(r.error is None for r in recs[:-1])
    (tmp_path / "junk.jsonl.zst").write_bytes(blob + b"this is not zstd")
    recs = list(read_records(str(tmp_path / "junk.jsonl.zst")))
    assert len(recs) == 401 and recs[-1].error.startswith(CORRUPT)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_truncated_wet_record_is_an_error_not_a_page(tmp_path, compressed):
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=compressed)
    for i in range(3):
        last = buf.tell()
        w.write_record(w.create_warc_record(f"https://ex.com/{i}", "conversion", warc_content_type="text/plain",
                                            payload=io.BytesIO(f"Home\nText of page {i}.\n".encode() * 20)))
    data = buf.getvalue()
    src = tmp_path / ("c.wet.gz" if compressed else "c.wet")
    for cut in range(last + 1, len(data) - 20, 9):  # anywhere in the last record: its header or its text
        src.write_bytes(data[:cut])
        recs = list(read_records(str(src)))
        assert [r.error for r in recs[:2]] == [None, None] and len(recs) == 3, cut - last
        assert recs[2].error.startswith(CORRUPT) and recs[2].lines is None, cut - last


# -- 5. resume continues only the same run, from shards that check out ---------------------------
def test_resume_refuses_a_changed_input(predictor, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, range(20))
    parts = interrupted(src, out, predictor)
    st = src.stat()
    src.write_bytes(src.read_bytes().replace(b"r19", b"x19"))  # same size and, below, same time
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(ValueError, match="input contents") as e:
        predict_dump([str(src)], str(out), predictor=predictor, shard_size=5, progress=False)
    assert f"delete {parts}" in str(e.value)


def test_resume_refuses_another_model_or_runtime(predictor, tiny_model_dir, tmp_path):
    from pagesieve import modeling

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, range(20))
    interrupted(src, out, predictor)
    other_dir = modeling.save(modeling.tiny_random(encoding=dict(max_length=64, line_token_budget=8, overlap=16),
                                                   seed=1), tmp_path / "other")
    other = Predictor.from_pretrained(other_dir, device="cpu", runtime="torch")
    with pytest.raises(ValueError, match="differs: model"):
        predict_dump([str(src)], str(out), predictor=other, shard_size=5, progress=False)
    int8 = Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="torch-int8")
    with pytest.raises(ValueError, match="runtime"):
        predict_dump([str(src)], str(out), predictor=int8, shard_size=5, progress=False)
    s = predict_dump([str(src)], str(out), predictor=predictor, shard_size=5, progress=False)  # the same: resumes
    assert s["records_in"] == 20


@pytest.mark.parametrize("damage", ["empty", "cut", "gone"])
def test_a_damaged_shard_is_redone_not_trusted(predictor, tmp_path, damage, capsys):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, range(30))
    full = tmp_path / "full.jsonl"
    predict_dump([str(src)], str(full), predictor=predictor, shard_size=5, progress=False)
    out = tmp_path / "out.jsonl"
    parts = interrupted(src, out, predictor)
    shard = parts / json.loads((parts / "manifest.json").read_text())["shards"][0]["file"]
    if damage == "gone":
        shard.unlink()
    else:
        shard.write_bytes(b"" if damage == "empty" else shard.read_bytes()[:-30])
    s = predict_dump([str(src)], str(out), predictor=predictor, shard_size=5, progress=False)
    assert out.read_bytes() == full.read_bytes() and s["records_out"] == 30
    assert "redoing" in capsys.readouterr().err


def test_shards_are_flushed_to_the_disk(predictor, tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    write_jsonl(tmp_path / "in.jsonl", range(12))
    predict_dump([str(tmp_path / "in.jsonl")], str(tmp_path / "out.jsonl"), predictor=predictor, shard_size=5,
                 progress=False)
    assert len(synced) >= 3 * 2  # each shard and its manifest update, at least


# -- 6. one run per output ------------------------------------------------------------------------
def test_a_second_run_on_the_same_output_stops_at_once(predictor, tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, range(20))
    second = {}

    class Racing(Flaky):  # while this run works, the same command starts again (a requeued job)
        def probs(self, encoded, batch_size=None):
            if not second:
                t = time.monotonic()
                try:
                    second["summary"] = predict_dump([str(src)], str(out), predictor=self.inner, shard_size=5,
                                                     progress=False)
                except ValueError as e:
                    second["error"], second["seconds"] = e, time.monotonic() - t
            return self.inner.probs(encoded, batch_size)

    s = predict_dump([str(src)], str(out), predictor=Racing(predictor, 99), shard_size=5, progress=False)
    assert "another pagesieve run" in str(second.get("error")) and second["seconds"] < 5
    assert s["records_out"] == 20 and [r["id"] for r in read_out(out)] == [f"r{i}" for i in range(20)]
    assert not Path(str(out) + ".parts").exists()


def test_the_cli_refuses_an_output_another_run_holds(tmp_path, no_model, capsys):
    from pagesieve.cli import main

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, range(3))
    parts = Path(str(out) + ".parts")
    parts.mkdir()
    with open(parts / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(["predict", str(src), "-o", str(out)]) == 2
    assert "another pagesieve run" in capsys.readouterr().err


# -- 7. worker processes do not outlive their parent ------------------------------------------------
STUCK_RUN = """
import sys, time
from pagesieve.dump import predict_dump
from pagesieve.predictor import Predictor

class Stuck:  # the model hangs: the run sits there with its worker process started
    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def probs(self, encoded, batch_size=None):
        print("running", flush=True)
        time.sleep(600)

if __name__ == "__main__":
    p = Predictor.from_pretrained(sys.argv[1], device="cpu", runtime="torch")
    predict_dump([sys.argv[2]], sys.argv[3], predictor=Stuck(p), workers=1, progress=False)
"""


def _proc_stat(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # state, ppid, ...
    except (FileNotFoundError, ProcessLookupError):
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_worker_processes_exit_when_the_parent_is_killed(tiny_model_dir, tmp_path):
    write_jsonl(tmp_path / "in.jsonl", range(200))
    (tmp_path / "stuck.py").write_text(STUCK_RUN)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    parent = subprocess.Popen([sys.executable, str(tmp_path / "stuck.py"), str(tiny_model_dir),
                               str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl")],
                              stdout=subprocess.PIPE, env=env, cwd=tmp_path)
    workers = []
    try:
        assert parent.stdout.readline().strip() == b"running"
        workers = [int(d) for d in os.listdir("/proc")
                   if d.isdigit() and (_proc_stat(d) or [0, 0])[1] == str(parent.pid)
                   and b"spawn_main" in Path(f"/proc/{d}/cmdline").read_bytes()]
        assert workers
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any((_proc_stat(w) or ["Z"])[0] != "Z" for w in workers):
            time.sleep(0.2)
        assert all((_proc_stat(w) or ["Z"])[0] == "Z" for w in workers), "a worker outlived its parent"
    finally:
        parent.kill()
        for w in workers:
            if (_proc_stat(w) or ["Z"])[0] != "Z":
                os.kill(w, signal.SIGKILL)


# -- per-record limits ---------------------------------------------------------------------------
def test_records_over_the_limits_become_error_records(predictor, tmp_path):
    from pagesieve.dump import Limits

    src = tmp_path / "in.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        for rec in ({"id": "ok", "text": "Home\nStory."}, {"id": "big", "text": "x" * 5000},
                    {"id": "many", "text": "line\n" * 50}, {"id": "long", "text": "Home\n" + "y" * 500},
                    {"id": "ok2", "lines": ["Home", "Story."]}):
            fh.write(json.dumps(rec) + "\n")
    out = tmp_path / "out.jsonl"
    s = predict_dump([str(src)], str(out), predictor=predictor, progress=False,
                     limits=Limits(record_bytes=2000, line_bytes=400, lines=40))
    rows = read_out(out)
    assert [r.get("error", "").split(" (")[0] for r in rows] == [
        "", "record too large", "too many lines", "line too long", ""]
    assert rows[1]["id"].endswith(":2")  # too large to be parsed: its place in the file is its id
    assert s["errors"] == {"record too large": 1, "too many lines": 1, "line too long": 1}


def test_limit_flags_of_the_cli(tiny_model_dir, tmp_path, capsys):
    from pagesieve.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "a\nb\nc\nd"}) + "\n" + json.dumps({"id": "b", "text": "a\nb"})
                   + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(src), "-o", str(out), "--model", str(tiny_model_dir), "--runtime", "torch",
                 "--max-lines", "3", "--max-line-bytes", "10", "--max-record-bytes", "1000"]) == 0
    assert [r.get("error", "").split(" (")[0] for r in read_out(out)] == ["too many lines", ""]
    assert re.search(r"errors: too many lines: 1", capsys.readouterr().err)


def test_the_same_command_again_keeps_a_finished_output_and_a_users_file_is_never_overwritten(predictor, tmp_path,
                                                                                                capsys):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, range(3))
    out = tmp_path / "o.jsonl"
    first = predict_dump([str(src)], str(out), predictor=predictor, progress=False)
    before = out.stat().st_mtime_ns
    capsys.readouterr()
    assert predict_dump([str(src)], str(out), predictor=predictor, progress=False) == first
    assert out.stat().st_mtime_ns == before and "finished by the same run: kept" in capsys.readouterr().err
    predict_dump([str(src)], str(out), predictor=predictor, with_probs=True, progress=False)  # another run: redone
    assert "probs" in read_out(out)[0]

    mine = tmp_path / "notes.jsonl"  # files no pagesieve run wrote: refused before the model loads
    mine.write_text('{"my": "data"}\n')
    (tmp_path / "outdir").mkdir()
    (tmp_path / "outdir" / "in.jsonl").write_text("user's\n")  # where a directory output would write
    for output in (str(mine), str(tmp_path / "outdir") + "/"):
        with pytest.raises(ValueError, match="exists and is not the output of a pagesieve run"):
            predict_dump([str(src)], output, predictor=predictor, progress=False)
    assert mine.read_text() == '{"my": "data"}\n' and (tmp_path / "outdir" / "in.jsonl").read_text() == "user's\n"
