"""Metrics, baselines and `pagesieve evaluate`."""
import json

import pytest

from pagesieve import evaluation
from pagesieve.cli import main as cli_main
from pagesieve.metrics import char_content_scores, scores


def test_scores_by_hand():
    gold = [0, 0, 1, 2, 3, 3]
    pred = [0, 2, 1, 2, 3, 2]
    s = scores(gold, pred)
    assert s["content"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert s["navigation"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert s["macro_f1"] == pytest.approx((2 / 3 + 1 + 0.5 + 2 / 3) / 4, abs=1e-3)
    assert s["confusion"][0] == [1, 0, 1, 0]
    c = char_content_scores([0, 0, 2], [0, 2, 0], [90, 10, 50])
    assert c["precision"] == pytest.approx(90 / 140, abs=1e-4) and c["recall"] == pytest.approx(0.9, abs=1e-4)


def test_baselines_on_lines():
    page = {"lang": "en", "lines": ["Home", "The council approved the new budget on Tuesday after a long debate.",
                                    "Subscribe", "Privacy policy"], "labels": ["navigation", "content", "ui_chrome", "navigation"]}
    C, O = evaluation.CONTENT, evaluation.OTHER
    assert evaluation.all_content(page) == [C] * 4
    assert evaluation.c4_rules(page) == [O, C, O, O]
    assert len(evaluation.justext_lines(page)) == 4
    html = "<html><body><nav>Home</nav><article><p>" + page["lines"][1] + " " * 3 + "</p>" + \
           "<p>More body text that makes this an article worth extracting for sure.</p>" * 5 + "</article></body></html>"
    got = evaluation.trafilatura_lines(page, html)
    assert got[1] == C and got[0] == O
    assert evaluation.trafilatura_lines(page, None) is None


def test_evaluate_command(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "pages.jsonl"
    data.write_text((__import__("pathlib").Path(__file__).parent / "data" / "pages.jsonl").read_text())
    code = cli_main(["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--baselines",
                     "--corpora", str(tmp_path / "none"), "--out", str(tmp_path / "rep")])
    out = capsys.readouterr().out
    assert code == 0
    for name in ("pagesieve", "all-content", "c4-rules", "justext", "Per language", "Confusion"):
        assert name in out
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [r["name"] for r in rep] == ["pagesieve", "all-content", "c4-rules", "justext"]
    assert rep[1]["content"]["recall"] == 1.0
    assert (tmp_path / "rep" / "confusion.png").stat().st_size > 1000


def test_page_bootstrap_interval_and_paired_difference():
    from pagesieve.labels import LABELS

    pages = [{"lines": [f"p{k} line {i}" for i in range(8)], "labels": [LABELS[i % 4] for i in range(8)]}
             for k in range(12)]
    gold = [[LABELS.index(l) for l in p["labels"]] for p in pages]
    half = [g[:4] + [evaluation.CONTENT] * 4 for g in gold]  # the second half of each page all content
    b = evaluation.page_bootstrap(pages, gold, draws=200)
    assert b["std"] == 0 and b["low"] == b["high"] == 1.0  # perfect on every page: no spread
    same = evaluation.page_bootstrap(pages, half, half, draws=200)
    assert same["std"] == 0 and same["low"] == same["high"] == 0 and same["ahead_share"] == 0
    better = evaluation.page_bootstrap(pages, gold, half, draws=200)
    assert better["ahead_share"] == 1.0 and better["low"] > 0
    mixed = [g if k % 2 else h for k, (g, h) in enumerate(zip(gold, half))]  # right on half of the pages
    spread = evaluation.page_bootstrap(pages, mixed, draws=200)
    assert spread["std"] > 0 and spread["low"] < spread["high"]


def test_evaluate_compare(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "pages.jsonl"
    data.write_text((__import__("pathlib").Path(__file__).parent / "data" / "pages.jsonl").read_text())
    code = cli_main(["evaluate", "--model", str(tiny_model_dir), "--data", str(data), "--compare", str(tiny_model_dir)])
    out = capsys.readouterr().out
    assert code == 0
    assert "page-bootstrap interval" in out and "ahead in 0% of draws" in out and ": +0.000 macro-F1" in out


def test_line_metrics_through_evaluate():
    """`pagesieve evaluate` computes its numbers through a Hugging Face `evaluate` metric (offline)."""
    import evaluate
    import numpy as np

    import pagesieve.line_metric
    from pagesieve.line_metric import LineMetrics

    rng = np.random.default_rng(0)
    gold, pred, w = rng.integers(0, 4, 300), rng.integers(0, 4, 300), rng.integers(1, 200, 300)
    assert LineMetrics().compute(predictions=pred, references=gold) == scores(gold, pred)
    assert LineMetrics().compute(predictions=pred, references=gold, weights=w) == scores(gold, pred, w)
    loaded = evaluate.load(pagesieve.line_metric.__file__)  # evaluate's own loader, by path
    assert loaded.compute(predictions=[0, 2, 1], references=[0, 2, 2])["accuracy"] == pytest.approx(2 / 3, abs=1e-4)
