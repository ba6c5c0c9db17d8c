"""HTML -> lines, the way scrapers render pages. Each line remembers the elements its text
came from, so the data pipeline can explain a label by the DOM.

Renderers (`RENDERERS`):
- "innertext": like a browser's `innerText` without CSS: block elements break lines, inline
  elements join as the source spaces them, table cells are tab-separated, `<br>` breaks,
  hidden elements (`hidden`, `display:none`, `visibility:hidden`, `<input type=hidden>`) are
  dropped.
- "textcontent": like `textContent` / `get_text()` with no separator: every text node in
  source order, hidden ones too, lines broken only where the source text has newlines, so
  adjacent blocks glue ("© AFP 2023 / SAID KHATIBSmoke billows...").
- "wet": like Common Crawl WET text: the `<title>` first, then block-broken text with
  hidden elements kept and table cells on lines of their own.

Scripts, styles, comments, `<template>`, `<noscript>`, SVG and the `<head>` are dropped by
all three; entities are decoded by the parser.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import lxml.html
from lxml import etree

RENDERERS = ("innertext", "textcontent", "wet")

SKIP = {"script", "style", "noscript", "template", "head", "svg", "math", "iframe", "object", "canvas",
        "select", "datalist"}
BLOCK = {"address", "article", "aside", "blockquote", "body", "center", "dd", "details", "dialog", "dir",
         "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
         "h5", "h6", "header", "hgroup", "hr", "html", "legend", "li", "main", "menu", "nav", "ol", "p",
         "pre", "section", "summary", "table", "tbody", "thead", "tfoot", "tr", "ul", "caption", "option",
         "picture", "video", "audio"}
CELLS = {"td", "th"}
_PARSER = lxml.html.HTMLParser(huge_tree=True)  # deep or huge real pages parse whole
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_WS = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


@dataclass
class Line:
    text: str
    sources: list = field(default_factory=list)  # [(element, n_chars)] that made the text

    @property
    def element(self):
        """The element that gave most of the line's characters."""
        return max(self.sources, key=lambda s: s[1])[0] if self.sources else None


def parse(html: str | bytes):
    """Parse HTML leniently; raise ValueError when there is no document to render."""
    if isinstance(html, bytes):
        html = html.decode("utf-8", errors="replace")
    if not html or not html.strip():
        raise ValueError("empty HTML")
    html = _XML_DECL.sub("", html.replace("\x00", ""), count=1)  # lxml refuses str input that declares an encoding
    try:
        root = lxml.html.document_fromstring(html, parser=_PARSER)
    except (etree.ParserError, ValueError) as e:
        raise ValueError(f"HTML does not parse: {e}") from None
    if root is None:
        raise ValueError("HTML does not parse")
    return root


def is_hidden(el) -> bool:
    if el.get("hidden") is not None:
        return True
    if el.tag == "input" and (el.get("type") or "").lower() == "hidden":
        return True
    style = el.get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


class _Builder:
    def __init__(self, keep_newlines: bool):
        self.lines: list[Line] = []
        self.text: list[str] = []
        self.sources: list = []
        self.keep_newlines = keep_newlines

    def add(self, s: str | None, el):
        if not s:
            return
        if self.keep_newlines:
            parts = s.split("\n")
            for k, part in enumerate(parts):
                if k:
                    self.flush()
                self._add(part, el)
        else:
            self._add(s.replace("\n", " "), el)

    def _add(self, s: str, el):
        s = _WS.sub(" ", s)
        if s:
            self.text.append(s)
            if s.strip():
                self.sources.append((el, len(s.strip())))

    def tab(self):
        if self.text and "".join(self.text).strip():
            self.text.append("\t")

    def flush(self):
        text = "".join(self.text)
        text = re.sub(r" *\t *", "\t", text).strip()
        if text:
            self.lines.append(Line(text, self.sources))
        self.text, self.sources = [], []


def render(html_or_root, style: str = "innertext") -> list[Line]:
    """Render HTML (a string, bytes or a parsed lxml root) into non-empty lines."""
    if style not in RENDERERS:
        raise ValueError(f"unknown renderer {style!r}: expected one of {', '.join(RENDERERS)}")
    root = parse(html_or_root) if isinstance(html_or_root, (str, bytes)) else html_or_root
    textcontent = style == "textcontent"
    b = _Builder(keep_newlines=textcontent)
    if style == "wet":
        title = root.find(".//title")
        if title is not None and title.text_content().strip():
            b.add(title.text_content(), title)
            b.flush()
    body = root.find("body")
    start = body if body is not None else root
    walker = etree.iterwalk(start, events=("start", "end", "comment", "pi"))
    skipped = set()
    for event, el in walker:
        tag = el.tag if isinstance(el.tag, str) else None
        if event in ("comment", "pi"):  # one event only: render the tail now
            b.add(el.tail, el.getparent())
        elif event == "start":
            if tag is None or tag in SKIP or (style == "innertext" and is_hidden(el)):
                walker.skip_subtree()  # its "end" event still comes, and renders the tail
                skipped.add(el)
                continue
            if not textcontent:
                if tag in BLOCK:
                    b.flush()
                elif tag in CELLS:
                    if style == "wet":
                        b.flush()
                    else:
                        b.tab()
                elif tag == "br":
                    b.flush()
            if textcontent and tag == "br":
                b.add("\n", el)
            b.add(el.text, el)
        else:
            if el in skipped:
                skipped.discard(el)
            elif not textcontent and (tag in BLOCK or (style == "wet" and tag in CELLS)):
                b.flush()
            b.add(el.tail, el.getparent())
    b.flush()
    return b.lines


def html_to_lines(html: str | bytes, style: str = "innertext") -> list[str]:
    return [line.text for line in render(html, style)]


def try_html_lines(html: str | bytes, style: str = "innertext") -> list[str] | None:
    """The lines of a page, or None when there is no HTML document to render."""
    try:
        return html_to_lines(html, style)
    except ValueError:
        return None
