"""The datatrove steps the way corpus builders use them: a WARC -> reader -> PagesieveExtractor -> kept
text, PagesieveFilter with an exclusion writer, stats and thresholds, and the examples' Local, Ray
(when ray is installed) and Slurm pipelines. Tiny random models: every class is kept where the test
needs a known text."""
import gzip
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from datatrove.data import Document  # noqa: E402

from pagesieve.labels import LABELS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ALL = tuple(LABELS)

NEWS = ("<!doctype html><html><head><title>Budget vote</title><style>body { color: red }</style>"
        "<script>var tracker = function () { return document.cookie };</script></head><body>"
        "<nav><a href='/'>Home</a> <a href='/news'>News</a></nav><article><h1>Council passes the budget</h1>"
        "<p>The council approved the budget on Monday.</p><p>It takes effect in <b>May</b>.</p></article>"
        "<footer>&copy; 2024 Example</footer><script>tracker();</script></body></html>")
RU = ["Главная Новости", "Министр заявил в четверг, что переговоры продолжатся."]
FR = ["Accueil", "Le café était fermé à côté de la gare, près du marché."]


def legacy(lines, meta=""):
    nav, text = lines
    return f"<html><head>{meta}<title>{nav}</title></head><body><nav>{nav}</nav><p>{text}</p></body></html>"


def write_warc(path):
    """A crawl: UTF-8, windows-1251 (declared in <meta> only) and latin-1 (in the HTTP header only)
    pages, a page with no text, an image and a request record."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    responses = [(NEWS.encode(), "text/html; charset=utf-8"),
                 (legacy(RU, '<meta charset="windows-1251">').encode("cp1251"), "text/html"),
                 (legacy(FR).encode("latin-1"), "text/html; charset=iso-8859-1"),
                 (b"<html><body><script>app.start()</script></body></html>", "text/html"),
                 (b"\x89PNG\r\n\x1a\n", "image/png")]
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        request = io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")
        w.write_record(w.create_warc_record("https://ex.com/0", "request", payload=request))
        for i, (body, ctype) in enumerate(responses):
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(f"https://ex.com/{i}", "response", payload=io.BytesIO(body),
                                                http_headers=http))


@pytest.fixture
def crawl(tmp_path):
    (tmp_path / "crawl").mkdir()
    write_warc(tmp_path / "crawl" / "a.warc.gz")
    return tmp_path / "crawl"


def read_jsonl(folder):
    return sorted((json.loads(l) for f in sorted(folder.glob("*.jsonl.gz")) for l in gzip.open(f, "rt")),
                  key=lambda r: r["id"])


def stats(logs) -> list[dict]:
    """The stats of each step of a one-task run, in the pipeline's order."""
    return [step["stats"] for step in json.loads(next((logs / "stats").glob("*.json")).read_text())]


def count(step_stats, key):
    value = step_stats.get(key, 0)
    return value["total"] if isinstance(value, dict) else value


def run_local(pipeline, logs):
    from datatrove.executor import LocalPipelineExecutor

    LocalPipelineExecutor(pipeline=pipeline, tasks=1, logging_dir=str(logs)).run()


def test_warc_to_kept_text(tiny_model_dir, crawl, tmp_path):
    from datatrove.pipeline.writers import JsonlWriter

    from pagesieve.datatrove_step import PagesieveExtractor, PagesieveWarcReader

    run_local([PagesieveWarcReader(str(crawl)),
               PagesieveExtractor(str(tiny_model_dir), keep=ALL, device="cpu", runtime="torch",
                                  exclusion_writer=JsonlWriter(str(tmp_path / "excluded"))),
               JsonlWriter(str(tmp_path / "kept"))], tmp_path / "logs")
    kept = {r["metadata"]["url"]: r for r in read_jsonl(tmp_path / "kept")}
    assert sorted(kept) == ["https://ex.com/0", "https://ex.com/1", "https://ex.com/2"]
    assert kept["https://ex.com/0"]["text"].split("\n") == [
        "Home News", "Council passes the budget", "The council approved the budget on Monday.",
        "It takes effect in May.", "© 2024 Example"]  # no markup, script, style or <head>
    assert kept["https://ex.com/1"]["text"].split("\n") == RU  # charset of the <meta>
    assert kept["https://ex.com/2"]["text"].split("\n") == FR  # charset of the HTTP header
    meta = kept["https://ex.com/0"]["metadata"]
    assert meta["title"] == "Budget vote" and len(meta["pagesieve_labels"]) == 5
    assert set(meta["pagesieve_labels"]) <= set(LABELS) and meta["pagesieve_line_share"] == 1.0
    assert "pagesieve_probs" not in meta  # on request only

    excluded = read_jsonl(tmp_path / "excluded")
    assert [(r["metadata"]["url"], r["metadata"]["filter_reason"]) for r in excluded] == [
        ("https://ex.com/3", "empty")]
    reader, extractor, _ = stats(tmp_path / "logs")
    assert [count(extractor, k) for k in ("total", "forwarded", "dropped", "dropped_empty")] == [4, 3, 1, 1]
    assert sum(count(extractor, f"lines_{lab}") for lab in LABELS) == 5 + 2 + 2
    assert count(reader, "skipped_not_HTML") == 1 and count(reader, "documents") == 4


def test_datatrove_warc_reader_feeds_the_extractor(tiny_model_dir, crawl, tmp_path):
    """What a FineWeb-style pipeline has: datatrove's own WarcReader (which decodes by detection)."""
    pytest.importorskip("cchardet")
    pytest.importorskip("magic")
    from datatrove.pipeline.readers import WarcReader

    from pagesieve.datatrove_step import PagesieveExtractor

    docs = list(PagesieveExtractor(str(tiny_model_dir), keep=ALL, device="cpu", runtime="torch")
                .run(WarcReader(str(crawl)).run()))
    news = next(d for d in docs if d.metadata["url"] == "https://ex.com/0")
    assert "The council approved the budget on Monday." in news.text
    for doc in docs:
        assert "<" not in doc.text and "tracker" not in doc.text and "color" not in doc.text


def test_extractor_never_crashes_on_what_is_not_a_page():
    from pagesieve.datatrove_step import PagesieveExtractor

    docs = [Document(text=t, id=str(i)) for i, t in enumerate(
        ["   ", "<html><body><script>x()</script></body></html>", bytes(range(128, 256)) * 8])]
    extractor = PagesieveExtractor("no model needed", keep=ALL)  # nothing here reaches the model
    assert extractor.filter_batch(docs) == [(False, "no_html"), (False, "empty"), (False, "bad_charset")]
    keep_empty = PagesieveExtractor("no model needed", drop_empty=False)
    assert keep_empty.filter_batch(docs) == [True] * 3 and [d.text for d in docs] == [""] * 3
    with pytest.raises(ValueError, match="renderer"):
        PagesieveExtractor(renderer="browser")


# pages of different make-ups, so that their shares of kept lines differ
PAGES = ["\n".join(["Home", "News"][:1 + i % 2] + [f"Story {i}, part {j}, goes on." for j in range(1 + i % 4)] + [""]
                   + ["Share", "Log in", "Subscribe to our newsletter"][:1 + i % 3]) for i in range(12)]


def filtered(tiny_model_dir, tmp_path, name, **kw):
    """Run PagesieveFilter on PAGES with an exclusion writer: (kept rows, excluded rows, stats)."""
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from pagesieve.datatrove_step import PagesieveFilter

    inp = tmp_path / "in"
    if not inp.exists():
        inp.mkdir()
        rows = [json.dumps({"id": f"{i:02d}", "text": text}) + "\n" for i, text in enumerate(PAGES)]
        (inp / "a.jsonl").write_text("".join(rows))
    out = tmp_path / name
    run_local([JsonlReader(str(inp)),
               PagesieveFilter(str(tiny_model_dir), device="cpu", runtime="torch", store_probs=True, batch_pages=5,
                               exclusion_writer=JsonlWriter(str(out / "excluded")), **kw),
               JsonlWriter(str(out / "kept"))], out / "logs")
    return read_jsonl(out / "kept"), read_jsonl(out / "excluded"), stats(out / "logs")[1]


def cut(values: list[float]) -> float:
    """A threshold that splits the values near their median, away from any of them by more than
    their rounding in metadata."""
    values = sorted(set(values))
    gaps = [(abs(i - len(values) // 2), (a + b) / 2) for i, (a, b) in enumerate(zip(values, values[1:]))
            if b - a > 3e-4]
    return min(gaps)[1]


def test_filter_thresholds_exclusion_writer_and_stats(tiny_model_dir, tmp_path):
    from pagesieve.predictor import Predictor

    kept, excluded, st = filtered(tiny_model_dir, tmp_path, "all", keep=ALL)
    assert [r["text"] for r in kept] == [t.replace("\n\n", "\n") for t in PAGES] and excluded == []
    # the stored probabilities are the model's (the same as Predictor.predict's), one row per line
    predicted = Predictor.from_pretrained(str(tiny_model_dir), device="cpu").predict(PAGES[0])
    probs = kept[0]["metadata"]["pagesieve_probs"]
    blank = PAGES[0].split("\n").index("")
    assert probs[blank] is None and kept[0]["metadata"]["pagesieve_labels"][blank] is None
    for line in predicted:
        assert probs[line.index] == pytest.approx([line.probs[lab] for lab in LABELS], abs=1e-3)
        assert kept[0]["metadata"]["pagesieve_labels"][line.index] == line.label

    # a per-class threshold (min_prob) on the most frequent label, near the median of its probabilities
    # where it is the label, so that some of its lines keep it and some do not
    first = {r["id"]: r["metadata"] for r in kept}
    labels = [lab for m in first.values() for lab in m["pagesieve_labels"] if lab]
    top = max(LABELS, key=labels.count)
    col = LABELS.index(top)
    t = cut([p[col] for m in first.values() for p, lab in zip(m["pagesieve_probs"], m["pagesieve_labels"])
             if lab == top])
    kept, excluded, st = filtered(tiny_model_dir, tmp_path, "min_prob", keep=(top,), min_prob={top: t})
    for r in kept + excluded:
        before, source = first[r["id"]], PAGES[int(r["id"])].split("\n")
        expected = [line for line, lab, p in zip(source, before["pagesieve_labels"], before["pagesieve_probs"])
                    if lab == top and p[col] >= t]
        if r in kept:
            assert r["text"].split("\n") == expected
        else:  # dropped: all its lines go to the exclusion writer, with the reason
            assert expected == [] and r["metadata"]["filter_reason"] == "empty" and r["text"].split("\n") == source
        assert r["metadata"]["pagesieve_labels"].count(top) == len(expected)  # the others took another label
        nonblank = [line for line in source if line.strip()]
        assert r["metadata"]["pagesieve_line_share"] == pytest.approx(len(expected) / len(nonblank), abs=1e-4)
        assert r["metadata"]["pagesieve_char_share"] == pytest.approx(
            sum(map(len, expected)) / sum(map(len, nonblank)), abs=1e-4)
    assert kept and count(st, "forwarded") == len(kept) and count(st, "dropped") == len(excluded)
    assert count(st, "total") == len(PAGES) and count(st, f"lines_{top}") < labels.count(top)

    # a document threshold: the share of its lines kept, near the median of the shares
    share = cut([r["metadata"]["pagesieve_line_share"] for r in kept + excluded])
    kept2, excluded2, st = filtered(tiny_model_dir, tmp_path, "line_share", keep=(top,), min_prob={top: t},
                                    min_line_share=share)
    assert kept2 and excluded2
    assert all(r["metadata"]["pagesieve_line_share"] >= share for r in kept2)
    assert {r["metadata"]["filter_reason"] for r in excluded2 if r["metadata"]["pagesieve_line_share"] > 0} == {
        "line_share"}
    assert count(st, "dropped_line_share") == sum(r["metadata"]["filter_reason"] == "line_share" for r in excluded2)
    with pytest.raises(ValueError, match="min_prob"):
        filtered(tiny_model_dir, tmp_path, "bad", min_prob={"boilerplate": 0.5})


def test_labeler_keeps_its_name_and_behaviour(tiny_model_dir, tmp_path):
    """Code written for PagesieveLabeler (before it was a filter) still runs and gives the same output."""
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from pagesieve.datatrove_step import PagesieveLabeler

    inp = tmp_path / "in"
    inp.mkdir()
    with open(inp / "a.jsonl", "w") as fh:
        for i in range(5):
            fh.write(json.dumps({"id": str(i), "text": f"Home\nStory {i}.\n\nShare"}) + "\n")
    run_local([JsonlReader(str(inp)), PagesieveLabeler(model=str(tiny_model_dir), device="cpu", keep=ALL),
               JsonlWriter(str(tmp_path / "out"))], tmp_path / "logs")
    rows = read_jsonl(tmp_path / "out")
    assert len(rows) == 5
    assert rows[0]["text"] == "Home\nStory 0.\nShare"
    assert len(rows[0]["metadata"]["pagesieve_labels"]) == 4 and rows[0]["metadata"]["pagesieve_labels"][2] is None


# -- the examples ---------------------------------------------------------------------------------
def example(name):
    sys.path.insert(0, str(ROOT / "examples"))  # the examples share datatrove_local.pipeline
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return module


def check_example_output(out):
    kept = read_jsonl(out / "kept")
    assert {r["metadata"]["url"] for r in kept} == {"https://ex.com/0", "https://ex.com/1", "https://ex.com/2"}
    assert any("Министр заявил" in r["text"] for r in kept)
    assert [r["metadata"]["filter_reason"] for r in read_jsonl(out / "excluded")] == ["empty"]


def test_local_example(tiny_model_dir, crawl, tmp_path):
    example("datatrove_local").main([str(crawl), str(tmp_path / "out"), "--model", str(tiny_model_dir),
                                     "--keep", ",".join(ALL), "--runtime", "torch"])
    check_example_output(tmp_path / "out")


def test_ray_example(tiny_model_dir, crawl, tmp_path):
    pytest.importorskip("ray")
    example("datatrove_ray").main([str(crawl), str(tmp_path / "out"), "--model", str(tiny_model_dir),
                                   "--keep", ",".join(ALL), "--runtime", "torch", "--cpus", "1"])
    check_example_output(tmp_path / "out")


def test_slurm_example_asks_for_the_measured_resources(tmp_path):
    slurm = example("datatrove_slurm")
    executor = slurm.executor(slurm.parse_args([str(tmp_path), str(tmp_path / "out"), "--tasks", "100",
                                                "--partition", "cpu"]))
    args = executor.get_sbatch_args()
    assert args["cpus-per-task"] == 2 and args["mem-per-cpu"].endswith("G") and args["partition"] == "cpu"
    assert executor.world_size == 100
