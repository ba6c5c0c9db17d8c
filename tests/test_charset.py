"""HTML that is not UTF-8 (issue 17, item 2): decoded with its charset, per record: the byte-order
mark, else the HTTP header (WARC `Content-Type`), else `<meta charset>` / `<meta http-equiv>`, else
detection; never as UTF-8 with replacement characters. The same decoding for WARC records,
`Predictor.predict(html=b"...")` and `pagesieve label page.html`. Each test failed on the code before
(which decoded all HTML bytes as UTF-8 with replacement)."""
import io
import json

import pytest

from pagesieve.dump import predict_dump, read_records, render
from pagesieve.html import html_to_lines
from pagesieve.predictor import Predictor

# pages in four legacy charsets: (Python codec, the label a page declares, body text)
PAGES = {
    "windows-1251": ("cp1251", "windows-1251",
                     ["Главная Новости Спорт", "Лавров: конфликт может перерасти в региональный",
                      "Министр заявил в четверг, что переговоры продолжатся на следующей неделе."]),
    "shift_jis": ("shift_jis", "Shift_JIS",
                  ["ホーム ニュース", "東京都は木曜日、新しい交通計画を発表しました。",
                   "市民の生活に大きな影響があると専門家は指摘しています。"]),
    "latin-1": ("latin-1", "iso-8859-1",
                ["Accueil Actualités", "Le café était fermé à côté de la gare.",
                 "Le garçon a dit que la réunion aurait lieu là-bas, près du marché."]),
    "gb18030": ("gb18030", "gb2312",
                ["首页 新闻 体育", "国务院新闻办公室今天举行新闻发布会。", "介绍今年前三季度的经济运行情况。"]),
}


def html_page(lines, meta=""):
    nav, h1, p = lines
    return (f"<!doctype html><html><head>{meta}<title>t</title></head><body><nav>{nav}</nav>"
            f"<h1>{h1}</h1><p>{p}</p></body></html>")


def meta_charset(label):
    return f'<meta charset="{label}">'


def meta_http_equiv(label):
    return f'<meta http-equiv="Content-Type" content="text/html; charset={label}">'


# -- html.py: one decode function --------------------------------------------------------------
@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("declared", ["meta", "http-equiv", "none"])
def test_html_bytes_in_legacy_charsets_render_right(name, declared):
    codec, label, lines = PAGES[name]
    meta = {"meta": meta_charset(label), "http-equiv": meta_http_equiv(label), "none": ""}[declared]
    data = html_page(lines, meta).encode(codec)
    got = html_to_lines(data)
    assert got == lines
    assert not any("\ufffd" in l for l in got)


def test_precedence_bom_http_meta_detection():
    from pagesieve.html import decode_html_info

    text = "<p>Министр заявил в четверг</p>"
    # the HTTP header beats the <meta> (both fit the bytes: koi8-r read as windows-1251 is still letters)
    data = ('<meta charset="windows-1251">' + text).encode("koi8-r")
    d = decode_html_info(data, "koi8-r")
    assert (d.encoding, d.source) == ("koi8-r", "http") and text in d.text
    assert decode_html_info(data).source == "meta" and text not in decode_html_info(data).text
    # a byte-order mark beats the header and the <meta> (WHATWG: it cannot be there by chance)
    data = ("\ufeff" + '<meta charset="windows-1251">' + text).encode("utf-8")
    d = decode_html_info(data, "windows-1251")
    assert (d.encoding, d.source) == ("utf-8", "bom") and d.text == '<meta charset="windows-1251">' + text
    data = codecs_bom_utf16(text)
    assert decode_html_info(data, "windows-1251").text == text
    # the <meta> beats detection: "Größe" in Mac Roman is detected as windows-1252 ("Grš§e")
    data = ("<meta http-equiv=content-type content='text/html;charset=macintosh'><p>Größe</p>").encode("mac-roman")
    d = decode_html_info(data)
    assert (d.encoding, d.source) == ("mac-roman", "meta") and "Größe" in d.text
    # first <meta> that names a known charset; one inside a comment does not count
    data = ('<!-- <meta charset="koi8-r"> --><meta name="x" content="charset=koi8-r"><meta charset="nonsense">'
            '<meta charset="windows-1251">' + text).encode("cp1251")
    assert decode_html_info(data).source == "meta" and text in decode_html_info(data).text
    # the <?xml encoding?> of an XHTML page, when no <meta> says otherwise
    data = ('<?xml version="1.0" encoding="windows-1251"?><html><body>' + text).encode("cp1251")
    assert decode_html_info(data).source == "xml" and text in decode_html_info(data).text


def codecs_bom_utf16(text):
    import codecs

    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


def test_a_declared_charset_that_does_not_fit_gives_way():
    from pagesieve.html import decode_html_info

    text = "<p>Министр заявил в четверг, что переговоры продолжатся.</p>"
    # a server that says UTF-8 for a windows-1251 page: the <meta>, else detection
    d = decode_html_info(('<meta charset="windows-1251">' + text).encode("cp1251"), "utf-8")
    assert d.source == "meta" and text in d.text
    d = decode_html_info(text.encode("cp1251"), "utf-8")
    assert (d.encoding, d.source) == ("cp1251", "detected") and d.text == text
    # an unknown or unusable label is no declaration (base64 is a Python codec, not a charset)
    for label in ("nonsense", "base64", "x-user-defined", ""):
        assert decode_html_info(text.encode("cp1251"), label).text == text


def test_utf8_with_a_stray_byte_or_cut_at_the_end_stays_utf8():
    from pagesieve.html import decode_html_info

    text = "<p>" + "Министр заявил в четверг. " * 10 + "</p>"
    d = decode_html_info(text.encode() + b" \x92 ok", "utf-8")  # one windows-1252 quote in a UTF-8 page
    assert (d.encoding, d.source, d.replaced) == ("utf-8", "http", 1) and text in d.text
    d = decode_html_info(text.encode() + b" \x92 ok")
    assert (d.encoding, d.source) == ("utf-8", "utf-8") and text in d.text
    d = decode_html_info(text.encode() + "ё".encode()[:1])  # a payload cut inside its last character
    assert (d.encoding, d.replaced) == ("utf-8", 0) and d.text == text + "\ufffd"


def junk(seed, n=3000):
    """Bytes that are text in no charset (binary data served as text/html)."""
    import random

    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n))


def test_bytes_no_charset_fits_raise_a_clear_error():
    from pagesieve.html import CharsetError, decode_html, try_html_lines

    data = junk(0)
    with pytest.raises(CharsetError, match="charset"):
        decode_html(data)
    with pytest.raises(ValueError, match="charset"):  # not "no document": an empty page would hide it
        try_html_lines(data)
    assert try_html_lines(b"   ") is None  # no document is still None
    assert decode_html(b"") == ""


def test_labels_python_and_browsers_disagree_on():
    from pagesieve.html import decode_html_info, web_codec

    # browsers read latin-1 as windows-1252, Shift_JIS as windows-31j, GB2312/GBK as GB18030, EUC-KR as 949
    assert [web_codec(l) for l in ("ISO-8859-1", "us-ascii", "Shift_JIS", "gbk", "GB2312", "euc-kr", "big5",
                                   " 'windows-1251' ", "x-sjis", "utf8", "bogus", None)] == [
        "cp1252", "cp1252", "cp932", "gb18030", "gb18030", "cp949", "big5hkscs", "cp1251", "cp932", "utf-8", None, None]
    text = "<p>“Quoted” – €5</p>"  # windows-1252 characters a strict latin-1 does not have
    assert decode_html_info(text.encode("cp1252"), "iso-8859-1").text == text
    text = "<p>①番の出口 ～ 髙橋</p>"  # windows-31j characters that strict Shift_JIS lacks
    assert decode_html_info(text.encode("cp932"), "shift_jis").text == text


# -- dumps: WARC records, binary HTML columns ----------------------------------------------------
def write_warc(path, bodies):
    """A WARC of response records: (payload bytes, Content-Type header)."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        for i, (body, ctype) in enumerate(bodies):
            http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(f"https://ex.com/{i}", "response", payload=io.BytesIO(body),
                                                http_headers=http))


def rendered(path, **kw):
    return [render(r, "innertext") for r in read_records(str(path), **kw)]


def test_warc_records_decoded_per_record_by_header_meta_or_detection(tmp_path):
    bodies, expected = [], []
    for name, (codec, label, lines) in PAGES.items():
        bodies.append((html_page(lines).encode(codec), f"text/html; charset={label}"))  # header only
        bodies.append((html_page(lines, meta_charset(label)).encode(codec), "text/html"))  # <meta> only
        bodies.append((html_page(lines).encode(codec), "text/html"))  # nothing declared: detected
        bodies.append((html_page(lines, meta_http_equiv(label)).encode(codec), "text/html; charset=utf-8"))  # lying header
        expected += [lines] * 4
    # the header beats the <meta>: koi8-r bytes that a windows-1251 <meta> would turn into other letters
    ru = PAGES["windows-1251"][2]
    bodies.append((html_page(ru, meta_charset("windows-1251")).encode("koi8-r"), "text/html; charset=KOI8-R"))
    expected.append(ru)
    src = tmp_path / "crawl.warc.gz"
    write_warc(src, bodies)
    recs = rendered(src)
    assert [r.error for r in recs] == [None] * len(expected)
    assert [r.lines for r in recs] == expected


def test_warc_html_in_no_charset_is_an_error_record_not_garbage(tmp_path):
    src = tmp_path / "crawl.warc.gz"
    write_warc(src, [(junk(1), "text/html"), (html_page(PAGES["latin-1"][2]).encode("latin-1"), "text/html")])
    recs = rendered(src)
    assert recs[0].error.startswith("bad encoding") and recs[0].lines is None
    assert recs[1].error is None and recs[1].lines == PAGES["latin-1"][2]


def test_parquet_binary_html_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    codec, label, lines = PAGES["shift_jis"]
    rows = [{"id": "a", "html": html_page(lines).encode(codec)}, {"id": "b", "html": html_page(lines).encode()}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pages.parquet")
    recs = rendered(tmp_path / "pages.parquet")
    assert [(r.id, r.error, r.lines) for r in recs] == [("a", None, lines), ("b", None, lines)]


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="torch")


def test_predict_dump_warc_lines_are_the_page_text(predictor, tmp_path):
    bodies = [(html_page(lines).encode(codec), f"text/html; charset={label}") for codec, label, lines in PAGES.values()]
    src = tmp_path / "crawl.warc.gz"
    write_warc(src, bodies)
    out = tmp_path / "out.jsonl"
    s = predict_dump([str(src)], str(out), predictor=predictor, with_lines=True, workers=0, progress=False)
    rows = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert s["errors"] == {} and [r["lines"] for r in rows] == [lines for _, _, lines in PAGES.values()]


# -- the API and the CLI ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAGES)
def test_predict_html_bytes(predictor, name):
    codec, label, lines = PAGES[name]
    for meta in ("", meta_charset(label)):
        data = html_page(lines, meta).encode(codec)
        assert [r.text for r in predictor.predict(html=data)] == lines
    assert [r.text for r in predictor.predict(html=html_page(lines).encode("utf-8"))] == lines


def test_predict_html_bytes_in_no_charset_raises(predictor):
    with pytest.raises(ValueError, match="charset"):
        predictor.predict(html=junk(2))


@pytest.mark.parametrize("name", PAGES)
def test_label_command_decodes_html_files(tiny_model_dir, tmp_path, capsys, name):
    from pagesieve.cli import main as cli_main

    codec, label, lines = PAGES[name]
    m = ["--model", str(tiny_model_dir), "--keep", "content,caption,navigation,ui_chrome"]
    page = tmp_path / "page.html"
    page.write_bytes(html_page(lines, meta_charset(label)).encode(codec))
    assert cli_main(["label", str(page), *m]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == lines and "replacement" not in out.err
    page.write_bytes(html_page(lines).encode(codec))  # nothing declared: detected, and said so
    assert cli_main(["label", str(page), *m]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == lines and "detected" in out.err
