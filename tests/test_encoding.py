"""Page -> windows -> one prediction per non-blank line, in order, whatever the page looks like."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagesieve.encoding import CHARS_PER_TOKEN_CAP, PageEncoder, merge_window_probs
from pagesieve.labels import IGNORE

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def encoder(tokenizer):
    return PageEncoder(tokenizer, max_length=64, line_token_budget=8, overlap=16)


def check_page(encoder, lines):
    page = encoder.encode(lines)
    kept = [i for i, l in enumerate(lines) if l.strip()]
    assert page.kept == kept
    for w in page.windows:
        assert len(w.input_ids) <= encoder.max_length
        assert len(w.input_ids) == len(w.token_type_ids)
        assert w.input_ids[0] == encoder.bos and w.input_ids[-1] == encoder.eos
        assert w.line_ids == sorted(w.line_ids)
        assert all(0 < p < len(w.input_ids) - 1 for p in w.label_positions)
    seen = sorted({l for w in page.windows for l in w.line_ids})
    assert seen == kept  # every non-blank line is in some window, blank ones in none
    # merging gives exactly one prediction per kept line, in page order
    probs = [np.tile(np.array(w.line_ids, dtype=np.float32)[:, None], (1, 4)) for w in page.windows]
    merged = merge_window_probs(page, probs, 4)
    assert merged.shape == (len(kept), 4)
    assert merged[:, 0].tolist() == [float(i) for i in kept]
    return page


line_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(line_text, max_size=40))
def test_any_page(encoder, lines):
    lines = [l.replace("\n", " ").replace("\r", " ") for l in lines]
    check_page(encoder, lines)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["首页 | 新闻中心", "Заголовок открываемого материала", "😀😀 ok", "   ", "",
                                 "مرحبا بالعالم", "“Quoted” line", "\t", "a" * 300]), max_size=60))
def test_mixed_scripts_and_blank_lines(encoder, lines):
    check_page(encoder, lines)


def test_edge_sizes(encoder):
    assert check_page(encoder, []).windows == []
    assert len(check_page(encoder, ["one line"]).windows) == 1
    page = check_page(encoder, [f"line number {i} of a long page" for i in range(10_000)])
    assert len(page.windows) > 100
    check_page(encoder, ["x" * 200_000])  # a single 200 kB line
    check_page(encoder, ["", "   ", "\u200b", "\x00", "real line"])


def test_labels_sit_on_first_token_and_bare_space_is_dropped(encoder, tokenizer):
    page = encoder.encode(["首页", "Hello world"], labels=[2, 0])
    w = page.windows[0]
    arr = w.label_array()
    assert [i for i, x in enumerate(arr) if x != IGNORE] == w.label_positions
    assert tokenizer.convert_ids_to_tokens([w.input_ids[w.label_positions[0]]]) == ["首页"]
    assert w.token_type_ids[w.label_positions[0]] != w.token_type_ids[w.label_positions[1]]


def test_windows_overlap_and_most_central_window_wins(encoder):
    lines = [f"line {i} with a few words" for i in range(60)]
    page = encoder.encode(lines)
    assert len(page.windows) >= 3
    for a, b in zip(page.windows, page.windows[1:]):
        assert set(a.line_ids) & set(b.line_ids), "consecutive windows must share lines"
    # a line in two windows takes the probabilities of the one where it is farther from an edge
    line = sorted(set(page.windows[0].line_ids) & set(page.windows[1].line_ids))[0]
    probs = [np.full((len(w.line_ids), 4), k, dtype=np.float32) for k, w in enumerate(page.windows)]
    merged = merge_window_probs(page, probs, 4)

    def margin(w):
        p = w.label_positions[w.line_ids.index(line)]
        return min(p, len(w.input_ids) - 1 - p)

    expect = 0 if margin(page.windows[0]) >= margin(page.windows[1]) else 1
    assert merged[page.kept.index(line), 0] == expect


def test_line_budget_caps_tokens(encoder):
    toks = encoder.line_tokens(["word " * 500])
    assert len(toks[0]) == encoder.budget


# long lines of words: line_tokens tokenizes word by word until the budget is reached
# (frequent long words are single tokens: lines whose leading words are too few tokens)
word = st.one_of(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
                 st.sampled_from(["information", "international", "government", "development", "ab"]))
long_line = st.lists(word, min_size=5, max_size=40).map(" ".join)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(line_text, long_line).filter(str.strip), min_size=1, max_size=20))
def test_fast_tokenizer_path_gives_the_tokenizer_ids(encoder, tokenizer, lines):
    """line_tokens calls the Rust tokenizer directly, once per distinct word, and only on the words a
    line needs; it must give what the transformers wrapper gives on the whole line."""
    lines += ["Заголовок открываемого материала", "首页 新闻", "«اشترك» الآن", "  ★ Subscribe ✉ ", lines[0],
              "a " * 30 + "Donaudampfschifffahrtsgesellschaftskapitän", "x" * 60 + " y z",
              "information " * 10 + "Заголовок открываемого материала",
              "首页 a b c" + " information" * 6,  # leading words: exactly the budget, one of them a bare "▁"
              # whitespace by Python's rules, or Unicode's, or neither; NFKC that makes spaces
              "a\x1cb\x1dc\x1ed\x1ff", "a\x85b\u2028c\u2029d", "a\u3000b\u00a0c\u2007d\u202fe\u205ff\u1680g",
              "a\u200bb\ufeffc\u180ed", "ｆｕｌｌ　ｗｉｄｔｈ　ｗｏｒｄｓ", "x\ty\x0bz\x0cw", "ǅ ﬁ ㎞ ①",
              # special tokens' text, matched by the tokenizer before normalizing: as it is, or made by NFKC
              "tag <s>strike</s> ok", "x ＜ｓ＞ y", "x <\x01s> y", "x ﹤mask﹥ y", "a<s>\u0338 b", "<s>\u0338"]
    cap = encoder.budget * CHARS_PER_TOKEN_CAP
    ids = tokenizer([l.strip()[:cap] for l in lines], add_special_tokens=False)["input_ids"]
    expect = [(t[1:] if len(t) > 1 and t[0] == encoder.bare_space else t)[:encoder.budget] or [encoder.bare_space]
              for t in ids]
    assert encoder.line_tokens(lines) == expect


def test_word_cache_starts_again_when_full(tokenizer, monkeypatch):
    import pagesieve.encoding as encoding

    lines = ["one two three", "four five", "one six seven eight nine ten"]
    expect = PageEncoder(tokenizer, max_length=64, line_token_budget=8).line_tokens(lines)
    monkeypatch.setattr(encoding, "WORD_CACHE", 4)
    small = PageEncoder(tokenizer, max_length=64, line_token_budget=8)
    assert [small.line_tokens([l])[0] for l in lines] == expect  # the cache overflows and starts again
    assert small.line_tokens(lines) == expect and len(small.words) <= 4  # a batch larger than the cache: not kept


def test_words_many_to_a_call_and_the_fallbacks_give_the_whole_line_ids(tokenizer, monkeypatch):
    """New words go WORDS_PER_CALL to a tokenizer call and lines to one normalizer call; a line holding the
    joining character, and a call whose words cannot be told apart, go one by one: the same ids throughout."""
    import pagesieve.encoding as encoding

    lines = ["one two three four five six seven", f"a{encoding.LINE_JOIN}b c", "▁x ▁ y\ue000z ▁▁",
             "Заголовок открываемого материала", "首页 新闻 ★", "ｆｕｌｌ　ｗｉｄｔｈ"]
    whole = PageEncoder(tokenizer, max_length=64, line_token_budget=8)
    whole.words_apart = False
    expect = whole.line_tokens(lines)
    monkeypatch.setattr(encoding, "WORDS_PER_CALL", 3)
    assert PageEncoder(tokenizer, max_length=64, line_token_budget=8).line_tokens(lines) == expect
    blind = PageEncoder(tokenizer, max_length=64, line_token_budget=8)
    blind.opens_word = np.zeros(len(tokenizer) + 8, dtype=bool)  # no call's word count matches: word by word
    assert blind.line_tokens(lines) == expect


@pytest.mark.parametrize("tier", ["base", "fast"])
def test_pickled_encoder_needs_no_transformers_nor_torch(encoder, tokenizer, tier, tmp_path):
    """What `predict --workers` sends to its processes: the same encodings, without transformers or torch
    (whose import cost each fast-tier worker ~1.7 s and ~220 MB)."""
    import json
    import pickle
    import subprocess
    import sys

    from pagesieve.encoding import LineEncoder

    enc = encoder if tier == "base" else LineEncoder(tokenizer, line_tokens=8)
    pages = [["Home", "Заголовок открываемого материала", "", "首页 新闻"], [f"line {i} of a page" for i in range(40)]]
    (tmp_path / "enc.pkl").write_bytes(pickle.dumps(enc))
    code = ("import json, pickle, sys, pagesieve.dump; enc = pickle.load(open(sys.argv[1], 'rb')); "
            "pages = enc.encode_many(json.loads(sys.argv[2])); "
            "print(json.dumps([[w.input_ids for w in p.windows] if sys.argv[3] == 'base' "
            "else [p.tokens, p.feats.tolist()] for p in pages])); "
            "print('transformers' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "enc.pkl"), json.dumps(pages), tier],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    here = enc.encode_many(pages)
    assert json.loads(out[0]) == [[w.input_ids for w in p.windows] if tier == "base" else [p.tokens, p.feats.tolist()]
                                  for p in here]
    assert out[1] == "False False"


def features_line_by_line(lines):
    """`line_features` written the plain way, a Python expression per line and feature: the definition that the
    page-at-once code must match, to float32 rounding (the released fast tier was trained on it)."""
    import collections

    from pagesieve.encoding import BULLETS, N_FEATURES, SENTENCE_END, URLISH, YEAR, class_counts

    counts = collections.Counter(lines)
    stripped = [line.strip() for line in lines]
    letters, digits, upper, punct = class_counts(stripped).T
    out = np.zeros((len(lines), N_FEATURES))
    for i, s in enumerate(stripped):
        n_chars, words = len(s), len(s.split())
        out[i] = [np.log1p(n_chars) / 6, np.log1p(words) / 5, digits[i] / max(n_chars, 1), upper[i] / max(letters[i], 1),
                  punct[i] / max(n_chars, 1), letters[i] / max(n_chars, 1), s.endswith(SENTENCE_END),
                  s.startswith(BULLETS), np.log1p(s.count("|") + s.count("·") + s.count("•")),
                  YEAR.search(s) is not None, URLISH.search(s) is not None, np.log1p(counts[lines[i]] - 1), words <= 3,
                  i / max(len(lines) - 1, 1), s.isupper() and letters[i] > 1]
    return out.astype(np.float32)


TRICKY_LINES = ["", "   ", "a", " x  y ", "1999", "x1999y", "(2020)", "©2021 Firma", "\u3000全角\u3000スペース",
                "www.example.COM", "Mail: a@b", "https://x", "• item", "— end.", "\x1c\x1dq\x1e", "A\u2028B",
                "ǅ ǆ ǈ", "ÀB", "a\nb 2001", "NEWS", "N", "ΑΒΓ δ", "| · • |", "«Привет»", "٢٠٢٣ 2023", "x.de", "x.dex",
                "\u00a0nbsp\u00a0", "e\u0301", "𝐀𝐁𝐂", "😀 ok!", "ok?"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(TRICKY_LINES), st.text(max_size=40)), max_size=30))
def test_line_features_match_the_line_by_line_definition(lines):
    from pagesieve.encoding import line_features

    np.testing.assert_allclose(line_features(lines), features_line_by_line(lines), rtol=0, atol=1e-6)

