"""What trafilatura users reach for: per-class thresholds, the HTML title, Markdown output, the same
default runtime for label and predict, predict's progress and summary, one-line messages for a
missing optional extra. Tiny random model."""
import collections
import gzip
import io
import json

import numpy as np
import pytest

from pagesieve import LABELS
from pagesieve.cli import build_parser, main as cli_main, to_markdown
from pagesieve.dump import Progress, predict_dump, read_records
from pagesieve.predictor import Predictor, check_min_prob, choose_labels, html_page

CONTENT, CAPTION, NAVIGATION, UI = range(4)


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="torch")


def run_cli(args, capsys):
    code = cli_main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


# -- per-class thresholds ------------------------------------------------------------------------
def test_threshold_rule():
    probs = np.array([[0.70, 0.05, 0.20, 0.05],   # content passes 0.6
                      [0.55, 0.10, 0.30, 0.05],   # content under 0.6: next best, navigation
                      [0.60, 0.30, 0.05, 0.05],   # exactly at the threshold: passes
                      [0.10, 0.20, 0.40, 0.30]])  # no content: unchanged
    assert choose_labels(probs, LABELS).tolist() == [CONTENT, CONTENT, CONTENT, NAVIGATION]
    assert choose_labels(probs, LABELS, {"content": 0.6}).tolist() == [CONTENT, NAVIGATION, CONTENT, NAVIGATION]
    # the next best must pass too: navigation under its own threshold gives way to caption
    assert choose_labels(probs, LABELS, {"content": 0.6, "navigation": 0.35}).tolist()[1] == CAPTION
    # every class under its threshold: the line keeps its top class
    every = {label: 0.9 for label in LABELS}
    assert choose_labels(probs, LABELS, every).tolist() == [CONTENT, CONTENT, CONTENT, NAVIGATION]
    assert choose_labels(np.zeros((0, 4)), LABELS, {"content": 0.9}).tolist() == []


def test_threshold_values_are_checked():
    assert check_min_prob(None) == {} and check_min_prob({"content": 1}) == {"content": 1.0}
    for bad in ({"body": 0.5}, {"content": 1.5}, {"content": -0.1}, {"content": "0.8"}, {"content": True},
                {"content": float("nan")}):
        with pytest.raises(ValueError):
            check_min_prob(bad)
    with pytest.raises(TypeError):
        check_min_prob([("content", 0.8)])


def test_predict_and_clean_with_thresholds(predictor):
    text = "\n".join(f"line {i} of a page about the budget" for i in range(12))
    plain = predictor.predict(text)
    assert [r.label for r in predictor.predict(text, min_prob={label: 0.0 for label in LABELS})] == \
        [r.label for r in plain]
    # each line's top label set just above its probability: the second most probable label instead
    for r in plain[:3]:
        ranked = sorted(LABELS, key=r.probs.get, reverse=True)
        again = predictor.predict(text, min_prob={ranked[0]: r.probs[ranked[0]] + 0.001})[r.index]
        assert again.label == ranked[1] and again.probs == r.probs
    assert all(r.label != "content" for r in predictor.predict(text, min_prob={"content": 1.0}))
    assert predictor.clean(text, keep=("content",), min_prob={"content": 1.0}) == ""
    assert len(predictor.predict_many([text, text], min_prob={"content": 1.0})) == 2
    with pytest.raises(ValueError, match="unknown label"):
        predictor.predict(text, min_prob={"body": 0.5})


def test_min_prob_option(tiny_model_dir, tmp_path, capsys):
    page = tmp_path / "page.txt"
    page.write_text("\n".join(f"Line {i} of the page." for i in range(8)) + "\n")
    m = [str(page), "--model", str(tiny_model_dir), "--runtime", "torch", "--format", "jsonl"]
    code, out, _ = run_cli(["label", *m, "--min-prob", "content=1.0,caption=1", "--min-prob", "ui_chrome=1"], capsys)
    rows = [json.loads(l) for l in out.splitlines()]
    assert code == 0 and len(rows) == 8 and {r["label"] for r in rows} <= {"navigation"}
    for value, why in (("content=2", "from 0 to 1"), ("body=0.5", "unknown label"), ("content", "LABEL=PROBABILITY"),
                       ("content=high", "LABEL=PROBABILITY")):
        code, out, err = run_cli(["label", *m, "--min-prob", value], capsys)
        assert code == 2 and out == "" and why in err and len(err.strip().splitlines()) == 1


def test_predict_dump_with_thresholds(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "text": f"Home\nStory {i} is told here.\n\nShare"}) + "\n"
                           for i in range(6)))
    out = tmp_path / "out.jsonl"
    min_prob = {"content": 0.3, "navigation": 0.27}
    predict_dump([str(src)], str(out), predictor=predictor, with_probs=True, min_prob=min_prob, progress=False)
    for row in map(json.loads, out.read_text().splitlines()):
        for label, probs in zip(row["labels"], row["probs"]):
            assert (label is None) == (probs is None)
            if probs is not None:
                assert label == LABELS[choose_labels(np.array([probs]), LABELS, min_prob)[0]]
    with pytest.raises(ValueError, match="unknown label"):
        predict_dump([str(src)], str(tmp_path / "x.jsonl"), predictor=predictor, min_prob={"body": 1})


# -- the title, Markdown --------------------------------------------------------------------------
HTML = ("<html><head><title> The   page title </title></head><body><nav><a>Home</a></nav>"
        "<h2><a href='/x'>Section</a></h2><p>- starts like a list</p><ul><li>one</li><li><b>two</b></li></ul>"
        "<svg><title>icon</title></svg><p>Last paragraph.</p></body></html>")


def test_html_page_title_and_blocks():
    page = html_page(HTML)
    assert page.title == "The page title"
    assert list(zip(page.lines, page.blocks)) == [("Home", None), ("Section", "h2"), ("- starts like a list", None),
                                                  ("one", "li"), ("two", "li"), ("Last paragraph.", None)]
    og = '<html><head><meta property="og:title" content="From OG"></head><body><p>x</p></body></html>'
    assert html_page(og).title == "From OG"
    assert html_page("<html><body><p>x</p></body></html>").title is None
    assert html_page("").lines == []


def test_markdown():
    assert to_markdown([("Intro", None), ("a", "li"), ("b", "li"), ("Part", "h3"), ("# not a heading", None)],
                       "Title") == "# Title\n\nIntro\n\n- a\n- b\n\n### Part\n\n\\# not a heading\n"
    assert to_markdown([("Title", "h1"), ("Text", None)], "Title") == "# Title\n\nText\n"  # not twice
    assert to_markdown([], None) == to_markdown([], "Title") == ""  # nothing kept: not a title alone


def test_markdown_paragraphs_never_read_as_markdown_syntax():
    # the escapes CommonMark knows ("\\1." would show its backslash); four spaces would make a code block
    lines = ["1. not a list", "2) nor this", "    not code", "```", "<div>not HTML</div>", "~~~", "1.5 million"]
    assert to_markdown([(l, None) for l in lines]).split("\n\n") == \
        ["1\\. not a list", "2\\) nor this", "not code", "\\```", "\\<div>not HTML</div>", "\\~~~", "1.5 million\n"]


def test_label_markdown_and_keep_formats(tiny_model_dir, tmp_path, capsys):
    page = tmp_path / "page.html"
    page.write_text(HTML)
    m = [str(page), "--model", str(tiny_model_dir), "--runtime", "torch"]
    every = ["--keep", ",".join(LABELS)]
    code, out, _ = run_cli(["label", *m, "--format", "markdown", *every], capsys)
    assert code == 0 and out == ("# The page title\n\nHome\n\n## Section\n\n\\- starts like a list\n\n- one\n- two\n\n"
                                 "Last paragraph.\n")
    # content only by default; no line is content here: no output (not the title alone), a note
    code, out, err = run_cli(["label", *m, "--format", "markdown", "--min-prob", "content=1"], capsys)
    assert code == 0 and out == "" and "no line labeled content" in err
    code, out, _ = run_cli(["label", *m, "--format", "jsonl"], capsys)
    rows = [json.loads(l) for l in out.splitlines()]
    for keep in LABELS:  # --keep selects the rows of tsv and jsonl too
        code, out, _ = run_cli(["label", *m, "--format", "tsv", "--keep", keep], capsys)
        assert [l.split("\t")[2] for l in out.splitlines()] == [r["text"] for r in rows if r["label"] == keep]
    text = tmp_path / "page.txt"
    text.write_text("# First\nSecond\n")  # text input: paragraphs, no title
    code, out, _ = run_cli(["label", str(text), *m[1:], "--format", "markdown", *every], capsys)
    assert out == "\\# First\n\nSecond\n"


def test_predict_keeps_the_html_title(predictor, tmp_path):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    warc = tmp_path / "crawl.warc.gz"
    with open(warc, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for i, head in enumerate(["<title>Page 0</title>", "<meta property='og:title' content='Page 1'>", ""]):
            body = f"<html><head>{head}</head><body><p>Text {i}.</p></body></html>".encode()
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(f"https://ex.com/{i}", "response", payload=io.BytesIO(body),
                                                http_headers=http))
    out = tmp_path / "out.jsonl"
    predict_dump([str(warc)], str(out), predictor=predictor, progress=False)
    assert [json.loads(l).get("title") for l in out.read_text().splitlines()] == ["Page 0", "Page 1", None]
    src = tmp_path / "html.jsonl"
    src.write_text(json.dumps({"id": "a", "html": "<title>T</title><p>x</p>"}) + "\n" +
                   json.dumps({"id": "b", "html": "<title>T</title><p>x</p>", "title": 7}) + "\n" +
                   json.dumps({"id": "c", "text": "plain"}) + "\n")
    pq_out = tmp_path / "out.parquet"
    predict_dump([str(src)], str(pq_out), predictor=predictor, keep_fields=True, progress=False)
    import pyarrow.parquet as pq

    rows = pq.read_table(pq_out).to_pylist()
    assert [r["title"] for r in rows] == ["T", None, None]  # a kept input field "title" wins, as input
    assert json.loads(rows[1]["fields"]) == {"title": 7}


# -- one default runtime ---------------------------------------------------------------------------
def test_label_and_predict_share_the_default_runtime():
    parser = build_parser()
    assert parser.parse_args(["label", "p.txt"]).runtime == parser.parse_args(["predict", "x", "-o", "y"]).runtime == "auto"


# -- progress and summary ---------------------------------------------------------------------------
def test_records_tell_how_far_their_input_is_read(tmp_path):
    rows = "".join(json.dumps({"id": i, "text": f"page {i}\nline"}) + "\n" for i in range(300))
    plain, packed = tmp_path / "a.jsonl", tmp_path / "a.jsonl.gz"
    plain.write_text(rows)
    packed.write_bytes(gzip.compress(rows.encode()))
    for path in (plain, packed):
        ends = [r.end for r in read_records(str(path))]
        assert ends == sorted(ends) and ends[-1] == path.stat().st_size
    assert [r.end for r in read_records(str(plain))][:2] == [len(l) + 1 for l in rows.splitlines()[:1]] + \
        [sum(len(l) + 1 for l in rows.splitlines()[:2])]


def test_progress_totals(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [str(i) for i in range(25)], "text": ["a\nb"] * 25}), tmp_path / "a.parquet")
    (tmp_path / "b.jsonl").write_text("{}\n" * 10)
    (tmp_path / "t").mkdir()
    for i in range(3):
        (tmp_path / "t" / f"{i}.txt").write_text("x")
    bar = Progress("out", [str(tmp_path / "a.parquet"), str(tmp_path / "t")], None, "train", 0, True)
    assert not bar.by_bytes and bar.total == 28  # record counts: Parquet metadata and text files
    bar = Progress("out", [str(tmp_path / "a.parquet"), str(tmp_path / "b.jsonl")], None, "train", 0, True)
    assert bar.by_bytes and bar.total == (tmp_path / "a.parquet").stat().st_size + 30


@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_predict_progress_and_summary(predictor, tmp_path, capsys, fmt):
    records = [{"id": f"r{i}", "text": "Home\nStory told here.\n\nShare" * (1 + i % 3)} for i in range(40)]
    records[5] = {"id": "r5", "body": "no text"}
    src = tmp_path / f"in.{fmt}"
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), src, row_group_size=7)
    else:
        src.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode()))
    out = tmp_path / "out.jsonl"
    summary = predict_dump([str(src)], str(out), predictor=predictor, shard_size=16)
    err = capsys.readouterr().err
    # the bar has a total: 40/40 pages, or the bytes of the file and 100%
    assert ("40/40" in err) if fmt == "parquet" else ("100%" in err and "40 pages" in err)
    counts = collections.Counter(l for row in map(json.loads, out.read_text().splitlines())
                                 for l in row.get("labels") or () if l)
    assert summary["lines"] == {label: counts[label] for label in LABELS} and sum(counts.values()) > 0
    saved = json.loads((tmp_path / "out.jsonl.summary.json").read_text())
    assert saved["lines"] == summary["lines"] and saved["elapsed_s"] >= 0 and saved["errors"] == {"no text field": 1}


def test_predict_command_prints_the_summary(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": "Home\nStory told here."}) + "\n" for i in range(5)))
    code, _, err = run_cli(["predict", str(src), "-o", str(tmp_path / "out.jsonl"), "--model", str(tiny_model_dir),
                            "--runtime", "torch"], capsys)
    assert code == 0
    line = next(l for l in err.splitlines() if " lines: " in l)
    assert "10 lines" in line and all(label in line for label in LABELS) and " s (summary in " in line


# -- missing extras -----------------------------------------------------------------------------------
def test_missing_extra_is_one_line(monkeypatch, tmp_path, capsys):
    import importlib.util

    from pagesieve import evaluation
    from pagesieve.extras import MissingExtra

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "justext" else real(name, *a))
    monkeypatch.setattr(Predictor, "from_pretrained", classmethod(lambda *a, **k: pytest.fail("model loaded")))
    data = tmp_path / "pages.jsonl"
    data.write_text(json.dumps({"id": "p", "lines": ["a"], "labels": ["content"]}) + "\n")
    with pytest.raises(MissingExtra, match=r"pip install 'pagesieve\[baselines\]'"):
        evaluation.run(None, data, baselines=True)
    code, out, err = run_cli(["evaluate", "--data", str(data), "--baselines"], capsys)
    assert code == 2 and "justext" in err and "pagesieve[baselines]" in err and len(err.strip().splitlines()) == 1

    def fails(error):
        def run(*a, **k):
            raise error
        return run

    monkeypatch.setattr(evaluation, "run", fails(ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")))
    code, _, err = run_cli(["evaluate", "--data", str(data)], capsys)
    assert code == 2 and err.strip() == "pagesieve: error: matplotlib is not installed: pip install 'pagesieve[baselines]'"
    monkeypatch.setattr(evaluation, "run", fails(ModuleNotFoundError("No module named 'torch'", name="torch")))
    with pytest.raises(ModuleNotFoundError):  # a required module missing is a broken install: not hidden
        cli_main(["evaluate", "--data", str(data)])


@pytest.mark.parametrize("argv, given, expected", [
    (["predict", "--device", "cpu", "missing.jsonl", "-o", "out.jsonl"], None, "PASSIVE"),
    (["predict", "--device", "cpu", "missing.jsonl", "-o", "out.jsonl"], "ACTIVE", "ACTIVE"),
    (["evaluate", "--device", "cpu", "--data", "missing.jsonl"], None, None)])
def test_predict_lets_openmp_threads_sleep_unless_told_otherwise(tmp_path, argv, given, expected):
    """`pagesieve predict` sets OMP_WAIT_POLICY before torch loads (torch reads it then; `--device` loads
    it before the command runs), keeping a value the user set; other commands leave it alone. In a fresh
    process, since this one has torch loaded already."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = ("import os, sys\n"
            "seen = []\n"
            "class Watch:  # the policy at the moment torch is imported\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch' and not seen:\n"
            "            seen.append(os.environ.get('OMP_WAIT_POLICY'))\n"
            "sys.meta_path.insert(0, Watch())\n"
            "from pagesieve import cli\n"
            f"cli.main({argv!r})\n"
            "print('policy', seen)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == f"policy [{expected!r}]"


@pytest.mark.parametrize("flag, value", [("--shard-size", "0"), ("--shard-size", "-3"), ("--workers", "-1"),
                                         ("--threads", "-2"), ("--max-lines", "-5"), ("--max-line-bytes", "0"),
                                         ("--batch-size", "0"), ("--shard-size", "ten")])
def test_predict_refuses_bad_numbers_naming_the_flag(tmp_path, capsys, flag, value):
    """One line naming the flag and exit 2, before any model loads: not a traceback, not a silent default."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "Home"}) + "\n")
    with pytest.raises(SystemExit) as e:
        cli_main(["predict", str(src), "-o", str(tmp_path / "o.jsonl"), flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"argument {flag}" in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_predict_warns_when_no_record_has_the_page_field(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "body": "Home\nA story."}) + "\n" for i in range(3)))
    code, _, err = run_cli(["predict", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tiny_model_dir)], capsys)
    assert code == 0 and "warning: no record has a field 'lines', 'text' or 'html'" in err and "--text-field" in err
    code, _, err = run_cli(["predict", str(src), "-o", str(tmp_path / "p.jsonl"), "--model", str(tiny_model_dir),
                            "--text-field", "body"], capsys)
    assert code == 0 and "warning" not in err


def test_an_interrupted_predict_says_how_to_continue(tmp_path, capsys, monkeypatch):
    import pagesieve.dump

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pagesieve.dump, "predict_dump", interrupted)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "Home"}) + "\n")
    code, _, err = run_cli(["predict", str(src), "-o", str(tmp_path / "o.jsonl")], capsys)
    assert code == 130 and "rerun the same command to continue" in err


def test_a_missing_dataset_split_is_named_with_those_there(predictor, tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list([{"id": "a", "text": "Home"}])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match="has no split 'test' .*: it has train"):
        predict_dump([str(tmp_path / "dd")], str(tmp_path / "o.jsonl"), predictor=predictor, fmt="hf",
                     hf_split="test", progress=False)
