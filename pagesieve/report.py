"""`pagesieve report`: one self-contained HTML page to look at labeled pages.

Each page's lines are coloured by label, shaded by the label's probability; given gold labels, the
report shows the per-page accuracy, marks the lines where the model disagrees with the gold and can
filter them. The file has no external resource (inline CSS and JS; a Content-Security-Policy forbids
any request), and every text in it is escaped: pages hold hostile HTML.
"""
from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass
from pathlib import Path

from .labels import LABELS
from .text import HTML_SUFFIXES

COLOURS = {"content": "46,125,50", "caption": "0,131,143", "navigation": "230,115,0", "ui_chrome": "142,36,170"}
UNKNOWN = "120,120,120"  # a line whose label is unknown (None in weak data)


@dataclass
class Page:
    id: str
    lines: list[str]
    labels: list[str | None] | None  # shown (predicted) label per line; None until the model has run
    probs: list[list[float] | None] | None = None  # per line, the probabilities in LABELS order
    gold: list[str | None] | None = None

    def rows(self):
        """(index, text, label, probability of the label or None, gold label) of each non-blank line."""
        for i, text in enumerate(self.lines):
            if not text.strip():
                continue
            label = self.labels[i]
            p = self.probs[i] if self.probs else None
            prob = p[LABELS.index(label)] if p and label in LABELS else None
            yield i, text, label, prob, self.gold[i] if self.gold else None


def disagrees(label, gold) -> bool:
    return gold is not None and label != gold


# -- reading ---------------------------------------------------------------------------------
def is_labeled_file(name: str) -> bool:
    return name.endswith((".jsonl", ".jsonl.gz")) or Path(name).is_dir()


def labeled_pages(source: str, gold: bool) -> list[Page]:
    """Pages of a labeled-pages file (lines + labels, or line hashes) or of a `pagesieve predict`
    output (with --with-lines, and --probs for the shading). With `gold`, the labels are gold and the
    model labels the lines again."""
    from .data import read_pages

    pages = []
    for rec in read_pages(source):
        lines = [l if isinstance(l, str) else "" for l in rec["lines"]]
        if gold:
            pages.append(Page(str(rec.get("id", len(pages))), lines, None, gold=list(rec["labels"])))
        else:
            probs = rec.get("probs") if isinstance(rec.get("probs"), list) else None
            pages.append(Page(str(rec.get("id", len(pages))), lines, list(rec["labels"]),
                              probs if probs and len(probs) == len(lines) else None))
    if not pages:
        raise ValueError(f"{source}: no pages with 'lines' and 'labels' (a `pagesieve predict` output needs "
                         "--with-lines)")
    return pages


def read_inputs(names: list[str], gold: bool = False, renderer: str = "innertext") -> list[Page]:
    """Pages of labeled-pages files, predict outputs, or plain pages (text or HTML files, '-': stdin)."""
    from .predictor import as_lines, html_lines
    from .text import UserError, read_input

    pages = []
    for name in names:
        if is_labeled_file(name):
            pages += labeled_pages(name, gold)
            continue
        if gold:
            raise UserError(f"{name}: --gold needs labeled pages (JSONL with lines and labels)")
        is_html = name.lower().endswith(HTML_SUFFIXES)
        text, _ = read_input(name, html=is_html)
        pages.append(Page(name, html_lines(text, renderer) if is_html else as_lines(text), None))
    return pages


def label(pages: list[Page], predictor) -> None:
    """Fill in the model's labels and probabilities of the pages that have none yet."""
    todo = [p for p in pages if p.labels is None]
    for page, results in zip(todo, predictor.predict_many([p.lines for p in todo])):
        page.labels, page.probs = [None] * len(page.lines), [None] * len(page.lines)
        for r in results:
            page.labels[r.index] = r.label
            page.probs[r.index] = [r.probs[l] for l in LABELS]


# -- the HTML --------------------------------------------------------------------------------
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;display:flex;color:#222}
nav{width:18em;flex:none;height:100vh;overflow:auto;position:sticky;top:0;border-right:1px solid #ddd;padding:.5em}
nav ol{padding-left:2em;margin:0}nav li{margin:.2em 0;overflow-wrap:anywhere}nav small{color:#666}
main{flex:1;padding:0 1em 2em;min-width:0}
table{border-collapse:collapse}td,th{padding:.1em .6em;text-align:right}td:first-child,th:first-child{text-align:left}
.legend span{display:inline-block;margin-right:1em;padding:0 .4em;border-left:6px solid rgb(var(--c));background:rgba(var(--c),.25)}
ol.lines{padding-left:3.5em}
.line{border-left:6px solid rgb(var(--c));margin:1px 0;padding:0 .4em;background:rgba(var(--c),calc(.06 + .4 * var(--p)))}
.line b{float:left;width:10em;white-space:nowrap;font-weight:normal;font-size:12px;color:#444}
.line div{margin-left:10em}
.line i{display:inline-block;height:.5em;width:3em;margin-right:.4em;outline:1px solid rgba(var(--c),.4);
  background:linear-gradient(90deg,rgb(var(--c)) calc(var(--p) * 100%),transparent 0)}
.line q{white-space:pre-wrap;overflow-wrap:anywhere;quotes:none}
.line em{color:#b00;font-style:normal;font-size:12px;margin-left:.6em}
.d{outline:2px solid #d00}
body.only-dis .line:not(.d),body.only-dis .page:not(.has-d),body.only-dis nav li:not(.has-d){display:none}
"""
CSS += "".join(f".l-{l}{{--c:{c}}}" for l, c in COLOURS.items()) + f".l-none{{--c:{UNKNOWN}}}"

SCRIPT = ("document.getElementById('only-d').addEventListener('change',"
          "e=>document.body.classList.toggle('only-dis',e.target.checked));")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _line(i, text, label, prob, gold) -> str:
    cls = f"line l-{label if label in LABELS else 'none'}" + (" d" if disagrees(label, gold) else "")
    p = 1.0 if prob is None else prob
    tag = f"{label or '?'}" + ("" if prob is None else f" {prob:.2f}")
    mark = f"<em>gold: {_e(gold)}</em>" if disagrees(label, gold) else ""
    return (f'<li value="{i + 1}" class="{cls}" data-label="{_e(label or "")}" style="--p:{p:.3f}">'
            f"<b><i></i>{_e(tag)}</b><div><q>{_e(text)}</q>{mark}</div></li>")


def render(pages: list[Page], title: str = "pagesieve report") -> str:
    """The report of pages whose labels are filled in, as one HTML document."""
    with_gold = any(p.gold for p in pages)
    shown, gold_n, agree = ({l: 0 for l in LABELS} for _ in range(3))
    nav, body, total, total_d = [], [], 0, 0
    for n, page in enumerate(pages):
        rows = list(page.rows())
        scored = [(l, g) for _, _, l, _, g in rows if g is not None]
        n_d = sum(disagrees(l, g) for l, g in scored)
        for _, _, l, _, g in rows:
            shown[l or "unknown"] = shown.get(l or "unknown", 0) + 1
            if g is not None:
                gold_n[g] = gold_n.get(g, 0) + 1
                agree[g] = agree.get(g, 0) + (l == g)
        total, total_d = total + len(scored), total_d + n_d
        has_d = ' class="has-d"' if n_d else ""
        stats = f"{len(rows)} lines" + (f", accuracy {1 - n_d / len(scored):.3f}, {n_d} disagreements" if scored else "")
        nav.append(f'<li{has_d}><a href="#p{n}">{_e(page.id)}</a> <small>{_e(stats)}</small></li>')
        body.append(f'<section id="p{n}" class="page{" has-d" if n_d else ""}"><h2>{_e(page.id)}</h2>'
                    f"<p>{_e(stats)}</p><ol class=\"lines\">" + "".join(_line(*r) for r in rows) + "</ol></section>")

    head = ["label", "lines"] + (["gold", "agree (recall)"] if with_gold else [])
    table = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for l in shown:
        cells = [l, shown[l]]
        if with_gold:
            g, a = gold_n.get(l, 0), agree.get(l, 0)
            cells += [g, f"{a} ({a / g:.3f})" if g else "0"]
        table.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    summary = f"{len(pages)} pages, {sum(shown.values())} lines"
    if with_gold:
        summary += f"; against the gold: accuracy {1 - total_d / max(total, 1):.3f}, {total_d} disagreements"
    legend = "".join(f'<span class="l-{l}">{l}</span>' for l in LABELS)
    note = "; red outline: the model disagrees with the gold" if with_gold else ""
    control = ('<label><input type="checkbox" id="only-d"> only disagreements</label>' if with_gold else "")
    script_hash = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}"><title>{_e(title)}</title>'
            f"<style>{CSS}</style></head><body><nav><h3>Pages</h3><ol>{''.join(nav)}</ol></nav><main>"
            f"<h1>{_e(title)}</h1><p id=\"summary\">{_e(summary)}</p><p class=\"legend\">{legend} "
            f"(shade and bar: the probability of the label{note})"
            f"</p><table id=\"counts\">{''.join(table)}</table><p>{control}</p>{''.join(body)}</main>"
            f"<script>{SCRIPT}</script></body></html>")


def write(pages: list[Page], path: str | Path, title: str = "pagesieve report") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(pages, title), encoding="utf-8", errors="replace")  # lone surrogates in JSON text
    return path
