"""A page (its lines) -> token windows for the token classifier, and back; and, at the end, a page -> the
fast tier's lines (tokens and shape features: `LineEncoder`). Nothing here imports torch or transformers: the
`predict --workers` processes that unpickle these encoders do without them.

Rules (the model and the training data share them):
- Blank lines carry no label and are skipped; every other line gets exactly one prediction.
- A line becomes at most `line_token_budget` tokens (its start: a long line is judged by
  its opening words), so a window holds many lines and sees the page around them.
- The line's label sits on its first token. SentencePiece opens CJK lines and lines that
  start with a quote or symbol with a bare "▁" that is the same for every such line; we
  drop it, so the labelled token carries the line's own first word.
- Line boundaries are marked for free by alternating token_type_ids (0, 1, 0, ...).
- Windows hold at most `max_length` tokens (with <s> and </s>). Consecutive windows
  overlap by about `overlap` tokens of whole lines. A line seen in several windows takes
  the prediction of the window where it sits farthest from an edge (the most context on
  both sides): `merge_rule = "most-central"`.
"""
from __future__ import annotations

import collections
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import regex

from .labels import IGNORE, LABEL2ID, LABELS

# Cut characters before tokenizing: a 200 kB line needs only its first words.
CHARS_PER_TOKEN_CAP = 16
# The tokenizer splits at whitespace and tokenizes each word alone, so a line's ids are its words' ids one
# after the other: each distinct word is tokenized once per encoder (menus, names and common words repeat
# across a dump's pages), new words many to a call (see PageEncoder._new_words_ids), and a line needs only
# its first budget + 1 words. The 80 pages of the throughput benchmark (13,887 lines): ~3 ms/page from an
# empty cache, ~1 once warm, against 6-8 tokenizing whole lines.
WORD_CACHE = 200_000  # distinct words kept (~310 bytes each: ~60 MB); past that the cache starts again
LINE_JOIN = "\ufdd0"  # between the texts normalized in one call (PageEncoder._normalized): a noncharacter
WORDS_PER_CALL = 256  # new words tokenized together: 26,395 words in ~105 ms against ~200 one by one


@dataclass
class Window:
    input_ids: list[int]
    token_type_ids: list[int]
    label_positions: list[int]  # token index of each line's label
    line_ids: list[int]  # index (into the page's lines) of each labelled line
    labels: list[int] | None = None  # label ids of those lines (training only)

    def label_array(self) -> list[int]:
        """Per-token labels: the line label on its first token, IGNORE elsewhere."""
        out = [IGNORE] * len(self.input_ids)
        for pos, lab in zip(self.label_positions, self.labels or []):
            out[pos] = lab
        return out


@dataclass
class EncodedPage:
    n_lines: int
    kept: list[int]  # indexes of the non-blank lines
    windows: list[Window] = field(default_factory=list)


class PageEncoder:
    def __init__(self, tokenizer, max_length: int = 512, line_token_budget: int = 32, overlap: int = 128):
        if max_length < 8:
            raise ValueError("max_length must be at least 8")
        self.tok = tokenizer
        # the Rust tokenizer itself: the same ids as `tokenizer(texts)` without transformers' per-line
        # Python conversion (which took as long as the tokenizing), and all a worker process needs
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        # word by word (see WORD_CACHE) when the tokenizer splits at whitespace and marks every word alike,
        # as XLM-R's does; any other tokenizer: whole lines
        pre = repr(self.backend.pre_tokenizer) if self.backend is not None else ""
        self.words_apart = "WhitespaceSplit" in pre and "prepend_scheme=always" in pre
        self.opens_word: np.ndarray | None = None  # built on first use (~0.3 s): see _new_words_ids
        self._start_words()
        self.max_length = max_length
        self.capacity = max_length - 2  # room for <s> and </s>
        self.budget = max(1, min(line_token_budget, self.capacity))
        self.overlap = max(0, min(overlap, self.capacity // 2))
        self.bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
        self.eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        self.bare_space = tokenizer.convert_tokens_to_ids("▁")

    def __getstate__(self):
        # worker processes get the Rust tokenizer only: rebuilding transformers' wrapper there costs
        # an import of transformers per worker and whatever its loading checks do
        state = dict(self.__dict__)
        if self.backend is not None:
            state["tok"] = None
        del state["normalize"], state["words"], state["specials"]  # each process its own
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._start_words()

    def _start_words(self):
        normalizer = self.backend.normalizer if self.backend is not None else None
        self.normalize = normalizer.normalize_str if normalizer is not None else str
        self.words: dict[str, list[int]] = {}  # word -> ids (see WORD_CACHE)
        specials = [t.content for t in self.backend.get_added_tokens_decoder().values()] if self.backend else []
        self.specials = re.compile("|".join(map(re.escape, specials)) or r"(?!)")

    def line_tokens(self, lines: list[str]) -> list[list[int]]:
        cap = self.budget * CHARS_PER_TOKEN_CAP
        texts = [line.strip()[:cap] for line in lines]
        distinct = list(dict.fromkeys(texts))  # each distinct line once: menus repeat within and across pages
        ids = self._words_ids(distinct) if self.words_apart else self._ids(distinct)
        by_text = {}
        for text, t in zip(distinct, ids):
            if len(t) > 1 and t[0] == self.bare_space:
                t = t[1:]
            by_text[text] = t[: self.budget] or [self.bare_space]  # never empty: the line still needs a slot
        return [by_text[t] for t in texts]

    def _words_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text's first ids, enough for the budget (one more: a bare "▁" may go), word by word."""
        normalized = self._normalized(texts)
        # a word is at least one token: the first budget + 1 words are all a line can need. Python's
        # whitespace holds the tokenizer's (Unicode's; the two differ on \x1c-\x1f, which it deletes).
        words = [n.split()[: self.budget + 1] for n in normalized]
        # lines with a special token's text (<s>, <mask>...) before or after normalizing: the tokenizer
        # matches those in the raw line, so only the whole line gives its ids
        whole = []
        if self.specials.search("\n".join(texts)) or self.specials.search("\n".join(normalized)):
            whole = [i for i, (t, n) in enumerate(zip(texts, normalized))
                     if self.specials.search(t) or self.specials.search(n)]
        for i in whole:
            words[i] = []
        cache = self.words
        found = {w: cache.get(w) for ws in words for w in ws}  # this call's own: other threads may clear the cache
        new = [w for w, ids in found.items() if ids is None]
        if new:
            ids = self._new_words_ids(new)
            found.update(zip(new, ids))
            if len(cache) + len(new) > WORD_CACHE:
                cache.clear()
            if len(new) <= WORD_CACHE:
                cache.update(zip(new, ids))
        ids_of = found.__getitem__
        out = [list(chain.from_iterable(map(ids_of, ws))) for ws in words]
        for i, ids in zip(whole, self._ids([texts[i] for i in whole])):
            out[i] = ids
        return out

    def _normalized(self, texts: list[str]) -> list[str]:
        """The normalizer's output for each text, from one call on the texts joined by LINE_JOIN (the
        normalizer deletes, replaces and NFKC-composes within a text, never across that character); text by
        text when a text holds it."""
        joined = self.normalize(LINE_JOIN.join(texts)).split(LINE_JOIN)
        return joined if len(joined) == len(texts) else [self.normalize(t) for t in texts]

    def _new_words_ids(self, words: list[str]) -> list[list[int]]:
        """Token ids of normalized words, WORDS_PER_CALL words joined by spaces per text: a word's ids are
        the same alone or among others (normalizing again changes nothing; every word is its own pre-token),
        and the tokenizer's cost is mostly per text (~20-30 us), not per word. Each word's ids start at a
        piece that opens with "▁" (XLM-R's normalizer turns "▁" in the text into a space: no other piece
        does); a text where that count is not its number of words is tokenized word by word instead."""
        if self.opens_word is None:  # which pieces open a word
            vocab = self.backend.get_vocab(with_added_tokens=True)
            opens = np.zeros(max(vocab.values()) + 1, dtype=bool)
            opens[[i for piece, i in vocab.items() if piece.startswith("▁")]] = True
            self.opens_word = opens
        batch = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        parts = [words[i:i + WORDS_PER_CALL] for i in range(0, len(words), WORDS_PER_CALL)]
        out = []
        for part, enc in zip(parts, batch([" ".join(p) for p in parts], add_special_tokens=False)):
            ids = enc.ids
            starts = np.flatnonzero(self.opens_word[np.array(ids, dtype=np.int64)]).tolist()
            if len(starts) != len(part) or starts[0] != 0:
                out += [e.ids for e in batch(part, add_special_tokens=False)]
                continue
            starts.append(len(ids))
            out += [ids[a:b] for a, b in zip(starts, starts[1:])]
        return out

    def _ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each whole text."""
        if not texts:
            return []
        if self.backend is not None:
            batch = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
            return [e.ids for e in batch(texts, add_special_tokens=False)]
        return self.tok(texts, add_special_tokens=False)["input_ids"]

    def encode(self, lines: list[str], labels: list[int] | None = None) -> EncodedPage:
        return self.encode_many([lines], [labels] if labels is not None else None)[0]

    def encode_many(self, pages: list[list[str]], labels: list[list[int]] | None = None) -> list[EncodedPage]:
        """Encode pages; the lines of all pages are tokenized in one batch (parallel in Rust)."""
        kept = [[i for i, line in enumerate(lines) if line.strip()] for lines in pages]
        flat = self.line_tokens([lines[i] for lines, k in zip(pages, kept) for i in k])
        out, pos = [], 0
        for p, (lines, k) in enumerate(zip(pages, kept)):
            toks = flat[pos:pos + len(k)]
            pos += len(k)
            out.append(self.windows(len(lines), k, toks, labels[p] if labels is not None else None))
        return out

    def windows(self, n_lines: int, kept: list[int], toks: list[list[int]], labels=None,
                overlap: int | None = None) -> EncodedPage:
        """The windows over lines `kept` (indexes in a page of `n_lines`) given their tokens (and labels by index);
        `overlap`: tokens consecutive windows share (default: the encoder's)."""
        page = EncodedPage(n_lines=n_lines, kept=kept)
        if not kept:
            return page
        for start, end in self.spans([len(t) for t in toks], overlap):
            ids, types, positions = [self.bos], [0], []
            for j in range(start, end):
                positions.append(len(ids))
                ids.extend(toks[j])
                types.extend([(j - start) % 2] * len(toks[j]))
            ids.append(self.eos)
            types.append(0)
            page.windows.append(Window(
                ids, types, positions, [kept[j] for j in range(start, end)],
                [labels[kept[j]] for j in range(start, end)] if labels is not None else None))
        return page

    def spans(self, lens: list[int], overlap: int | None = None) -> list[tuple[int, int]]:
        """Greedy [start, end) line spans that fill windows, overlapping by ~`overlap` tokens (default: the
        encoder's)."""
        overlap = self.overlap if overlap is None else max(0, min(overlap, self.capacity // 2))
        spans, n, start = [], len(lens), 0
        while True:
            end, used = start, 0
            while end < n and used + lens[end] <= self.capacity:
                used += lens[end]
                end += 1
            spans.append((start, end))
            if end >= n:
                return spans
            back, nxt = 0, end
            while nxt - 1 > start and back + lens[nxt - 1] <= overlap:
                nxt -= 1
                back += lens[nxt]
            start = nxt


def per_line(page: EncodedPage, probs: np.ndarray, min_prob: Mapping[str, float] | None = None) -> list[int | None]:
    """The predicted class id of every line of the page (None for blank lines), with per-class
    thresholds `min_prob` (see `choose_labels`)."""
    out: list[int | None] = [None] * page.n_lines
    for i, c in zip(page.kept, choose_labels(probs, LABELS, min_prob).tolist() if len(page.kept) else []):
        out[i] = c
    return out


def choose_labels(probs: np.ndarray, labels: Sequence[str], min_prob: Mapping[str, float] | None = None) -> np.ndarray:
    """The class id of each row of (lines, classes) probabilities, with per-class thresholds.

    The rule: a line takes the most probable class that passes its threshold: a class in `min_prob`
    passes when its probability is at least the threshold, a class not in `min_prob` always passes.
    So a line whose top class is below its threshold falls back to the next most probable class
    that passes. When no class passes (every class has a threshold and all are below it), the line
    keeps its top class. Without thresholds this is the plain argmax."""
    probs = np.asarray(probs)
    if not min_prob or not len(probs):
        return probs.argmax(-1)
    floor = np.array([min_prob.get(label, 0.0) for label in labels], dtype=probs.dtype)
    passes = probs >= floor
    ids = np.where(passes, probs, -1.0).argmax(-1)  # classes under their threshold rank below all others
    none = ~passes.any(-1)
    ids[none] = probs[none].argmax(-1)
    return ids


def merge_window_probs(page: EncodedPage, window_probs: list[np.ndarray], n_classes: int) -> np.ndarray:
    """Per kept line, the class probabilities of its most central window.

    `window_probs[w]` is (lines in window w, n_classes). Returns (len(page.kept), n_classes)
    in the order of `page.kept`.
    """
    kept = np.asarray(page.kept)
    out = np.zeros((len(kept), n_classes), dtype=np.float32)
    best = np.full(len(kept), -1, dtype=np.int64)
    for win, probs in zip(page.windows, window_probs):  # later windows win only when strictly more central
        pos = np.asarray(win.label_positions)
        rows = np.searchsorted(kept, win.line_ids)
        margin = np.minimum(pos, len(win.input_ids) - 1 - pos)
        better = margin > best[rows]
        best[rows[better]] = margin[better]
        out[rows[better]] = np.asarray(probs)[better]
    return out


# -- the fast tier's line encoding (here, not in fast.py: worker processes import it without torch) -------
SENTENCE_END = tuple(".!?。！？…:;»\"')")
BULLETS = tuple("©•·|-–—*>›»#→►▶")
YEAR = re.compile(r"\b(19|20)\d\d\b")
URLISH = re.compile(r"https?://|www\.|@|\.(com|org|net|de|ru|fr)\b", re.I)

N_FEATURES = 15


# Characters of a class: letters, digits, capitals, punctuation (the counts of str.isalpha / isdigit / isupper
# and unicodedata's P* categories, which the released tier was trained on, on all 433,025 lines of the gold
# pages; they can differ only on characters newer than Python's Unicode tables). Counted for a whole page at
# once through a table of every code point: 0.16 ms/page against 1.0 with a regex per line and class.
CHAR_CLASSES = (r"\p{L}", r"[\p{Nd}\p{Numeric_Type=Digit}]", r"[\p{Lu}\p{Other_Uppercase}]", r"\p{P}")
# The table's other bits: what str.split() splits at (stdlib re's \s is str.isspace), the separators counted
# by feature 8, and the single characters that end a sentence or open a bulleted line (features 6 and 7).
_SPACE, _SEPARATOR, _ENDS, _OPENS = 1 << 4, 1 << 5, 1 << 6, 1 << 7
_SEPARATOR_CHARS = "|·•"
_URL_CHARS = np.array([ord(c) for c in ".:@"], np.uint32)


@functools.cache
def char_class_table() -> np.ndarray:
    """(0x110000,) uint8: bit k set where the code point is in CHAR_CLASSES[k], and the bits _SPACE,
    _SEPARATOR, _ENDS and _OPENS (built once, ~0.2 s)."""
    table = np.zeros(0x110000, np.uint8)
    for start in range(0, 0x110000, 0x10000):  # a plane at a time: little memory
        plane = "".join(map(chr, range(start, start + 0x10000)))
        for k, pattern in enumerate(CHAR_CLASSES):
            table[[start + m.start() for m in regex.finditer(pattern, plane)]] |= 1 << k
        table[[start + m.start() for m in re.finditer(r"\s", plane)]] |= _SPACE
    for chars, bit in ((_SEPARATOR_CHARS, _SEPARATOR), (SENTENCE_END, _ENDS), (BULLETS, _OPENS)):
        table[[ord(c) for c in chars]] |= bit
    return table


def _code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The texts' characters as one array of code points, and each text's length and end in it."""
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    code_points = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), np.uint32)
    return code_points, lengths, np.cumsum(lengths)


def _per_text(flags: np.ndarray, lengths: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many of each text's characters have the flag (0/1 or a bool per character of all the texts)."""
    running = np.concatenate([[0], np.cumsum(flags)])
    return running[ends] - running[ends - lengths]


def class_counts(texts: list[str]) -> np.ndarray:
    """(texts, len(CHAR_CLASSES)) how many characters of each text are in each class."""
    code_points, lengths, ends = _code_points(texts)
    return _class_counts(char_class_table()[code_points], lengths, ends)


def _class_counts(bits: np.ndarray, lengths: np.ndarray, ends: np.ndarray) -> np.ndarray:
    out = np.zeros((len(lengths), len(CHAR_CLASSES)), np.int64)
    for k in range(len(CHAR_CLASSES)):
        out[:, k] = _per_text((bits >> k) & 1, lengths, ends)
    return out


def _lines_matching(pattern: re.Pattern, texts: list[str], candidates: np.ndarray) -> np.ndarray:
    """Whether pattern.search(text) finds something, for each text; searched only where `candidates` (texts
    with the characters that any match needs), False elsewhere."""
    hits = np.zeros(len(texts), bool)
    for i in np.flatnonzero(candidates).tolist():
        hits[i] = pattern.search(texts[i]) is not None
    return hits


def line_features(lines: list[str]) -> np.ndarray:
    """Shape features of each (non-blank) line of one page, and how often it occurs on the page: a column
    at a time from one array of the page's code points (through `char_class_table`), and a regex search only
    on the lines with the characters a match needs: not a Python expression per line and feature (1.5x faster
    on the corpora's pages, the same features: tests/test_encoding.py holds the line-by-line definition)."""
    n = len(lines)
    counts = collections.Counter(lines)
    stripped = [line.strip() for line in lines]
    code_points, lengths, ends = _code_points(stripped)
    bits = char_class_table()[code_points]
    letters, digits, upper, punct = _class_counts(bits, lengths, ends).T
    starts, has = ends - lengths, lengths > 0
    first, last = np.zeros(n, np.uint8), np.zeros(n, np.uint8)  # the bits of each line's first and last character
    first[has], last[has] = bits[starts[has]], bits[ends[has] - 1]
    space = (bits & _SPACE) != 0
    opens_word = ~space  # str.split(): a word starts at a non-space after a space or at the line's start
    opens_word[1:] &= space[:-1]
    opens_word[starts[has]] = ~space[starts[has]]
    words = _per_text(opens_word, lengths, ends).astype(np.float64)
    length = lengths.astype(np.float64)
    per_char = np.maximum(length, 1)
    out = np.empty((n, N_FEATURES), np.float64)
    out[:, 0] = np.log1p(length) / 6
    out[:, 1] = np.log1p(words) / 5
    out[:, 2] = digits / per_char
    out[:, 3] = upper / np.maximum(letters, 1)
    out[:, 4] = punct / per_char
    out[:, 5] = letters / per_char
    out[:, 6] = (last & _ENDS) != 0
    out[:, 7] = (first & _OPENS) != 0
    out[:, 8] = np.log1p(_per_text((bits & _SEPARATOR) != 0, lengths, ends))
    # a year needs two ASCII digits ("19"/"20"); a URL, a domain or an e-mail address a ".", ":" or "@"
    out[:, 9] = _lines_matching(YEAR, stripped, _per_text((code_points >= 48) & (code_points <= 57), lengths, ends) >= 2)
    out[:, 10] = _lines_matching(URLISH, stripped, _per_text(np.isin(code_points, _URL_CHARS), lengths, ends) > 0)
    out[:, 11] = np.log1p([counts[line] - 1 for line in lines])
    out[:, 12] = words <= 3
    out[:, 13] = np.arange(n) / max(n - 1, 1)
    out[:, 14] = np.array([s.isupper() for s in stripped], dtype=bool) & (letters > 1)
    return out.astype(np.float32)


@dataclass
class EncodedLines:
    """One page (or window of lines) ready for the model."""
    n_lines: int
    kept: list[int]  # indexes of the non-blank lines in the page
    tokens: list[list[int]]  # each kept line's ids (at least one)
    feats: np.ndarray
    labels: np.ndarray | None = None
    _flat: tuple | None = field(default=None, repr=False, compare=False)

    def flat_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """(all the lines' ids one after the other, where each line's ids start, and the end last): built once,
        by `LineEncoder.encode_many` where pages are encoded (a dump's worker processes), so that batching them
        for the model is array slicing, not a Python loop over lines."""
        if self._flat is None:
            lengths = np.fromiter(map(len, self.tokens), np.int64, len(self.tokens))
            self._flat = (np.fromiter(chain.from_iterable(self.tokens), np.int64, int(lengths.sum())),
                          np.concatenate([[0], np.cumsum(lengths)]))
        return self._flat

    def __getstate__(self):
        # from a worker process, the flat arrays without the lists: unpickling a page's lists of ids cost the
        # dump's main process ~0.28 ms a page (the 308 validation pages), over half its CPU with no model
        state = dict(self.__dict__)
        if state["_flat"] is not None:
            state["tokens"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.tokens is None:
            self.tokens = LineIds(*self._flat)


class LineIds(Sequence):
    """The lines' ids of an unpickled `EncodedLines`, read from its flat arrays as lists when asked for."""

    def __init__(self, ids: np.ndarray, starts: np.ndarray):
        self.ids, self.starts = ids, starts

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        return self.ids[self.starts[i]:self.starts[i + 1]].tolist()


class LineEncoder:
    """Pages -> per-line token ids and features (tokenizer work; pickles to worker processes)."""

    def __init__(self, tokenizer, line_tokens: int = 32):
        self.tokens = PageEncoder(tokenizer, max_length=line_tokens + 2, line_token_budget=line_tokens, overlap=0)

    def encode_many(self, pages: list[list[str]], labels: list[list] | None = None) -> list[EncodedLines]:
        kept = [[i for i, line in enumerate(lines) if line.strip()] for lines in pages]
        flat = self.tokens.line_tokens([lines[i] for lines, k in zip(pages, kept) for i in k])
        out, pos = [], 0
        for p, (lines, k) in enumerate(zip(pages, kept)):
            y = None
            if labels is not None:
                y = np.array([LABEL2ID.get(labels[p][i], IGNORE) if labels[p][i] else IGNORE for i in k], dtype=np.int64)
            page = EncodedLines(len(lines), k, flat[pos:pos + len(k)], line_features([lines[i] for i in k]), y)
            page.flat_tokens()
            out.append(page)
            pos += len(k)
        return out
