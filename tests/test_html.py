"""The three renderers on small hand-written pages."""
import pytest

from pagesieve.html import html_to_lines, parse, render

PAGE = """<!doctype html><html lang="ru"><head><title>Новости дня</title><style>p{color:red}</style>
<script>var hidden = "script text";</script></head><body>
<nav><a href="/">Главная</a> <a href="/world">В мире</a></nav>
<h1>Лавров: конфликт может перерасти в региональный</h1>
<figure><img src="a.jpg" alt="Дым над Рафахом"><figcaption><span class="credit">© AFP 2023 / SAID KHATIB</span>Дым над Рафахом 16 октября.</figcaption></figure>
<p>Конфликт может перерасти в региональный, заявил министр &laquo;в четверг&raquo;.<br>Вторая строка абзаца.</p>
<!-- a comment -->
<table><tr><td>Ячейка 1</td><td>Ячейка 2</td></tr></table>
<div class="modal" style="display:none"><div class="modal__title">Заголовок открываемого материала</div></div>
<button>Подписаться</button>
</body></html>"""


def test_innertext_like_a_browser():
    lines = html_to_lines(PAGE, "innertext")
    assert lines[0] == "Главная В мире"
    assert "Лавров: конфликт может перерасти в региональный" in lines
    assert "Конфликт может перерасти в региональный, заявил министр «в четверг»." in lines  # entities decoded
    assert "Вторая строка абзаца." in lines  # <br> breaks
    assert "Ячейка 1\tЯчейка 2" in lines
    assert not any("Заголовок открываемого материала" in l for l in lines)  # display:none dropped
    assert not any("script text" in l or "color:red" in l or "comment" in l for l in lines)
    assert "Новости дня" not in lines  # the <title> is not body text
    assert lines[-1] == "Подписаться"


def test_textcontent_keeps_hidden_and_glues_credit_to_caption():
    lines = html_to_lines(PAGE, "textcontent")
    assert any("© AFP 2023 / SAID KHATIBДым над Рафахом 16 октября." in l for l in lines)
    assert any("Заголовок открываемого материала" in l for l in lines)
    assert not any("script text" in l for l in lines)


def test_wet_has_title_hidden_text_and_cells_on_own_lines():
    lines = html_to_lines(PAGE, "wet")
    assert lines[0] == "Новости дня"
    assert "Заголовок открываемого материала" in lines
    assert "Ячейка 1" in lines and "Ячейка 2" in lines


def test_lines_remember_their_elements():
    lines = render(PAGE, "innertext")
    cap = next(l for l in lines if "Рафахом 16" in l.text)
    assert cap.element.tag in ("figcaption", "span")
    assert any(el.tag == "span" and "credit" in el.get("class") for el, _ in cap.sources)


@pytest.mark.parametrize("style", ["innertext", "textcontent", "wet"])
def test_text_only_rendering_is_the_same_text(style):
    full, bare = render(PAGE, style), render(PAGE, style, sources=False)
    assert [l.text for l in bare] == [l.text for l in full] == html_to_lines(PAGE, style)
    assert all(l.sources for l in full) and not any(l.sources for l in bare)


@pytest.mark.parametrize("bad", ["", "   ", b"", None])
def test_empty_html_is_rejected(bad):
    with pytest.raises((ValueError, TypeError)):
        parse(bad)


def test_non_html_text_and_broken_markup_render():
    assert html_to_lines("just some text, no markup") == ["just some text, no markup"]
    assert html_to_lines("<div><p>unclosed <b>bold<div>next") == ["unclosed bold", "next"]
    assert html_to_lines(b"<p>caf\xc3\xa9</p>") == ["café"]


def test_deeply_nested_page_does_not_recurse():
    html = "<div>" * 1000 + "deep" + "</div>" * 1000
    assert html_to_lines(html) == ["deep"]


def test_xml_declaration_with_encoding_parses():
    html = '<?xml version="1.0" encoding="utf-8"?>\n<html><body><p>Texte accentué</p></body></html>'
    assert html_to_lines(html) == ["Texte accentué"]


@pytest.mark.parametrize("charset", ["windows-1251", "gb2312", "iso-8859-1", "shift_jis"])
def test_decoded_text_ignores_its_declared_charset(charset):
    # a str is already text: the parser reads it as such, whatever its <meta> says (it reaches lxml as UTF-8)
    html = (f'<html><head><meta charset="{charset}"><meta http-equiv="Content-Type" content="text/html; '
            f'charset={charset}"></head><body><p>Привет, мир — 你好 😀</p><p>ça</p></body></html>')
    assert html_to_lines(html) == ["Привет, мир — 你好 😀", "ça"]


def test_lone_surrogate_still_parses_as_before():
    assert html_to_lines("<html><body><p>before</p><p>a\ud800b</p></body></html>") == ["before", "a"]  # lxml stops there


@pytest.mark.parametrize("declaration", ['<?xml version="1.0" encoding="utf-8">',  # no "?>"
                                         '<?xml version="1.0"?><?xml version="1.0" encoding="utf-8"?>'])
def test_xml_declaration_that_lxml_refuses_in_a_str_parses(declaration):
    assert html_to_lines(declaration + "<html><body><p>Texte accentué</p></body></html>") == ["Texte accentué"]
