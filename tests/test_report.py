"""`pagesieve report`: the HTML file, from each kind of input, and opened in a real browser (Chromium)."""
import json
import os
import re
import shutil

import pytest

from pagesieve import report
from pagesieve.cli import main
from pagesieve.labels import LABELS

from conftest import DATA

HOSTILE = "<script>alert(1)</script>"


def fake_pages():
    """Two pages with gold labels and made-up predictions of every label: the first has 2
    disagreements (one on the hostile line), the second none; blank lines are not shown."""
    lines = ["Home", "", "The council approved the budget.", HOSTILE, "Photo: Reuters", "Share", "Log in"]
    gold = ["navigation", None, "content", "content", "caption", "ui_chrome", "ui_chrome"]
    pred = ["navigation", None, "content", "ui_chrome", "caption", "navigation", "ui_chrome"]
    probs = [[0.05, 0.05, 0.9, 0.0], None, [0.3, 0.3, 0.2, 0.2], [0.1, 0.1, 0.1, 0.7], [0.4, 0.6, 0, 0],
             [0, 0, 0.5, 0.5], [0, 0, 0.01, 0.99]]
    second = report.Page("site/b", ["Menu", "Text of b."], ["navigation", "content"], [[0, 0, 1, 0], [1, 0, 0, 0]],
                         gold=["navigation", "content"])
    return [report.Page("site/a", lines, pred, probs, gold), second]


def test_render_escapes_and_counts():
    doc = report.render(fake_pages(), title="<b>t</b>")
    assert HOSTILE not in doc and "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    assert "<b>t</b>" not in doc
    assert len(re.findall(r'<li value="\d+" class="line', doc)) == 8  # 6 + 2 non-blank lines
    assert len(re.findall(r'class="line [^"]* d"', doc)) == 2
    assert "accuracy 0.667, 2 disagreements" in doc and "accuracy 0.750, 2 disagreements" in doc


def test_cli_gold_pages_with_a_model(tiny_model_dir, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(DATA / "pages.jsonl"), "--gold", "--model", str(tiny_model_dir), "-o", str(out)]) == 0
    pages = [json.loads(l) for l in (DATA / "pages.jsonl").read_text().splitlines()]
    doc = out.read_text()
    n_lines = sum(1 for p in pages for l in p["lines"] if l.strip())
    assert len(re.findall(r'<li value="\d+" class="line', doc)) == n_lines
    assert 'id="only-d"' in doc and f"{len(pages)} pages, {n_lines} lines; against the gold" in doc


def test_cli_predict_output_needs_no_model(tmp_path):
    rec = {"id": "x", "lines": ["Home", "", "Body text"], "labels": ["navigation", None, "content"],
           "probs": [[0, 0, 0.8, 0.2], None, [0.6, 0.1, 0.2, 0.1]]}
    src, out = tmp_path / "pred.jsonl", tmp_path / "r.html"
    src.write_text(json.dumps(rec) + "\n")
    assert main(["report", str(src), "-o", str(out), "--model", str(tmp_path / "no-such-model")]) == 0
    doc = out.read_text()
    assert "navigation 0.80" in doc and "content 0.60" in doc and 'id="only-d"' not in doc


def test_cli_plain_pages(tiny_model_dir, tmp_path):
    (tmp_path / "p.txt").write_text("Home\n\nSome text of the page.\n")
    (tmp_path / "p.html").write_text(f"<html><body><p>{HOSTILE.replace('<', '&lt;')}</p><p>Para</p></body></html>")
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "p.txt"), str(tmp_path / "p.html"), "--model", str(tiny_model_dir),
                 "-o", str(out)]) == 0
    doc = out.read_text()
    assert len(re.findall(r'<li value="\d+" class="line l-(?:' + "|".join(LABELS) + ")", doc)) == 4
    assert HOSTILE not in doc


def test_cli_bad_inputs(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("Home\n")
    assert main(["report", str(tmp_path / "p.txt"), "--gold", "-o", str(tmp_path / "r.html")]) == 2
    (tmp_path / "labels-only.jsonl").write_text(json.dumps({"id": "x", "labels": ["content"]}) + "\n")
    assert main(["report", str(tmp_path / "labels-only.jsonl"), "-o", str(tmp_path / "r.html")]) == 2
    assert "--with-lines" in capsys.readouterr().err


def test_cli_output_folder_is_one_line_before_the_model_loads(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("Home\n")
    assert main(["report", str(tmp_path / "p.txt"), "-o", str(tmp_path), "--model", str(tmp_path / "no-model")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a directory" in err[0]


# -- in a real browser -----------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing(reason):
    if os.environ.get("CI"):  # .ci/run installs both: missing there is a failure, not a skip
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install playwright)")
    if not CHROMIUM:
        missing("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_report_in_a_browser(browser, tmp_path):
    path = report.write(fake_pages(), tmp_path / "r.html")
    page = browser.new_page()
    page.set_default_timeout(5000)
    dialogs, requests = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())

    lines = page.locator("li.line")
    assert lines.count() == 8
    assert page.locator("nav li").count() == 2
    colour = "el => getComputedStyle(el).borderLeftColor"
    assert len(set(report.COLOURS.values())) == len(LABELS)
    for label in LABELS:  # every line and the legend in its label's colour
        expected = f"rgb({report.COLOURS[label].replace(',', ', ')})"
        shown = page.locator(f'li.line[data-label="{label}"]')
        assert shown.count() == sum(1 for p in fake_pages() for l in p.labels if l == label)
        assert set(shown.evaluate_all(f"els => els.map({colour})")) == {expected}
        assert page.locator(f".legend .l-{label}").evaluate(colour) == expected
    alpha = "el => parseFloat(getComputedStyle(el).backgroundColor.split(',')[3])"
    sure, unsure = lines.filter(has_text="Log in"), lines.filter(has_text="The council")
    assert sure.evaluate(alpha) > unsure.evaluate(alpha)  # shade by probability

    hostile = lines.filter(has_text="alert(1)")
    assert hostile.locator("q").inner_text() == HOSTILE  # shown as text, never run
    assert page.locator("main script").count() == 0 and not dialogs

    shown_texts = "els => els.filter(el => el.checkVisibility()).map(el => el.innerText)"
    page.check("#only-d")
    visible = lines.evaluate_all(shown_texts)
    assert len(visible) == 2
    assert any(HOSTILE in t for t in visible) and any("Share" in t for t in visible)
    assert not page.locator("#p1").is_visible()  # the page without disagreements is hidden
    page.uncheck("#only-d")
    assert len(lines.evaluate_all(shown_texts)) == 8
    assert requests == [path.as_uri()]  # nothing fetched but the file itself
