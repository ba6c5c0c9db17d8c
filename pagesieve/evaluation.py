"""`pagesieve evaluate`: the model and the baselines on labeled pages, same lines, same metrics.

Baselines (they only tell content from the rest; their non-content lines count as
`navigation`, the most common non-content class):
- all-content: every line is content.
- c4-rules: C4's line filter as datatrove implements it (keep lines that end in terminal
  punctuation, have at least 3 words, and mention neither javascript, lorem ipsum, curly
  braces nor cookie/privacy/terms-of-use policies).
- justext: jusText on the lines (each line a paragraph), with the stoplist of the page's
  language (English when it has none).
- trafilatura: where the page's HTML is in the corpora, lines that appear in trafilatura's
  extracted text are content.
"""
from __future__ import annotations

import collections
import gzip
import json
import re
from pathlib import Path

import numpy as np

from .labels import LABELS
from .metrics import char_content_scores, scores

CONTENT, OTHER = LABELS.index("content"), LABELS.index("navigation")


# -- baselines ----------------------------------------------------------------------------
def all_content(page) -> list[int]:
    return [CONTENT] * len(page["lines"])


_C4_BAD = re.compile(r"javascript|lorem ipsum|\{|terms of use|privacy policy|cookie policy|uses cookies|"
                     r"use of cookies|use cookies", re.I)
_TERMINAL = (".", "!", "?", '"', "”", "’", "'", "。", "！", "？", "」", "』", "…")


def c4_rules(page) -> list[int]:
    out = []
    for line in page["lines"]:
        s = line.strip()
        ok = s.endswith(_TERMINAL) and len(s.split()) >= 3 and not _C4_BAD.search(s)
        out.append(CONTENT if ok else OTHER)
    return out


_JUSTEXT_LANGS = {"en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian",
                  "pt": "Portuguese", "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian_Bokmal",
                  "nb": "Norwegian_Bokmal", "fi": "Finnish", "pl": "Polish", "cs": "Czech", "ru": "Russian",
                  "uk": "Ukrainian", "tr": "Turkish", "ar": "Arabic", "id": "Indonesian", "ko": "Korean",
                  "hu": "Hungarian", "ro": "Romanian", "el": "Greek", "lt": "Lithuanian", "vi": "Vietnamese"}


def justext_lines(page) -> list[int]:
    import html as htmllib

    import justext

    name = _JUSTEXT_LANGS.get((page.get("lang") or "en").split("-")[0], "English")
    try:
        stop = justext.get_stoplist(name)
    except ValueError:
        stop = justext.get_stoplist("English")
    doc = "<html><body>" + "".join(f"<p>{htmllib.escape(l)}</p>" for l in page["lines"]) + "</body></html>"
    paras = justext.justext(doc.encode("utf-8"), stop, encoding="utf-8")
    good = collections.Counter(p.text.strip() for p in paras if not p.is_boilerplate)
    out = []
    for line in page["lines"]:
        key = re.sub(r"\s+", " ", line).strip()
        if good[key] > 0:
            good[key] -= 1
            out.append(CONTENT)
        else:
            out.append(OTHER)
    return out


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().casefold()


def trafilatura_text(html: str) -> str:
    """trafilatura's main text with the options every comparison here uses (tables kept, no comments)."""
    import trafilatura

    return trafilatura.extract(html, include_comments=False, include_tables=True, favor_precision=False) or ""


def trafilatura_lines(page, html: str | None) -> list[int] | None:
    if not html:
        return None
    return lines_in_text(page["lines"], trafilatura_text(html))


def lines_in_text(lines: list[str], text: str) -> list[int]:
    """Labels of a page's lines from an extractor's text: content when the text has the line as a
    line, or, for a line of 40 characters or more, anywhere in its lines; else navigation."""
    kept = {_norm(l) for l in text.splitlines() if l.strip()}
    joined = " ".join(sorted(kept))
    return [CONTENT if (_norm(l) in kept or (len(l) >= 40 and _norm(l) in joined)) else OTHER for l in lines]


def html_by_id(corpora: Path, ids: set[str]) -> dict[str, str]:
    found = {}
    for f in sorted(Path(corpora).glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                if '"id"' not in raw:
                    continue
                rec = json.loads(raw)
                if rec.get("id") in ids:
                    found[rec["id"]] = rec.get("html")
    return found


# -- evaluation ----------------------------------------------------------------------------
def gold_of(page) -> tuple[list[int], list[int], list[int]]:
    """(non-blank line indexes, gold ids, character counts)."""
    idx = [i for i, l in enumerate(page["lines"]) if l.strip() and page["labels"][i] is not None]
    return idx, [LABELS.index(page["labels"][i]) for i in idx], [len(page["lines"][i]) for i in idx]


def report(name: str, pages, preds_per_page) -> dict:
    from .line_metric import LineMetrics

    gold, pred, lens, langs = [], [], [], []
    for page, pred_page in zip(pages, preds_per_page):
        if pred_page is None:
            continue
        idx, g, n = gold_of(page)
        gold += g
        pred += [pred_page[i] for i in idx]
        lens += n
        langs += [page.get("lang") or "unknown"] * len(idx)
    r = LineMetrics().compute(predictions=pred, references=gold)  # = scores(gold, pred), through `evaluate`
    r["name"] = name
    r["pages"] = sum(p is not None for p in preds_per_page)
    r["content_chars"] = char_content_scores(gold, pred, lens)
    gold, pred, langs = np.array(gold), np.array(pred), np.array(langs)
    r["per_language"] = {lang: {k: v for k, v in scores(gold[langs == lang], pred[langs == lang]).items()
                                if k in ("lines", "macro_f1", "accuracy", "content")}
                         for lang in sorted(set(langs.tolist()))}
    return r


def page_bootstrap(pages, preds, other=None, draws: int = 1000, seed: int = 0) -> dict:
    """How much macro-F1 depends on which pages were drawn: resample the pages with replacement.

    With `other` (a second system's predictions on the same pages), the paired difference
    preds - other on each draw, and the share of draws in which `preds` is ahead: two models
    err on the same hard pages, so their difference is far less noisy than either score."""
    per_page = []
    for i, page in enumerate(pages):
        idx, g, _ = gold_of(page)
        per_page.append((np.array(g, dtype=np.int64), np.array([preds[i][j] for j in idx], dtype=np.int64),
                         np.array([other[i][j] for j in idx], dtype=np.int64) if other is not None else None))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws):
        pick = [per_page[k] for k in rng.integers(0, len(pages), len(pages))]
        gold = np.concatenate([g for g, _, _ in pick])
        v = scores(gold, np.concatenate([a for _, a, _ in pick]))["macro_f1"]
        if other is not None:
            v -= scores(gold, np.concatenate([b for _, _, b in pick]))["macro_f1"]
        values.append(v)
    values = np.array(values)
    out = {"draws": draws, "std": round(float(values.std()), 4),
           "low": round(float(np.percentile(values, 5)), 4), "high": round(float(np.percentile(values, 95)), 4)}
    if other is not None:
        out["ahead_share"] = round(float((values > 0).mean()), 3)
    return out


def model_predictions(predictor, pages, batch_size: int | None = None) -> list[list[int]]:
    from .encoding import per_line

    return [[OTHER if c is None else c for c in per_line(enc, probs)]  # blank lines are not scored
            for enc, probs in predictor.line_probs([p["lines"] for p in pages], batch_size)]


def run(model_path, data, baselines: bool = False, corpora: Path | None = None, out_dir: Path | None = None,
        batch_size: int | None = None, device: str | None = None, runtime: str = "torch",
        compare: str | None = None) -> list[dict]:
    """Reports of the model (with a page-bootstrap interval of its macro-F1), of the `compare` model
    (with the paired difference) and of the baselines, on the same pages."""
    from .data import read_pages
    from .extras import require
    from .predictor import Predictor

    if baselines:  # before the model runs: a missing extra is one line, not a traceback minutes later
        require("evaluate --baselines", "justext", "lxml_html_clean")
        if corpora and Path(corpora).exists():
            require("evaluate --baselines (trafilatura on the pages' HTML)", "trafilatura")
    if out_dir:
        require("evaluate --out (confusion.png)", "matplotlib")
    pages = [p for p in read_pages(data)]
    if not pages:
        raise ValueError(f"{data}: no labeled pages")
    preds = model_predictions(Predictor.from_pretrained(model_path, device=device, runtime=runtime), pages, batch_size)
    reports = [report("pagesieve", pages, preds)]
    reports[0]["bootstrap"] = page_bootstrap(pages, preds)
    if compare:
        other = model_predictions(Predictor.from_pretrained(compare, device=device, runtime=runtime), pages, batch_size)
        reports.append(report(f"compare: {compare}", pages, other))
        reports[0]["versus"] = {"model": str(compare), "difference": round(reports[0]["macro_f1"] - reports[1]["macro_f1"], 4),
                                **page_bootstrap(pages, preds, other)}
    if baselines:
        reports.append(report("all-content", pages, [all_content(p) for p in pages]))
        reports.append(report("c4-rules", pages, [c4_rules(p) for p in pages]))
        reports.append(report("justext", pages, [justext_lines(p) for p in pages]))
        if corpora and Path(corpora).exists():
            html = html_by_id(Path(corpora), {p["id"] for p in pages})
            reports.append(report("trafilatura", pages, [trafilatura_lines(p, html.get(p["id"])) for p in pages]))
    if out_dir:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "report.json").write_text(json.dumps(reports, indent=1))
        confusion_png(reports[0], out_dir / "confusion.png")
    return reports


def format_reports(reports: list[dict]) -> str:
    rows = ["| system | pages | macro-F1 | accuracy | " + " | ".join(f"{l} F1" for l in LABELS) +
            " | content P (chars) | content R (chars) |", "|" + "---|" * (7 + len(LABELS) - 1)]
    for r in reports:
        rows.append(f"| {r['name']} | {r['pages']} | {r['macro_f1']:.3f} | {r['accuracy']:.3f} | " +
                    " | ".join(f"{r[l]['f1']:.3f}" for l in LABELS) +
                    f" | {r['content_chars']['precision']:.3f} | {r['content_chars']['recall']:.3f} |")
    m = reports[0]
    if "bootstrap" in m:
        b = m["bootstrap"]
        rows += ["", f"{m['name']} macro-F1 {m['macro_f1']:.3f}: 90% page-bootstrap interval {b['low']:.3f}-{b['high']:.3f} "
                     f"(std {b['std']:.3f}, {b['draws']} draws of the {m['pages']} pages)"]
    if "versus" in m:
        v = m["versus"]
        rows += [f"{m['name']} - {v['model']}: {v['difference']:+.3f} macro-F1; paired page bootstrap: 90% interval "
                 f"{v['low']:+.3f} to {v['high']:+.3f} (std {v['std']:.3f}), ahead in {v['ahead_share']:.0%} of draws"]
    rows += ["", f"Per class ({m['name']}):", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    rows += [f"| {l} | {m[l]['precision']:.3f} | {m[l]['recall']:.3f} | {m[l]['f1']:.3f} | {m[l]['support']} |" for l in LABELS]
    rows += ["", "Confusion (rows gold, columns predicted):", "",
             "| gold \\ pred | " + " | ".join(LABELS) + " |", "|" + "---|" * (len(LABELS) + 1)]
    rows += [f"| {l} | " + " | ".join(str(x) for x in m["confusion"][i]) + " |" for i, l in enumerate(LABELS)]
    rows += ["", "Per language:", "", "| lang | lines | macro-F1 | accuracy | content F1 |", "|---|---|---|---|---|"]
    rows += [f"| {lang} | {s['lines']} | {s['macro_f1']:.3f} | {s['accuracy']:.3f} | {s['content']['f1']:.3f} |"
             for lang, s in m["per_language"].items()]
    return "\n".join(rows)


def confusion_png(rep: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(rep["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=30)
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(f"{rep['name']}: macro-F1 {rep['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
