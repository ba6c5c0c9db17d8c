"""Weak line labels for a rendered page, from evidence in this order of trust:

1. the corpus's ground truth: main text -> content; caption/credit strings -> caption;
   `without` snippets -> not content; `with` snippets and the title -> content;
2. the DOM the line came from (nearest ancestor first): figcaption/figure/caption|credit
   classes -> caption; button/form/label/dialog/aria-hidden/share|social|subscribe|login|
   cookie|consent|comment|ad|banner|modal|loader|counter classes and copyright lines ->
   ui_chrome; nav/header/footer/menu/breadcrumb/related|teaser|tags|more classes, and text
   that is wholly a link -> navigation;
3. the multilingual lexicon of UI strings (`lexicon.py`).

A line with no evidence gets the label None ("unknown"): training ignores it rather than
guessing. Each line keeps its evidence (e.g. "gt:main_text", "dom:nav", "lex:share").
"""
from __future__ import annotations

import re
import unicodedata

from . import lexicon

_CAPTION = re.compile(r"caption|credit|figcap|bildunterschrift|legende|légende|photo-?info|img-?desc", re.I)
_UI = re.compile(r"share|social|subscri|(^|[-_ ])log-?in|signin|sign-in|register|cookie|consent|gdpr|comment|"
                 r"(^|[-_ ])ads?([-_ ]|$)|advert|modal|popup|(^|[-_ ])loader|spinner|counter|newsletter|paywall|"
                 r"(^|[-_ ])btn|button|icon|tooltip|rating|vote|widget-weather|poll", re.I)
# class names that also dress links: a line wholly inside a link there is navigation
_UI_WEAK = re.compile(r"btn|button|icon|share|social", re.I)
_DATE = re.compile(r"^[\d\s.,:/\-–·|]+$|^\W*\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")
_NAV = re.compile(r"(^|[-_ ])nav|menu|breadcrumb|related|teaser|(^|[-_ ])tags?([-_ ]|$)|tag-?list|tagcloud|"
                  r"read-?more|more-?(news|stories|articles)|recommend|popular|most-?read|trending|sidebar|"
                  r"pagination|pager|footer|header|topbar|masthead|logo|sitemap|toc|(^|[-_ ])list-?item", re.I)
_COPYRIGHT = re.compile(r"^\s*(©|\(c\)|copyright|版权|著作権)", re.I)
_UI_TAGS = {"button", "form", "label", "input", "textarea", "select", "option", "dialog"}
_NAV_TAGS = {"nav", "header", "footer", "menu"}


def norm(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).casefold()
    return re.sub(r"\s+", " ", re.sub(r"[\u200b\u00ad]", "", s)).strip()


class Evidence:
    """Ground truth of one corpus record, prepared for fast matching."""

    def __init__(self, record: dict):
        main = record.get("main_text") or ""
        self.main_lines = {norm(l) for l in main.splitlines() if l.strip()}
        self.main_lines |= {norm(re.sub(r"^-\s+", "", l)) for l in main.splitlines() if l.strip()}  # WCXB list dashes
        self.main = " \n ".join(sorted(self.main_lines))
        self.has_main = bool(self.main_lines)
        self.captions = [norm(c) for c in (record.get("captions") or []) if c and len(c.strip()) > 3]
        self.without = [norm(s) for s in (record.get("without") or []) if s and len(s.strip()) > 3]
        self.with_ = [norm(s) for s in (record.get("with") or []) if s and len(s.strip()) > 3]
        title = record.get("title") or ""
        self.title = norm(title) if title else ""

    def label(self, text: str) -> tuple[str | None, str] | None:
        t = norm(text)
        if not t:
            return None
        for c in self.captions:
            if t == c or (len(t) >= 20 and (t in c or c in t)):
                return "caption", "gt:caption"
        if any(s in t or (len(t) >= 20 and t in s) for s in self.without):
            return "notcontent", "gt:without"
        if self.title and t == self.title:
            return "content", "gt:title"
        if t in self.main_lines or (len(t) >= 40 and t in self.main):
            return "content", "gt:main_text"
        if any(s in t or (len(t) >= 30 and t in s) for s in self.with_):
            return "content", "gt:with"
        if self.has_main:
            return "notcontent", "gt:not_in_main_text"
        return None


def _classes(el) -> str:
    return f"{el.get('class') or ''} {el.get('id') or ''} {el.get('role') or ''}"


def dom_label(line) -> tuple[str | None, str] | None:
    """Label from the elements the line came from: nearest matching ancestor wins; a "©" line
    is a legal notice (ui_chrome) unless it sits in a caption (then it is a photo credit)."""
    found = _ancestor_label(line.element)  # (label, evidence, also dresses links) or None
    if found and found[0] == "caption":
        # teaser headlines inside <figcaption> are links: navigation (measured on gold train pages)
        return ("navigation", found[1] + "+link") if link_share(line) > 0.9 else found[:2]
    if _COPYRIGHT.search(line.text):
        return "ui_chrome", "dom:copyright"
    if found and found[0] == "ui_chrome":
        if found[2] and link_share(line) > 0.9:
            return None, found[1] + "+link"  # a link dressed as a button: nav or ui about equally often
        if "comment" in found[1] and len(line.text.split()) >= 12:
            return None, found[1] + "+long"  # a comment's text is content, its widget ui_chrome: don't guess
    return found[:2] if found else None


def _ancestor_label(el) -> tuple[str, str, bool] | None:
    depth = 0
    while el is not None and depth < 12:
        tag = el.tag if isinstance(el.tag, str) else ""
        cls = _classes(el)
        if tag in ("figcaption", "figure") or _CAPTION.search(cls):
            return "caption", f"dom:{tag or 'el'}.caption", False
        m = _UI.search(cls)
        if tag in _UI_TAGS or m:
            rule = "comment" if m and "comment" in m.group(0).lower() else "ui"
            weak = tag in ("button", "label") or bool(m and _UI_WEAK.search(m.group(0)))
            return "ui_chrome", f"dom:{tag}.{rule}", weak
        if tag in _NAV_TAGS or el.get("role") == "navigation" or _NAV.search(cls):
            return "navigation", f"dom:{tag}.nav", False
        if tag in ("article", "main", "body"):
            return None
        el = el.getparent()
        depth += 1
    return None


def link_share(line) -> float:
    """Share of the line's characters that sit inside <a> elements."""
    total = inside = 0
    for el, n in line.sources:
        total += n
        e, depth = el, 0
        while e is not None and depth < 6:
            if e.tag == "a":
                inside += n
                break
            e = e.getparent()
            depth += 1
    return inside / total if total else 0.0


def label_lines(lines, record: dict) -> list[tuple[str | None, str]]:
    """(label or None, evidence) for each rendered line of one corpus record."""
    ev = Evidence(record)
    out = []
    for line in lines:
        gt = ev.label(line.text)
        if gt and gt[0] != "notcontent":
            out.append(gt)
            continue
        lex = lexicon.lookup(line.text)
        if lex and lex[1] == "symbols" and _DATE.search(line.text.strip()):
            lex = None  # dates alone: the piece's dateline or a teaser's, can't tell here
        if lex:
            out.append((lex[0], f"lex:{lex[1]}"))
            continue
        dom = dom_label(line)
        if dom:
            out.append(dom)
            continue
        if link_share(line) > 0.9:
            out.append(("navigation", "dom:link"))
            continue
        out.append((None, gt[1] if gt else "none"))
    return out
