"""The Python API refuses what is not a page (TypeError / ValueError with a clear message) instead of
labeling its repr, its bytes or its characters."""
import numpy as np
import pytest

from pagesieve import Predictor
from pagesieve.predictor import html_lines


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor.from_pretrained(tiny_model_dir, device="cpu")


def texts(results):
    return [r.text for r in results]


@pytest.mark.parametrize("page, message", [
    ([None], "line 0 of the page is NoneType, not str"),
    (["Home", 3], "line 1 of the page is int, not str"),
    ([b"Home"], "line 0 of the page is bytes, not str"),
    (42, "not int"),
    ({"text": "Home"}, "not dict"),
])
def test_predict_refuses_what_is_not_a_page(predictor, page, message):
    with pytest.raises(TypeError, match=message):
        predictor.predict(page)
    with pytest.raises(TypeError, match=message):
        predictor.predict_many([page])
    with pytest.raises(TypeError, match=message):
        predictor.clean(page)


def test_predict_needs_exactly_one_page(predictor):
    with pytest.raises(TypeError, match="takes one page"):
        predictor.predict()
    with pytest.raises(TypeError, match="takes one page"):
        predictor.predict(None)
    with pytest.raises(TypeError, match="not both"):
        predictor.predict("Home", html="<p>Home</p>")
    with pytest.raises(TypeError, match="html must be str or bytes, not list"):
        predictor.predict(html=["<p>Home</p>"])


def test_bytes_are_utf8_text(predictor):
    """Text given as bytes is decoded as UTF-8 (a BOM dropped); bytes that are not UTF-8 are refused,
    not labeled as byte values or replacement characters."""
    text = "Главная\nThe council approved the budget."
    assert texts(predictor.predict(text.encode())) == text.splitlines()
    assert texts(predictor.predict("\ufeff".encode() + text.encode())) == text.splitlines()
    assert texts(predictor.predict_many([text.encode()])[0]) == text.splitlines()
    with pytest.raises(ValueError, match=r"not UTF-8 \(byte 0xe9 at offset 3\)"):
        predictor.predict("Café crème".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        predictor.predict("Главная".encode("cp1251"))


@pytest.mark.parametrize("pages", ["abc", b"abc", None, 3, {"a": "Home"}])
def test_predict_many_refuses_what_is_not_a_list_of_pages(predictor, pages):
    with pytest.raises(TypeError, match="pages must be a list of pages"):
        predictor.predict_many(pages)


def test_line_probs_takes_pages_of_str_lines(predictor):
    """The lower-level API: a str page is its lines, never one line per character."""
    (page, probs), = predictor.line_probs(["Home\nShare"])
    assert page.kept == [0, 1] and probs.shape == (2, len(predictor.labels))
    with pytest.raises(TypeError, match="line 1 of the page is float"):
        predictor.line_probs([["Home", 1.5]])


def test_unknown_renderer_is_an_error_not_an_empty_page(predictor):
    html = "<html><body><p>Body text</p></body></html>"
    for call in (lambda: predictor.predict(html=html, renderer="innerHTML"),
                 lambda: predictor.predict("Body text", renderer="innerHTML"),
                 lambda: html_lines(html, "innerHTML")):
        with pytest.raises(ValueError, match="renderer 'innerHTML': expected one of innertext, textcontent, wet"):
            call()
    assert texts(predictor.predict(html=html, renderer="textcontent")) == ["Body text"]
    assert predictor.predict(html="<html></html>") == []  # an empty document is still an empty page


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "4"])
def test_bad_batch_size(predictor, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        predictor.predict_many(["Home"], batch_size=batch_size)


def test_pages_as_any_sequence_of_str(predictor):
    lines = ["Home", "", "The council approved the budget."]
    want = texts(predictor.predict(lines))
    assert want == ["Home", "The council approved the budget."]
    for page in (tuple(lines), (line for line in lines), np.array(lines)):
        assert texts(predictor.predict(page)) == want
    assert [texts(r) for r in predictor.predict_many(iter(["Home", lines]))] == [["Home"], want]


def test_text_splits_at_newlines_only_as_dumps_do(predictor):
    text = "Lavrov said\u2028on Thursday\nPhoto:\x85AFP\r\nSubscribe\x0c now\n"
    res = predictor.predict(text)
    assert [r.text for r in res] == text.replace("\r\n", "\n").split("\n")[:-1]  # 3 lines, not 6
