"""Gold labels from annotators, stored without page text (see data/gold/README.md).

Pages from the HTML corpora are rendered by the project's own renderer, shown to annotators as
numbered lines with hints, answered in a compact range form, and stored as line hashes + labels:

    python -m pagesieve.data annotate queue  --work W              # the pages to label, in order
    python -m pagesieve.data annotate batch  --work W b001 b002 ... [--pages 8] [--double]
    python -m pagesieve.data annotate check  W/answers/b001.a.txt  # an annotator checks an answer
    python -m pagesieve.data annotate collect --work W --out data/gold     # train.jsonl, validation.jsonl
    python -m pagesieve.data annotate card   --gold data/gold              # data/gold/CARD.md

Answer form, one section per page, every line number exactly once:

    ## page 3
    1-4 navigation
    5 content
    6-7 ui_chrome
"""
from __future__ import annotations

import collections
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ..labels import LABELS
from .pages import site_of

RENDERER = "innertext"
ALIASES = {"content": "content", "con": "content", "caption": "caption", "cap": "caption",
           "navigation": "navigation", "nav": "navigation", "ui_chrome": "ui_chrome", "ui": "ui_chrome"}
MAX_SHOWN = 240  # characters of a line shown to annotators (the label is for the whole line)
# a site goes to validation by a hash of its name: stable when corpora are added later
VALIDATION_SHARE = {"en": 0.10, "de": 0.12}
VALIDATION_SHARE_OTHER = 0.25  # rarer languages: a larger share, so validation spans many languages


# corpora whose pages are all of one kind (page types otherwise come from the corpus or the annotator)
CORPUS_PAGE_TYPE = {"formasaurus": "form", "recipe_scrapers": "recipe"}


def gold_file(folder: Path, split: str) -> Path:
    """Where a split of stored gold lives (gzipped JSON Lines: hashes and labels compress well)."""
    return Path(folder) / f"{split}.jsonl.gz"


def _read_stored(path: Path) -> list[dict]:
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(l) for l in fh if l.strip()]


def line_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


def site_split(site: str, lang: str | None, train_sites: set) -> str:
    """'validation' or 'train' for a site; sites of the shared gold train pages always train."""
    if site in train_sites:
        return "train"
    share = VALIDATION_SHARE.get(lang or "", VALIDATION_SHARE_OTHER)
    h = int(hashlib.sha1(f"pagesieve-validation:{site}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "validation" if h < share else "train"


def validation_half(site: str) -> str:
    """'A' or 'B' by a hash of the site: A chooses checkpoints inside a run (early stopping), B
    decides between runs, so that decision is not made on the pages that picked the checkpoint."""
    return "AB"[int(hashlib.sha1(f"pagesieve-half:{site}".encode()).hexdigest()[:8], 16) % 2]


# ---------------------------------------------------------------- rendering with hints
_TELLING = re.compile(r"nav|menu|footer|header|share|social|comment|caption|credit|related|sidebar|cookie|consent|"
                      r"breadcrumb|tag|widget|(^|[-_])ads?([-_]|$)|advert|banner|modal|popup|login|subscri|newsletter|"
                      r"author|byline|date|time|meta|title|teaser|card|promo|button|btn|share|rating|recipe|"
                      r"ingredient|instruction|post|article|content|body|summary|lead|more|pagination|pager", re.I)
_LANDMARKS = {"header", "nav", "footer", "aside", "main", "article", "form", "button", "label", "figure", "figcaption",
              "h1", "h2", "h3", "h4", "h5", "h6", "li", "table", "blockquote", "dialog", "select", "a", "time", "pre",
              "caption", "dt", "dd", "summary"}


def dom_hint(line) -> str:
    """Up to three telling ancestors of a line's main element, innermost first (e.g. 'a<li<nav')."""
    out, el, depth = [], line.element, 0
    while el is not None and depth < 10 and len(out) < 3:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in ("body", "html"):
            break
        cls = f"{el.get('class') or ''} {el.get('id') or ''}".split()
        word = next((c for c in cls if _TELLING.search(c)), "")
        if tag in _LANDMARKS or word:
            out.append(tag + (f".{word[:18]}" if word else ""))
        el = el.getparent()
        depth += 1
    return "<".join(out)


def hinted_lines(rec: dict) -> list[dict]:
    """The page's rendered lines, each with its hints: text, gt (ground-truth evidence), link, dom."""
    from ..html import render
    from .weak import Evidence, link_share

    ev = Evidence(rec)
    out = []
    for line in render(rec["html"], RENDERER):
        gt = ev.label(line.text)
        flag = ""
        if gt:
            flag = {"gt:caption": "P", "gt:without": "X", "gt:not_in_main_text": ""}.get(gt[1], "G")
        out.append({"text": line.text, "gt": flag, "link": link_share(line) > 0.9, "dom": dom_hint(line)})
    return out


def format_page(k: int, rec: dict, lines: list[dict]) -> str:
    has_gt = bool(rec.get("main_text") or rec.get("with") or rec.get("captions"))
    head = [f"=== PAGE {k} · id {rec['id']} · lang {rec.get('lang') or '?'} · type {rec.get('page_type') or '?'} · "
            f"{len(lines)} lines · url {rec.get('url') or '?'}"]
    if rec.get("title"):
        head.append(f"title of the main piece (from the corpus): {rec['title'][:200]}")
    if not has_gt:
        head.append("(no ground-truth main text for this page: judge from the lines alone)")
    body = []
    for i, l in enumerate(lines, 1):
        text = l["text"].replace("\t", " ⇥ ")
        if len(text) > MAX_SHOWN:
            text = text[:MAX_SHOWN] + f" …(+{len(text) - MAX_SHOWN} chars)"
        flags = (l["gt"] or "-") + ("a" if l["link"] else "-")
        body.append(f"{i:>4} {flags} [{l['dom'][:40]}] {text}")
    return "\n".join(head + body) + "\n"


# ---------------------------------------------------------------- answers
PAGE_TYPES = ("article", "listing", "forum", "product", "recipe", "form", "docs", "other")


@dataclass
class Answer:
    labels: dict  # page number -> one label per line (pages answered completely)
    errors: list
    types: dict  # page number -> page type, where the header names one (`## page 3 type=forum`)
    notes: dict  # page number -> a reviewer's `rule: ...` line


def parse_answer(text: str, n_lines: dict[int, int]) -> Answer:
    """An answer file's text; `n_lines`: page number -> its line count."""
    pages: dict[int, dict[int, str]] = {}
    types: dict[int, str] = {}
    notes: dict[int, str] = {}
    errors, cur = [], None
    for ln, raw in enumerate(text.splitlines(), 1):
        s = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("##") else raw.strip()
        if not s:
            continue
        m = re.match(r"^##\s*page\s+(\d+)(?:\s+type\s*[=:]\s*(\w+))?\s*$", s, re.I)
        if m:
            cur = int(m.group(1))
            if m.group(2):
                if m.group(2).lower() in PAGE_TYPES:
                    types[cur] = m.group(2).lower()
                else:
                    errors.append(f"line {ln}: unknown page type {m.group(2)!r} (use {', '.join(PAGE_TYPES)})")
            if cur not in n_lines:
                errors.append(f"line {ln}: there is no page {cur} in this batch")
                cur = None
            elif cur in pages:
                errors.append(f"line {ln}: page {cur} answered twice")
                cur = None
            else:
                pages[cur] = {}
            continue
        if re.match(r"^(rule|note)\s*:", s, re.I) and cur is not None:  # a reviewer's reason
            notes[cur] = (notes.get(cur, "") + " " + s.split(":", 1)[1].strip()).strip()
            continue
        m = re.match(r"^(\d+)\s*(?:-\s*(\d+))?\s*[:\s]\s*([a-z_]+)\s*$", s, re.I)
        if not m:
            errors.append(f"line {ln}: cannot read {raw.strip()[:60]!r} (expected '12-15 navigation')")
            continue
        if cur is None:
            errors.append(f"line {ln}: a range before any '## page N' header")
            continue
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        label = ALIASES.get(m.group(3).lower())
        if label is None:
            errors.append(f"line {ln}: unknown label {m.group(3)!r} (use {', '.join(LABELS)})")
            continue
        if not 1 <= a <= b <= n_lines[cur]:
            errors.append(f"line {ln}: page {cur} has lines 1-{n_lines[cur]}, not {a}-{b}")
            continue
        for i in range(a, b + 1):
            if i in pages[cur]:
                errors.append(f"page {cur}: line {i} labeled twice")
            pages[cur][i] = label
    out = {}
    for k, got in pages.items():
        missing = [i for i in range(1, n_lines[k] + 1) if i not in got]
        if missing:
            errors.append(f"page {k}: lines without a label: {_ranges(missing)}")
        else:
            out[k] = [got[i] for i in range(1, n_lines[k] + 1)]
    for k in n_lines:
        if k not in pages:
            errors.append(f"page {k}: no '## page {k}' section")
    return Answer(out, errors, types, notes)


def _ranges(nums: list[int]) -> str:
    out, start = [], None
    for i, n in enumerate(nums):
        if start is None:
            start = n
        if i + 1 == len(nums) or nums[i + 1] != n + 1:
            out.append(f"{start}" if start == n else f"{start}-{n}")
            start = None
    return ", ".join(out[:20]) + (" …" if len(out) > 20 else "")


# ---------------------------------------------------------------- the work folder
def _corpus_index(corpora: Path) -> dict[str, dict]:
    from .build import iter_records

    return {r["id"]: r for r in iter_records(corpora) if "_reject" not in r and isinstance(r.get("html"), str)}


def queue(work: Path, corpora: Path, gold_dev: Path, gold_train: Path, max_lines: int = 700,
          new_held_out: Path | None = None) -> list[dict]:
    """All candidate pages in annotation order: every language but en/de first (round-robin over
    languages), then en/de round-robin over (corpus, page type) with one page per site first.
    `new_held_out` (a gold folder): only pages of held-out (validation) sites that no page stored there
    has, for a test set that judges models trained before it was annotated."""
    from .build import MAX_HTML
    from .pages import read_pages

    dev_ids = {p["id"] for p in read_pages(gold_dev)}
    train = list(read_pages(gold_train))
    train_ids = {p["id"] for p in train}
    train_sites = {site_of(p) for p in train}
    known_sites = set()
    if new_held_out is not None:
        known_sites = {p["site"] for split in ("train", "validation", "test") if gold_file(new_held_out, split).exists()
                       for p in _read_stored(gold_file(new_held_out, split))}
    other, main = collections.defaultdict(list), collections.defaultdict(list)
    seen_sites = collections.Counter()
    recs = sorted(_corpus_index(corpora).values(), key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())
    skipped = collections.Counter()
    for r in recs:
        if r["id"] in dev_ids or r["id"] in train_ids:
            continue
        if len(r["html"]) > MAX_HTML or "<" not in r["html"][:2000]:
            skipped["not usable HTML"] += 1
            continue
        try:
            n = len(hinted_lines(r))
        except ValueError:
            skipped["does not render"] += 1
            continue
        if not n or n > max_lines:
            skipped[f"0 or more than {max_lines} lines"] += 1
            continue
        site = site_of(r)
        item = {"id": r["id"], "lang": r.get("lang"), "corpus": r.get("corpus"), "page_type": r.get("page_type"),
                "site": site, "lines": n, "split": site_split(site, r.get("lang"), train_sites)}
        if r.get("lang") in ("en", "de"):
            main[(r.get("corpus"), r.get("page_type"))].append((seen_sites[site], item))
        else:
            other[r.get("lang") or "?"].append((0, item))
        seen_sites[site] += 1
    order = _round_robin([[it for _, it in v] for _, v in sorted(other.items())])
    order += _round_robin([[it for _, it in sorted(v, key=lambda x: x[0])] for _, v in sorted(main.items(), key=str)])
    if new_held_out is not None:  # filtered after ordering: the pages keep their places in the whole queue
        order = [it for it in order if it["split"] == "validation" and it["site"] not in known_sites]
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "queue.jsonl", "w") as fh:
        for it in order:
            fh.write(json.dumps(it) + "\n")
    print(f"queue: {len(order)} pages ({sum(it['lang'] not in ('en', 'de') for it in order)} not en/de); "
          f"skipped {dict(skipped)}",
          file=sys.stderr)
    return order


def _round_robin(groups: list[list]) -> list:
    out, k = [], 0
    while any(k < len(g) for g in groups):
        out += [g[k] for g in groups if k < len(g)]
        k += 1
    return out


def make_batches(work: Path, corpora: Path, names: list[str], n_pages: int, max_batch_lines: int,
                 double: bool = False) -> list[Path]:
    """Take the next pages of the queue into batches (or, with `double`, pages already handed out
    whose queue position is a multiple of 10, for a second independent annotation)."""
    q = [json.loads(l) for l in open(work / "queue.jsonl")]
    state_f = work / "state.json"
    state = json.loads(state_f.read_text()) if state_f.exists() else {"given": {}, "double": {}}
    taken = state["double"] if double else state["given"]
    index = _corpus_index(corpora)
    (work / "batches").mkdir(exist_ok=True)
    out = []
    for name in names:
        if double:
            pos = {it["id"]: i for i, it in enumerate(q)}
            cands = [q[pos[i]] for i in sorted(state["given"], key=lambda i: pos[i])
                     if pos[i] % 10 == 0 and i not in taken]
        else:
            cands = [it for it in q if it["id"] not in taken]
        chosen, total = [], 0
        for it in cands:
            if len(chosen) >= n_pages or (chosen and total + it["lines"] > max_batch_lines):
                break
            chosen.append(it)
            total += it["lines"]
        if not chosen:
            print("nothing left to hand out", file=sys.stderr)
            break
        pages_meta, text = [], []
        for k, it in enumerate(chosen, 1):
            rec = index[it["id"]]
            lines = hinted_lines(rec)
            text.append(format_page(k, rec, lines))
            pages_meta.append({"page": k, "id": it["id"], "lines": len(lines),
                               "hashes": [line_hash(l["text"]) for l in lines]})
            taken[it["id"]] = name
        out.append(_write_batch(work, name, text, pages_meta, state, f"{len(chosen)} pages, {total} lines"))
    return out


def _write_batch(work: Path, name: str, text: list[str], meta: list[dict], state: dict, summary: str) -> Path:
    """A batch's text for the annotator, its page list for checking answers, and the hand-out state."""
    (work / "batches" / f"{name}.txt").write_text("\n".join(text))
    (work / "batches" / f"{name}.json").write_text(json.dumps(meta))
    (work / "state.json").write_text(json.dumps(state))
    print(f"{name}: {summary}", file=sys.stderr)
    return work / "batches" / f"{name}.txt"


def check(answer: Path) -> list[str]:
    """Errors of an answer file against its batch (W/answers/NAME.X.txt -> W/batches/NAME.json)."""
    batch = answer.parent.parent / "batches" / (answer.name.split(".")[0] + ".json")
    meta = json.loads(batch.read_text())
    return parse_answer(answer.read_text(), {p["page"]: p["lines"] for p in meta}).errors


def _answers(work: Path) -> tuple[dict, dict, list]:
    """All answer files: ({id: [(batch, annotator, labels, hashes, page type)]} of annotations,
    {id: (reviewer, labels, rule)} of reviews (batches named r...), problems)."""
    answers, reviews, problems = collections.defaultdict(list), {}, []
    for f in sorted((work / "answers").glob("*.txt")):
        batch, annotator = f.name.split(".")[0], f.name.split(".")[1]
        meta = json.loads((work / "batches" / f"{batch}.json").read_text())
        got = parse_answer(f.read_text(), {p["page"]: p["lines"] for p in meta})
        problems += [f"{f.name}: {e}" for e in got.errors]
        for p in meta:
            if p["page"] not in got.labels:
                continue
            if batch.startswith("r"):
                reviews[p["id"]] = (annotator, got.labels[p["page"]], got.notes.get(p["page"], ""))
            else:
                answers[p["id"]].append((batch, annotator, got.labels[p["page"]], p["hashes"], got.types.get(p["page"])))
    return answers, reviews, problems


def collect(work: Path, corpora: Path, out: Path, gold_train: Path, test: bool = False) -> dict:
    """Answers -> stored gold pages (line hashes + labels). A doubly annotated page keeps both
    independent answers (`labels_a`, `labels_b`); a reviewed page (a review batch settled its
    disagreements) takes the reviewer's labels and rule; otherwise `labels` are the first answer's.
    With `test`, pages of held-out sites are stored as the split "test" (test.jsonl.gz), not validation."""
    from .pages import read_pages

    train_sites = {site_of(p) for p in read_pages(gold_train)}
    answers, reviews, problems = _answers(work)
    index = {i: r for i, r in _corpus_index(corpora).items() if i in answers}
    records = []
    for pid, ans in sorted(answers.items()):
        rec = index[pid]
        first = ans[0]
        site = site_of(rec)
        page_type = rec.get("page_type") or next((a[4] for a in ans if a[4]), None) or \
            CORPUS_PAGE_TYPE.get(rec.get("corpus"))
        page = {"id": pid, "corpus": rec.get("corpus"), "url": rec.get("url"), "lang": rec.get("lang"),
                "page_type": page_type, "site": site, "split": site_split(site, rec.get("lang"), train_sites),
                "renderer": RENDERER, "line_hashes": first[3], "labels": first[2], "annotator": first[1]}
        if test and page["split"] == "validation":
            page["split"] = "test"
        others = [a for a in ans[1:] if a[1] != first[1]]  # the same annotator twice is not independent
        if len(others) < len(ans) - 1:
            problems.append(f"{pid}: answered twice by {first[1]}: the second answer is not counted")
        if others:
            page["labels_a"], page["labels_b"], page["annotator_b"] = first[2], others[0][2], others[0][1]
        if pid in reviews:
            page["labels_before_review"] = page["labels"]
            page["reviewer"], page["labels"], page["review_rule"] = reviews[pid]
        records.append(page)
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test" if test else "validation"):
        import gzip

        with gzip.open(gold_file(out, split), "wt", encoding="utf-8") as fh:
            for p in records:
                if p["split"] == split:
                    fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"collect: {len(records)} pages ({sum('labels_b' in p for p in records)} double, {len(reviews)} reviewed) "
          f"-> {out}; {len(problems)} problems", file=sys.stderr)
    return {"pages": len(records), "problems": problems}


def _as_ranges(labels: list[str]) -> list[str]:
    out, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            out.append(f"{start + 1}-{i} {labels[start]}" if i - start > 1 else f"{i} {labels[start]}")
            start = i
    return out


def make_review(work: Path, corpora: Path, names: list[str], n_pages: int, max_batch_lines: int, gold: Path) -> list[Path]:
    """Review batches (named r...): doubly annotated pages whose two answers differ, then pages
    whose labels and ground-truth hints disagree badly (`hint_disagreement`). Each page shows both
    answers (or the answer and the hint) line by line, and the current labels as ranges to edit."""
    answers, reviews, _ = _answers(work)
    stored = {p["id"]: p for f in ("train", "validation") for p in _read_stored(gold_file(gold, f))}
    todo = [i for i, p in stored.items() if "labels_b" in p and p["labels_a"] != p["labels_b"]]
    flagged = [d["id"] for d in hint_disagreement(list(stored.values()), corpora)
               if d["g_not_content"] > 0.3 or d["content_not_g"] > 0.5]
    state_f = work / "state.json"
    state = json.loads(state_f.read_text())
    taken = state.setdefault("review", {})
    todo = [i for i in todo + [f for f in flagged if f not in todo] if i not in taken and i not in reviews]
    index = {i: r for i, r in _corpus_index(corpora).items() if i in set(todo)}
    paths = []
    for name in names:
        chosen, total = [], 0
        while todo and len(chosen) < n_pages and (not chosen or total + len(stored[todo[0]]["labels"]) <= max_batch_lines):
            chosen.append(todo.pop(0))
            total += len(stored[chosen[-1]]["labels"])
        if not chosen:
            break
        text, meta = [], []
        for k, pid in enumerate(chosen, 1):
            p, rec = stored[pid], index[pid]
            lines = hinted_lines(rec)
            assert [line_hash(l["text"]) for l in lines] == p["line_hashes"], pid
            a, b = p.get("labels_a", p["labels"]), p.get("labels_b")
            why = "two annotators disagree" if b else "the labels and the corpus's ground-truth hints (G) disagree"
            rows = [f"=== PAGE {k} · id {pid} · lang {rec.get('lang') or '?'} · {len(lines)} lines · url "
                    f"{rec.get('url') or '?'} · to review: {why}"]
            for i, l in enumerate(lines):
                text_ = l["text"].replace("\t", " ⇥ ")
                text_ = text_[:MAX_SHOWN] + (f" …(+{len(text_) - MAX_SHOWN} chars)" if len(text_) > MAX_SHOWN else "")
                lab = a[i] if b is None or a[i] == b[i] else f"{a[i]} | {b[i]}  <<<"
                flag = "  <<<" if b is None and ((l["gt"] == "G") != (a[i] == "content")) else ""
                rows.append(f"{i + 1:>4} {(l['gt'] or '-') + ('a' if l['link'] else '-')} [{l['dom'][:40]}] "
                            f"{{{lab}}}{flag} {text_}")
            rows.append(f"--- current labels of page {k} as ranges (first annotator), to edit:")
            rows += _as_ranges(a)
            text.append("\n".join(rows) + "\n")
            meta.append({"page": k, "id": pid, "lines": len(lines), "hashes": p["line_hashes"]})
            taken[pid] = name
        paths.append(_write_batch(work, name, text, meta, state, f"{len(chosen)} pages to review, {total} lines"))
    return paths


def corpora_dir() -> Path:
    """Where hash-only gold pages find their HTML: $PAGESIEVE_CORPORA or ../shared/data/corpora."""
    import os

    from .build import DEFAULT_CORPORA

    return Path(os.environ.get("PAGESIEVE_CORPORA") or DEFAULT_CORPORA)


def resolve(stored: list[dict], corpora: Path | None = None, where: str = "") -> list[dict]:
    """Hash-only gold pages -> labeled pages with their lines, re-rendered from the corpora. A line
    whose hash no longer matches (a changed renderer) is aligned by hash; lines left unmatched get
    the label None (ignored in training); a page whose HTML is missing is reported and skipped."""
    import difflib

    from ..html import html_to_lines

    corpora = corpora or corpora_dir()
    if not stored:
        return []
    if not corpora.exists():
        raise FileNotFoundError(f"{where}: gold pages stored as line hashes need the HTML corpora: {corpora} "
                                f"does not exist (set PAGESIEVE_CORPORA)")
    index = _corpus_index(corpora)
    pages, stats = [], collections.Counter()
    for p in stored:
        rec = index.get(p["id"])
        if rec is None:
            stats["pages not in the corpora (skipped)"] += 1
            continue
        lines = html_to_lines(rec["html"], p.get("renderer") or RENDERER)
        hashes = [line_hash(l) for l in lines]
        if hashes == p["line_hashes"]:
            labels = list(p["labels"])
        else:
            labels = [None] * len(lines)
            sm = difflib.SequenceMatcher(None, hashes, p["line_hashes"], autojunk=False)
            for b in sm.get_matching_blocks():
                for k in range(b.size):
                    labels[b.a + k] = p["labels"][b.b + k]
            stats["pages re-aligned"] += 1
            stats["lines unmatched"] += sum(l is None for l in labels)
        page = {k: v for k, v in p.items() if k not in ("line_hashes", "labels", "labels_a", "labels_b", "labels_before_review")}
        page.update(lines=lines, labels=labels, renderer=p.get("renderer") or RENDERER)
        pages.append(page)
    if stats:
        print(f"{where}: {dict(stats)}", file=sys.stderr)
    return pages


def agreement(records: list[dict]) -> dict:
    """Line accuracy and per-class agreement (F1 of one annotator against the other) on double pages."""
    from ..metrics import scores

    a, b = [], []
    for p in records:
        if "labels_b" in p:
            a += [LABELS.index(x) for x in p["labels_a"]]
            b += [LABELS.index(x) for x in p["labels_b"]]
    if not a:
        return {}
    s = scores(a, b)
    s["pages"] = sum("labels_b" in p for p in records)
    return s


def hint_disagreement(records: list[dict], corpora: Path) -> list[dict]:
    """Pages whose annotation and ground-truth hints disagree: share of ground-truth main-text
    lines (hint G) not labeled content, and of content lines without the hint (pages with main text)."""
    index = {i: r for i, r in _corpus_index(corpora).items() if i in {p["id"] for p in records}}
    out = []
    for p in records:
        rec = index.get(p["id"])
        if rec is None or not rec.get("main_text"):
            continue
        hints = [l["gt"] for l in hinted_lines(rec)]
        if [line_hash(l["text"]) for l in hinted_lines(rec)] != p["line_hashes"]:
            continue
        g = [lab for h, lab in zip(hints, p["labels"]) if h == "G"]
        c = [h for h, lab in zip(hints, p["labels"]) if lab == "content"]
        if g and c:
            out.append({"id": p["id"], "g_not_content": round(sum(l != "content" for l in g) / len(g), 3),
                        "content_not_g": round(sum(h != "G" for h in c) / len(c), 3), "g_lines": len(g),
                        "content_lines": len(c)})
    return out


def card(gold: Path, corpora: Path, shared_train: Path) -> str:
    """The data card of the project's gold (data/gold/CARD.md), recomputed from the stored pages."""
    from .pages import read_pages

    def table(rows, header):
        return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                         ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])

    recs = {split: _read_stored(gold_file(gold, split)) for split in ("train", "validation", "test")
            if split != "test" or gold_file(gold, split).exists()}
    shared = list(read_pages(shared_train))
    allp = [p for v in recs.values() for p in v]
    text = ["# Gold data card", "",
            "Recomputed from the stored pages by `python -m pagesieve.data annotate card --gold data/gold`.", ""]
    train_langs = {p.get("lang") or "?" for p in recs["train"] + shared}
    text += [f"Annotated here: {len(allp)} pages, {sum(len(p['labels']) for p in allp)} lines "
             f"(train {len(recs['train'])} pages, validation {len(recs['validation'])} pages from "
             f"{len({p['site'] for p in recs['validation']})} held-out sites in "
             f"{len({p.get('lang') or '?' for p in recs['validation']})} languages).",
             f"With the shared gold train pages ({len(shared)}): gold train {len(recs['train']) + len(shared)} pages "
             f"in {len(train_langs - {'?'})} languages."]
    if "test" in recs:
        text += [f"Test: {len(recs['test'])} pages of {len({p['site'] for p in recs['test']})} held-out sites that "
                 f"no other gold page has, annotated after the models they judge were trained (`test.jsonl.gz`)."]
    text += [""]
    labels = {split: collections.Counter(l for p in v for l in p["labels"]) for split, v in recs.items()}
    text += ["## Labels", "", table([[k] + [labels[split][k] for split in recs] for k in LABELS],
                                    ["label"] + [f"{split} lines" for split in recs]), ""]

    def by(key):
        c = collections.defaultdict(collections.Counter)
        for split, v in recs.items():
            for p in v:
                c[p.get(key) or "?"][split] += 1
                c[p.get(key) or "?"]["lines"] += len(p["labels"])
        return [[k] + [n[split] for split in recs] + [n["lines"]] for k, n in
                sorted(c.items(), key=lambda x: (-sum(x[1][split] for split in recs), x[0]))]

    for key, title in (("lang", "language"), ("corpus", "corpus"), ("page_type", "page type (where the corpus gives one)")):
        text += [f"## Pages by {title}", "", table(by(key), [key, *recs, "lines"]), ""]
    ag = agreement(allp)
    if ag:
        text += ["## Double annotation", "",
                 f"{ag['pages']} pages annotated twice, independently (every 10th page handed out); "
                 f"{ag['lines']} lines. Line accuracy (one annotator against the other) **{ag['accuracy']}**, "
                 f"Cohen's kappa {ag['kappa']}.", "",
                 table([[k, ag[k]["f1"], ag[k]["support"]] for k in LABELS],
                       ["class", "agreement F1", "lines (first annotator)"]), ""]
        per_page = sorted(((sum(a == b for a, b in zip(p["labels_a"], p["labels_b"])) / len(p["labels_b"]), p["id"])
                           for p in allp if "labels_b" in p))
        text += ["Pages by agreement (lowest first): " + ", ".join(f"{i} {a:.2f}" for a, i in per_page[:15]), ""]
    reviewed = [p for p in allp if "reviewer" in p]
    if reviewed:
        changed = sum(sum(a != b for a, b in zip(p["labels"], p["labels_before_review"])) for p in reviewed)
        text += ["## Review", "",
                 f"{len(reviewed)} pages reviewed by a senior annotator who saw the page with its labels: "
                 f"{sum('labels_b' in p for p in reviewed)} doubly annotated pages where the two answers differ "
                 f"(the reviewer settled each disagreement by the guideline), and pages whose labels and ground-truth "
                 f"hints disagree badly (below). {changed} lines changed "
                 f"({changed / max(1, sum(len(p['labels']) for p in reviewed)):.3f} of the reviewed lines); each "
                 f"page keeps the rule applied (`review_rule`).", ""]
    dis = hint_disagreement(allp, corpora)
    if dis:
        bad = [d for d in dis if d["g_not_content"] > 0.3 or d["content_not_g"] > 0.5]
        text += ["## Annotation against the corpora's ground truth", "",
                 f"On {len(dis)} pages with a ground-truth main text: lines of the main text labeled something else "
                 f"{sum(d['g_not_content'] * d['g_lines'] for d in dis) / sum(d['g_lines'] for d in dis):.3f}; "
                 f"content lines not in the main text "
                 f"{sum(d['content_not_g'] * d['content_lines'] for d in dis) / sum(d['content_lines'] for d in dis):.3f}. "
                 f"Pages over 0.3 / 0.5 (reviewed): {len(bad)}" + (": " + ", ".join(
                     f"{d['id']} ({d['g_not_content']} / {d['content_not_g']})" for d in bad[:30]) if bad else ""), ""]
    return "\n".join(text)


def main(argv=None):
    import argparse

    from .build import DEFAULT_CORPORA, DEFAULT_GOLD_DEV, DEFAULT_GOLD_TRAIN

    ap = argparse.ArgumentParser(prog="python -m pagesieve.data annotate",
                                 description="Gold labels from annotators: hand out pages, check and collect answers.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("queue", help="list the pages to annotate, in order, into WORK/queue.jsonl")
    b = sub.add_parser("batch", help="write the next pages of the queue as WORK/batches/NAME.txt for an annotator")
    c = sub.add_parser("check", help="check an answer file (WORK/answers/NAME.ANNOTATOR.txt) against its batch")
    k = sub.add_parser("collect", help="all answers -> stored gold pages (line hashes + labels)")
    h = sub.add_parser("halves", help="write the gold validation pages of half A and half B (by site), with their lines")
    h.add_argument("--gold", type=Path, default=Path("data/gold/validation.jsonl.gz"))
    h.add_argument("--out", type=Path, required=True, help="folder for validation-A.jsonl and validation-B.jsonl")
    r = sub.add_parser("review", help="review batches (named r...): disagreements of double annotation, then pages "
                                      "whose labels and ground-truth hints disagree")
    r.add_argument("names", nargs="+")
    r.add_argument("--work", type=Path, required=True)
    r.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    r.add_argument("--gold", type=Path, default=Path("data/gold"))
    r.add_argument("--pages", type=int, default=8)
    r.add_argument("--max-batch-lines", type=int, default=1500)
    d = sub.add_parser("card", help="write the gold data card (GOLD/CARD.md) from the stored pages")
    d.add_argument("--gold", type=Path, default=Path("data/gold"))
    d.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    d.add_argument("--shared-train", type=Path, default=DEFAULT_GOLD_TRAIN)
    for s in (q, b, k):
        s.add_argument("--work", type=Path, required=True, help="work folder (outside the repository: it holds page text)")
        s.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    for s in (q, k):
        s.add_argument("--gold-train", type=Path, default=DEFAULT_GOLD_TRAIN, help="its sites never go to validation")
    q.add_argument("--gold-dev", type=Path, default=DEFAULT_GOLD_DEV, help="pages never handed out")
    q.add_argument("--max-lines", type=int, default=700, help="leave out longer pages")
    q.add_argument("--new-held-out", type=Path, metavar="GOLD", help="only pages of held-out sites that no gold page "
                   "in this folder has (for a test set; e.g. data/gold)")
    b.add_argument("names", nargs="+", help="batch names (letters and digits), one batch each")
    b.add_argument("--pages", type=int, default=8)
    b.add_argument("--max-batch-lines", type=int, default=1500)
    b.add_argument("--double", action="store_true", help="a second annotation of every 10th page handed out")
    c.add_argument("answer", type=Path)
    k.add_argument("--out", type=Path, required=True, help="folder for train.jsonl.gz and validation.jsonl.gz")
    k.add_argument("--test", action="store_true", help="store the pages of held-out sites as test.jsonl.gz (a test "
                   "set annotated after the models it judges), not as validation")
    args = ap.parse_args(argv)
    if args.cmd == "queue":
        queue(args.work, args.corpora, args.gold_dev, args.gold_train, args.max_lines, args.new_held_out)
    elif args.cmd == "batch":
        make_batches(args.work, args.corpora, args.names, args.pages, args.max_batch_lines, args.double)
    elif args.cmd == "check":
        errors = check(args.answer)
        print("\n".join(errors) if errors else f"{args.answer}: OK, every line of every page labeled once")
        sys.exit(1 if errors else 0)
    elif args.cmd == "review":
        make_review(args.work, args.corpora, args.names, args.pages, args.max_batch_lines, args.gold)
    elif args.cmd == "halves":
        from .pages import read_pages, write_pages

        pages = list(read_pages(args.gold))
        for half in "AB":
            n = write_pages([p for p in pages if validation_half(p["site"]) == half], args.out / f"validation-{half}.jsonl")
            print(f"{args.out / f'validation-{half}.jsonl'}: {n} pages", file=sys.stderr)
    elif args.cmd == "collect":
        collect(args.work, args.corpora, args.out, args.gold_train, args.test)
    else:
        (args.gold / "CARD.md").write_text(card(args.gold, args.corpora, args.shared_train))
        print(f"{args.gold / 'CARD.md'} written", file=sys.stderr)
