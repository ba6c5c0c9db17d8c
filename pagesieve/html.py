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

HTML given as bytes is decoded by `decode_html` (used by every path that reads HTML bytes: WARC
records, `Predictor.predict(html=b"...")`, `pagesieve label page.html`): its charset is the one of the
byte-order mark, else of the HTTP header, else of `<meta charset>` / `<meta http-equiv=Content-Type>` in
the first 4 KB, else UTF-8 when the bytes are UTF-8, else detected (charset-normalizer); bytes that no
charset fits raise CharsetError, never become UTF-8 with replacement characters.
"""
from __future__ import annotations

import codecs
import re
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

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
# lxml.etree, not lxml.html: the same tree without lxml.html's element classes, whose lookup costs a tenth
# of rendering. Deep or huge real pages parse whole. Text is parsed as UTF-8 bytes with that encoding fixed
# (a <meta charset> cannot change it): faster than from the str (benchmarks/render_ab.py), the same trees on all
# 4,943 corpus pages, and a page whose XML declaration lxml refuses in a str (no "?>", or a second one) parses.
_PARSER = etree.HTMLParser(huge_tree=True)
_UTF8_PARSER = etree.HTMLParser(huge_tree=True, encoding="utf-8")
_TEXT = etree.XPath("string()", smart_strings=False)  # an element's text content, as lxml.html's text_content()
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_WS = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_WS_NL = re.compile(r"[ \t\r\f\v\u00a0\u200b\n]+")  # _WS with newlines: one pass where a newline is a space
_TABS = re.compile(r" *\t *")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)


@dataclass
class Line:
    text: str
    sources: list = field(default_factory=list)  # [(element, n_chars)] that made the text

    @property
    def element(self):
        """The element that gave most of the line's characters."""
        return max(self.sources, key=lambda s: s[1])[0] if self.sources else None


# -- bytes -> text: the page's charset ------------------------------------------------------
class CharsetError(ValueError):
    """HTML bytes whose charset cannot be told: none declared that fits them, and not detected."""


class Decoded(NamedTuple):
    text: str
    encoding: str  # the Python codec the bytes were decoded with
    source: str  # where it came from: "bom", "http", "meta", "xml", "utf-8" (undeclared, valid) or "detected"
    replaced: int = 0  # bytes that did not decode and became U+FFFD (a few stray ones at most)


# Labels -> the codec a browser decodes them with (WHATWG Encoding Standard): latin-1 and ASCII are
# windows-1252, Shift_JIS is windows-31j, GB2312/GBK are GB18030, EUC-KR is windows-949, Big5 is
# Big5-HKSCS... Labels Python does not know:
_LABELS = {"x-sjis": "cp932", "windows-31j": "cp932", "csshiftjis": "cp932", "x-gbk": "gb18030",
           "cn-big5": "big5hkscs", "x-x-big5": "big5hkscs", "csbig5": "big5hkscs", "windows-874": "cp874",
           "dos-874": "cp874", "unicode-1-1-utf-8": "utf-8", "unicode11utf8": "utf-8", "unicode20utf8": "utf-8",
           "x-unicode20utf8": "utf-8", "koi8-ru": "koi8-u", "x-mac-roman": "mac-roman", "mac": "mac-roman",
           "x-mac-cyrillic": "mac-cyrillic", "x-mac-ukrainian": "mac-cyrillic", "iso-8859-8-i": "iso8859-8",
           "csiso88598i": "iso8859-8", "logical": "iso8859-8", "visual": "iso8859-8", "x-euc-jp": "euc_jp",
           "ucs-2": "utf-16-le", "unicode": "utf-16-le", "unicodefeff": "utf-16-le", "csunicode": "utf-16-le",
           "iso-10646-ucs-2": "utf-16-le", "unicodefffe": "utf-16-be"}
# ... and Python's codec names -> the web's codec; only these codecs are used (no base64, rot13, utf-7...)
_WEB = {"ascii": "cp1252", "iso8859-1": "cp1252", "iso8859-9": "cp1254", "iso8859-11": "cp874", "tis-620": "cp874",
        "shift_jis": "cp932", "gb2312": "gb18030", "gbk": "gb18030", "euc_kr": "cp949", "big5": "big5hkscs",
        "utf-16": "utf-16-le",
        **{c: c for c in ("utf-8", "utf-16-le", "utf-16-be", "cp866", "iso8859-2", "iso8859-3", "iso8859-4",
                          "iso8859-5", "iso8859-6", "iso8859-7", "iso8859-8", "iso8859-10", "iso8859-13",
                          "iso8859-14", "iso8859-15", "iso8859-16", "koi8-r", "koi8-u", "mac-roman",
                          "mac-cyrillic", "cp874", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255",
                          "cp1256", "cp1257", "cp1258", "gb18030", "big5hkscs", "euc_jp", "iso2022_jp",
                          "cp932", "cp949")}}
# what detection may answer: the encodings of the web (charset-normalizer names them like Python)
_DETECTABLE = sorted({c for c in _WEB.values() if not c.startswith("utf-16")})
_POPULAR = ("cp1252", "cp1251", "gb18030", "cp932", "euc_jp", "cp949", "big5hkscs", "cp1250", "cp1256",
            "cp1254", "cp1253", "cp1255", "cp874", "koi8-r", "iso8859-2", "iso8859-15")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_PRESCAN = 4096  # bytes searched for <meta charset> (the standard says 1024; pages put scripts first)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_META = re.compile(r"<meta(?=[\s/])([^>]*)", re.I)
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]*)))?""")
_CHARSET_IN = re.compile(r"""charset\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s;"']+))""", re.I)
_ISO2022JP = re.compile(rb"\x1b\$[@B]")
_XML_ENCODING = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']+)""", re.I)


def web_codec(label: str | None) -> str | None:
    """The codec a charset label stands for on the web (None for an unknown or unusable label)."""
    if not label:
        return None
    label = label.strip().strip("\"'").strip().lower()
    if label in _LABELS:
        return _LABELS[label]
    try:
        return _WEB.get(codecs.lookup(label).name)
    except (LookupError, ValueError):
        return None


def charset_from_content_type(value: str | None) -> str | None:
    """The charset label of a Content-Type value ("text/html; charset=windows-1251" -> "windows-1251")."""
    m = _CHARSET_IN.search(value or "")
    return next((g for g in m.groups() if g is not None), None) if m else None


def _meta_charset(data: bytes) -> str | None:
    """The first known charset of a `<meta charset>` or `<meta http-equiv=Content-Type content=...>` in
    the first bytes (comments skipped), as the HTML standard's prescan finds it."""
    head = _COMMENT.sub("", data[:_PRESCAN].decode("latin-1"))
    for meta in _META.finditer(head):
        attrs = {}
        for m in _ATTR.finditer(meta.group(1)):
            attrs.setdefault(m.group(1).lower(), next((g for g in m.groups()[1:] if g is not None), ""))
        if "charset" in attrs:
            label = attrs["charset"]
        elif attrs.get("http-equiv", "").strip().lower() == "content-type":
            label = charset_from_content_type(attrs.get("content"))
        else:
            continue
        codec = web_codec(label)
        if codec:
            return "utf-8" if codec.startswith("utf-16") else codec  # a <meta> read as ASCII is not UTF-16
    return None


_COUNT = threading.local()
_ASCII = bytes(range(128))


def _count_errors(e: UnicodeDecodeError):
    _COUNT.n += 1
    return "\ufffd", e.end


# Codec error handlers are global by name: one name per loaded copy of this module, so that another copy (another
# checkout's, as benchmarks/render_ab.py loads) cannot replace this one's handler and counter.
_COUNT_ERRORS = f"pagesieve-count-{id(_COUNT)}"
codecs.register_error(_COUNT_ERRORS, _count_errors)


def _decode(data: bytes, codec: str) -> tuple[str, int]:
    """(text, bytes that did not decode): each bad sequence becomes U+FFFD; a character cut by the end of
    the data (a truncated payload) becomes U+FFFD too but is not counted as an error."""
    _COUNT.n = 0
    decoder = codecs.getincrementaldecoder(codec)(_COUNT_ERRORS)
    text = decoder.decode(data, final=False)
    if decoder.getstate()[0]:
        text += "\ufffd"
    return text, _COUNT.n


def _fits(data: bytes, text: str, errors: int) -> bool:
    """Do the bytes read as text in this codec? No decoding error, or a few stray ones among many
    characters that decode (a UTF-8 page with one windows-1252 byte), never many (a windows-1251 page
    read as UTF-8 fails at almost every letter)."""
    if not errors:
        return True
    return errors <= 1 + len(data.translate(None, _ASCII)) // 100  # (the non-ASCII bytes)


def decode_html_info(data: bytes, http_charset: str | None = None) -> Decoded:
    """Decode HTML bytes: with the charset of the byte-order mark, else of the HTTP header
    (`http_charset`, a label such as "windows-1251": see `charset_from_content_type`), else of the
    first `<meta charset>` / `<meta http-equiv=Content-Type>` (or `<?xml encoding?>`) in the first 4 KB,
    else as UTF-8 when the bytes are UTF-8, else with the charset detected (charset-normalizer, among
    the web's encodings). A declared charset that the bytes do not fit (a server that says UTF-8 for
    a windows-1251 page) gives way to the next one. When nothing fits, the first declared charset with
    U+FFFD for what does not decode; nothing declared and nothing detected raises CharsetError."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            text, errors = _decode(data[len(bom):], codec)
            return Decoded(text, codec, "bom", errors)
    declared = []
    for source, label in (("http", http_charset), ("meta", None), ("xml", None)):
        if source == "meta":
            codec = _meta_charset(data)
        elif source == "xml":
            m = _XML_ENCODING.match(data[:_PRESCAN].decode("latin-1"))
            codec = web_codec(m.group(1)) if m else None
        else:
            codec = web_codec(label)
        if codec and codec not in (c for c, _ in declared):
            text, errors = _decode(data, codec)
            if _fits(data, text, errors):
                return Decoded(text, codec, source, errors)
            declared.append((codec, source))
    if data.isascii():
        if _ISO2022JP.search(data):  # Japanese in 7 bits, with escape sequences
            text, errors = _decode(data, "iso2022_jp")
            if not errors:
                return Decoded(text, "iso2022_jp", "detected")
        return Decoded(data.decode("ascii"), "utf-8", "utf-8")
    text, errors = _decode(data, "utf-8")
    if _fits(data, text, errors):
        return Decoded(text, "utf-8", "utf-8", errors)
    import charset_normalizer

    matches = charset_normalizer.from_bytes(data, cp_isolation=_DETECTABLE)
    best, codec = matches.best(), None
    if best is not None:  # of the equally good guesses, the one most used on the web (latin text in
        # windows-1252 reads the same in windows-1250 until its first à)
        tied = [web_codec(e) for m in matches if m.chaos <= best.chaos and m.coherence >= best.coherence
                for e in m.could_be_from_charset]
        codec = min(filter(None, tied), default=web_codec(best.encoding),
                    key=lambda c: _POPULAR.index(c) if c in _POPULAR else len(_POPULAR))
    if codec:
        text, errors = _decode(data, codec)
        if _fits(data, text, errors):
            return Decoded(text, codec, "detected", errors)
    if declared:
        codec, source = declared[0]
        text, errors = _decode(data, codec)
        return Decoded(text, codec, source, errors)
    raise CharsetError("HTML bytes in an unknown charset (not UTF-8, none declared, none detected); "
                       "decode them and pass the text")


def decode_html(data: bytes, http_charset: str | None = None) -> str:
    """The text of HTML bytes (see `decode_html_info`)."""
    return decode_html_info(data, http_charset).text


def parse(html: str | bytes):
    """Parse HTML leniently; raise ValueError when there is no document to render (CharsetError when
    bytes have no charset that can be told: see `decode_html`)."""
    if isinstance(html, (bytes, bytearray)):
        html = decode_html(bytes(html))
    if not html or not html.strip():
        raise ValueError("empty HTML")
    html = _XML_DECL.sub("", html.replace("\x00", ""), count=1)  # as always (lxml refuses it in a str: the fallback)
    try:
        data, parser = html.encode("utf-8"), _UTF8_PARSER
    except UnicodeEncodeError:  # a lone surrogate: parsed as a str, as before (lxml stops there)
        data, parser = html, _PARSER
    try:
        root = etree.fromstring(data, parser)
    except (etree.ParserError, ValueError) as e:
        raise ValueError(f"HTML does not parse: {e}") from None
    if root is None:  # comments, a doctype or a processing instruction only
        raise ValueError("HTML does not parse: Document is empty")
    return root


def is_hidden(el) -> bool:
    if el.get("hidden") is not None:
        return True
    if el.tag == "input" and (el.get("type") or "").lower() == "hidden":
        return True
    style = el.get("style")
    return bool(style and _HIDDEN_STYLE.search(style))


class _Builder:
    def __init__(self, keep_newlines: bool, sources: bool = True):
        self.lines: list[Line] = []
        self.text: list[str] = []
        self.sources: list = []
        self.keep_newlines = keep_newlines
        self.track = sources  # False: the text only (what html_to_lines and dumps need), faster

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
            self._add(s, el, _WS_NL)

    def _add(self, s: str, el, ws=_WS):
        s = ws.sub(" ", s)
        if s:
            self.text.append(s)
            if self.track and s.strip():
                self.sources.append((el, len(s.strip())))

    def tab(self):
        if self.text and "".join(self.text).strip():
            self.text.append("\t")

    def flush(self):
        if not self.text:  # most blocks end where another just did
            return
        text = "".join(self.text)
        if "\t" in text:
            text = _TABS.sub("\t", text)
        text = text.strip()
        if text:
            self.lines.append(Line(text, self.sources))
        self.text, self.sources = [], []


def check_renderer(style: str):
    if style not in RENDERERS:
        raise ValueError(f"unknown renderer {style!r}: expected one of {', '.join(RENDERERS)}")


def render(html_or_root, style: str = "innertext", sources: bool = True) -> list[Line]:
    """Render HTML (a string, bytes or a parsed lxml root) into non-empty lines; `sources=False` leaves
    each line's `sources` empty (faster, for callers that need the text only)."""
    check_renderer(style)
    root = parse(html_or_root) if isinstance(html_or_root, (str, bytes)) else html_or_root
    textcontent = style == "textcontent"
    b = _Builder(keep_newlines=textcontent, sources=sources)
    if style == "wet":
        title = root.find(".//title")
        title_text = _TEXT(title) if title is not None else ""
        if title_text.strip():
            b.add(title_text, title)
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


def html_title(root) -> str | None:
    """The title of a parsed HTML page: its <title> (not an SVG's), else its og:title; None if it has none."""
    found = root.xpath("//title[not(ancestor::svg)]")
    text = _TEXT(found[0]) if found else ""
    if not text.strip():
        og = root.xpath("//meta[@property='og:title' or @name='og:title']/@content")
        text = og[0] if og else ""
    return " ".join(text.split()) or None


def html_to_lines(html: str | bytes, style: str = "innertext") -> list[str]:
    return [line.text for line in render(html, style, sources=False)]


def try_html_lines(html: str | bytes, style: str = "innertext") -> list[str] | None:
    """The lines of a page, or None when there is no HTML document to render. Bytes whose charset
    cannot be told raise CharsetError (a ValueError)."""
    try:
        return html_to_lines(html, style)
    except CharsetError:
        raise  # bytes, not HTML that is missing: say so
    except ValueError:
        return None
