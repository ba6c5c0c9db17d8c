"""A page's text: its lines, and one page read from a file or stdin (what `pagesieve label` and
`pagesieve report` read)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

_NEWLINE = re.compile(r"\r\n|\r|\n")
HTML_SUFFIXES = (".html", ".htm", ".xhtml")  # files of pages that the commands render as HTML, not read as text


def split_lines(text: str) -> list[str]:
    """The lines of a text, split at \\n, \\r\\n and \\r only, so that they align with
    `text.split("\\n")`: str.splitlines() also splits at U+2028, U+2029, \\x85, \\f, \\v and \\x1c-\\x1e,
    which are text inside a line here. A final newline ends the last line (as with splitlines)."""
    lines = _NEWLINE.split(text)
    if lines[-1] == "":
        lines.pop()
    return lines


class UserError(Exception):
    """A problem with the user's input: the commands print it as one line, exit code 2."""


def read_input(name: str, html: bool = False) -> tuple[str, list[str]]:
    """(text, warnings) of a file or '-' (stdin); binary and undecodable input handled. HTML is decoded
    with its charset (byte-order mark, <meta charset>, else detected: `pagesieve.html.decode_html`)."""
    warnings = []
    if name == "-":
        data = sys.stdin.buffer.read()
    else:
        p = Path(name)
        if not p.exists():
            raise UserError(f"{name}: no such file")
        if p.is_dir():
            raise UserError(f"{name}: is a directory (label one page at a time, or use `pagesieve predict`)")
        try:
            data = p.read_bytes()
        except OSError as e:
            raise UserError(f"{name}: cannot read ({e.strerror})") from None
    head = data[:8192]
    if b"\x00" in head and not (head.startswith((b"\xff\xfe", b"\xfe\xff"))):
        raise UserError(f"{name}: looks like a binary file, not text or HTML")
    if html:
        from .html import CharsetError, decode_html_info

        try:
            decoded = decode_html_info(data)
        except CharsetError:
            raise UserError(f"{name}: HTML in an unknown charset (not UTF-8, none declared in a <meta charset>, "
                            "none detected); convert it to UTF-8 first") from None
        if decoded.source == "detected":
            warnings.append(f"{name}: no charset declared and not UTF-8; decoded as {decoded.encoding} (detected)")
        return decoded.text, warnings
    for enc in ("utf-8-sig", "utf-16") if head.startswith((b"\xff\xfe", b"\xfe\xff")) else ("utf-8-sig",):
        try:
            return data.decode(enc), warnings
        except UnicodeDecodeError:
            pass
    warnings.append(f"{name}: not valid UTF-8; decoded with replacement characters (U+FFFD)")
    return data.decode("utf-8", errors="replace"), warnings
