"""Weak labeling rules: ground truth first, then the DOM, then the lexicon; unknown when no evidence."""
from pagesieve.data import lexicon
from pagesieve.data.weak import label_lines
from pagesieve.html import render

from test_html import PAGE


def labels_by_text(html, record, style="innertext"):
    lines = render(html, style)
    return {l.text: lab for l, lab in zip(lines, label_lines(lines, record))}


def test_ground_truth_then_dom_then_lexicon():
    rec = {"main_text": "Лавров: конфликт может перерасти в региональный\n"
                        "Конфликт может перерасти в региональный, заявил министр «в четверг».\nВторая строка абзаца.",
           "captions": ["Дым над Рафахом 16 октября."]}
    got = labels_by_text(PAGE, rec)
    assert got["Лавров: конфликт может перерасти в региональный"] == ("content", "gt:main_text")
    assert got["Вторая строка абзаца."][0] == "content"
    assert got["Главная В мире"][0] == "navigation"  # <nav>
    assert got["Подписаться"][0] == "ui_chrome"  # lexicon (and <button>)
    cap = next(v for k, v in got.items() if "Рафахом 16" in k)
    assert cap[0] == "caption"


def test_hidden_modal_title_and_glued_credit_in_textcontent():
    rec = {"main_text": "Конфликт может перерасти в региональный, заявил министр «в четверг»."}
    got = labels_by_text(PAGE, rec, "textcontent")
    modal = next(v for k, v in got.items() if "Заголовок открываемого материала" in k)
    assert modal[0] == "ui_chrome" and modal[1].startswith("dom:")  # class="modal"
    glued = next(v for k, v in got.items() if "SAID KHATIBДым" in k)
    assert glued[0] == "caption"  # figcaption / credit class


def test_no_evidence_means_unknown():
    html = "<html><body><div>Some words with no telling markup at all here</div></body></html>"
    assert labels_by_text(html, {})["Some words with no telling markup at all here"] == (None, "none")


def test_without_snippets_are_not_content():
    html = "<html><body><p>Sponsored story about something else entirely</p></body></html>"
    got = labels_by_text(html, {"without": ["Sponsored story about something else"]})
    assert got["Sponsored story about something else entirely"][0] != "content"


def test_lexicon_many_languages():
    for text in ["Subscribe", "Abonnieren", "S'abonner", "Suscribirse", "Подписаться", "اشترك", "订阅", "購読",
                 "구독", "Abone ol", "Zaloguj się", "Войти", "ログイン", "Teilen", "分享", "Compartilhar"]:
        assert lexicon.lookup(text)[0] == "ui_chrome", text
    for text in ["Read more", "Weiterlesen", "Lire la suite", "Читать далее", "阅读更多", "続きを読む", "اقرأ المزيد",
                 "» Next", "Startseite", "Datenschutz"]:
        assert lexicon.lookup(text)[0] == "navigation", text
    assert lexicon.lookup("12")[0] == "ui_chrome"  # numbers alone
    assert lexicon.lookup("The council approved the budget on Tuesday.") is None
