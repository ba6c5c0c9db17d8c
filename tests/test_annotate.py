"""Gold from annotators: batches handed out, answers checked and collected, stored as line hashes,
read back as labeled pages by re-rendering the corpora (a changed line loses its label, nothing else)."""
import gzip
import json

from pagesieve.data import annotate
from pagesieve.data.pages import read_pages
from test_build import make_corpus

LINES = {"Home World": "navigation", "Share": "ui_chrome", "Privacy policy": "navigation"}


def label_of(line):
    if line.startswith("Photo:"):
        return "caption"
    return LINES.get(line, "content")


def answer_for(batch_json):
    out = []
    for p in json.loads(batch_json.read_text()):
        out.append(f"## page {p['page']}")
        out += [f"{i} {lab}" for i, lab in enumerate(p["labels_for_test"], 1)]
    return "\n".join(out) + "\n"


def test_parse_answer_reports_every_slip():
    a = annotate.parse_answer("## page 1\n1-3 nav\n3 content\n## page 2 type=blog\n1 ui\n9 cap\n## page 7\n",
                              {1: 4, 2: 2})
    got, errors = a.labels, a.errors
    assert got == {}  # page 1: line 3 twice, line 4 missing; page 2: line 2 missing, 9 out of range
    text = "\n".join(errors)
    assert "line 3 labeled twice" in text and "lines without a label: 4" in text
    assert "has lines 1-2, not 9-9" in text and "no page 7" in text and "unknown page type 'blog'" in text
    a = annotate.parse_answer("## page 1 type=forum\n1-2 navigation\n3 cap  # a credit\nrule: credits are captions\n"
                              "4 ui_chrome\n", {1: 4})
    assert a.errors == [] and a.labels == {1: ["navigation", "navigation", "caption", "ui_chrome"]}
    assert a.types == {1: "forum"} and a.notes == {1: "credits are captions"}


def test_batches_check_collect_and_read_back(tmp_path, monkeypatch):
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    make_corpus(corpora)  # 8 pages c/0..c/7 on 4 sites; c/0 is gold dev, c/1 gold train
    work = tmp_path / "work"
    order = annotate.queue(work, corpora, corpora / "dev.jsonl", corpora / "train.jsonl")
    assert {it["id"] for it in order} == {f"c/{i}" for i in range(2, 8)}  # never dev or shared-train pages
    assert all(it["split"] == "train" for it in order if it["site"] == "site1.example")  # shared gold train's site

    paths = annotate.make_batches(work, corpora, ["b1", "b2"], n_pages=3, max_batch_lines=1000)
    assert [p.name for p in paths] == ["b1.txt", "b2.txt"]
    assert "=== PAGE 1" in paths[0].read_text() and "[a<nav]" in paths[0].read_text()
    double = annotate.make_batches(work, corpora, ["d1"], n_pages=5, max_batch_lines=1000, double=True)
    first = json.loads((work / "batches" / "b1.json").read_text())[0]["id"]
    assert json.loads((work / "batches" / "d1.json").read_text())[0]["id"] == first  # queue position 0

    index = annotate._corpus_index(corpora)
    (work / "answers").mkdir()
    for name, who in (("b1", "x"), ("b2", "y"), ("d1", "z")):
        meta = json.loads((work / "batches" / f"{name}.json").read_text())
        for p in meta:
            lines = [l["text"] for l in annotate.hinted_lines(index[p["id"]])]
            p["labels_for_test"] = [label_of(l) for l in lines]
            if who == "z":  # the second annotator disagrees on the first line
                p["labels_for_test"][0] = "ui_chrome"
        (work / "batches" / f"{name}.json").write_text(json.dumps(meta))
        (work / "answers" / f"{name}.{who}.txt").write_text(answer_for(work / "batches" / f"{name}.json"))
        assert annotate.check(work / "answers" / f"{name}.{who}.txt") == []
    bad = work / "answers" / "b2.w.txt"
    bad.write_text("## page 1\n1 content\n")
    assert annotate.check(bad) and bad.unlink() is None

    (work / "answers" / "d1.x.txt").write_text((work / "answers" / "b1.x.txt").read_text())  # x again: not independent
    annotate.collect(work, corpora, tmp_path / "gold", corpora / "train.jsonl")
    stored = [p for f in ("train", "validation") for p in annotate._read_stored(annotate.gold_file(tmp_path / "gold", f))]
    assert len(stored) == 6 and all("lines" not in p and len(p["line_hashes"]) == len(p["labels"]) for p in stored)
    doubled = [p for p in stored if "labels_b" in p]
    assert len(doubled) == 1 and doubled[0]["labels_b"][0] == "ui_chrome" != doubled[0]["labels_a"][0]
    assert doubled[0]["annotator_b"] == "z"
    ag = annotate.agreement(stored)
    assert ag["pages"] == 1 and ag["accuracy"] < 1

    # read back through the ordinary reader: lines come from the corpora, labels line up
    monkeypatch.setenv("PAGESIEVE_CORPORA", str(corpora))
    pages = {p["id"]: p for f in ("train", "validation") for p in read_pages(annotate.gold_file(tmp_path / "gold", f))}
    assert len(pages) == 6
    for p in pages.values():
        assert [label_of(l) for l in p["lines"]] == p["labels"]

    # a review batch shows the disagreement; the reviewer's labels and rule win, the answers stay for agreement
    (paths,) = annotate.make_review(work, corpora, ["r1"], 5, 1000, tmp_path / "gold")
    assert "<<<" in paths.read_text() and "current labels of page 1" in paths.read_text()
    meta = json.loads((work / "batches" / "r1.json").read_text())
    assert [m["id"] for m in meta] == [doubled[0]["id"]]
    final = list(doubled[0]["labels_a"])
    final[0] = "ui_chrome"
    (work / "answers" / "r1.rev.txt").write_text("## page 1\nrule: the top line is a button\n" +
                                                  "\n".join(annotate._as_ranges(final)) + "\n")
    assert annotate.check(work / "answers" / "r1.rev.txt") == []
    annotate.collect(work, corpora, tmp_path / "gold", corpora / "train.jsonl")
    stored = [p for f in ("train", "validation") for p in annotate._read_stored(annotate.gold_file(tmp_path / "gold", f))]
    rev = next(p for p in stored if p["id"] == doubled[0]["id"])
    assert rev["labels"] == final and rev["reviewer"] == "rev" and rev["review_rule"] == "the top line is a button"
    assert rev["labels_before_review"] == rev["labels_a"] and annotate.agreement(stored) == ag

    # the corpus page changes (a renderer or a page update): changed lines lose their labels only
    recs = [json.loads(l) for l in gzip.open(corpora / "tiny.jsonl.gz", "rt") if l.startswith("{\"")]
    for r in recs:
        r["html"] = r["html"].replace("<button>Share</button>", "<button>Share this</button>")
    with gzip.open(corpora / "tiny.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in recs))
    again = {p["id"]: p for f in ("train", "validation") for p in read_pages(annotate.gold_file(tmp_path / "gold", f))}
    pages[rev["id"]]["labels"] = rev["labels"]
    for pid, p in again.items():
        assert [l for l, lab in zip(p["lines"], p["labels"]) if lab is None] == ["Share this"]
        assert [lab for l, lab in zip(p["lines"], p["labels"]) if lab] == \
               [lab for l, lab in zip(pages[pid]["lines"], pages[pid]["labels"]) if l != "Share"]


def test_site_split_is_stable_and_keeps_shared_train_sites():
    sites = [f"site{i}.example" for i in range(400)]
    split = [annotate.site_split(s, "ru", set()) for s in sites]
    assert split == [annotate.site_split(s, "ru", set()) for s in sites]
    assert 0.15 < split.count("validation") / len(sites) < 0.35
    assert annotate.site_split(sites[split.index("validation")], "ru", {sites[split.index("validation")]}) == "train"


def test_a_test_set_takes_only_new_held_out_sites(tmp_path, monkeypatch):
    corpora = tmp_path / "corpora"
    corpora.mkdir()
    make_corpus(corpora)  # c/0..c/7 on site0..site3 (c/i on site i % 4); c/0 gold dev, c/1 gold train
    held_out = {"site2.example", "site3.example"}
    monkeypatch.setattr(annotate, "site_split", lambda site, lang, train_sites: "validation" if site in held_out else "train")
    gold = tmp_path / "gold"
    gold.mkdir()
    with gzip.open(annotate.gold_file(gold, "validation"), "wt") as fh:  # site3 already has a gold page
        fh.write(json.dumps({"id": "c/3", "site": "site3.example", "labels": []}) + "\n")
    work = tmp_path / "work"
    whole = annotate.queue(work, corpora, corpora / "dev.jsonl", corpora / "train.jsonl")
    order = annotate.queue(work, corpora, corpora / "dev.jsonl", corpora / "train.jsonl", new_held_out=gold)
    assert sorted(it["id"] for it in order) == ["c/2", "c/6"]  # not site3 (gold), not train sites
    assert order == [it for it in whole if it["site"] == "site2.example"]  # in the whole queue's order

    annotate.make_batches(work, corpora, ["t1"], n_pages=5, max_batch_lines=1000)
    index = annotate._corpus_index(corpora)
    meta = json.loads((work / "batches" / "t1.json").read_text())
    for p in meta:
        p["labels_for_test"] = [label_of(l["text"]) for l in annotate.hinted_lines(index[p["id"]])]
    (work / "batches" / "t1.json").write_text(json.dumps(meta))
    (work / "answers").mkdir()
    (work / "answers" / "t1.x.txt").write_text(answer_for(work / "batches" / "t1.json"))
    out = tmp_path / "out"
    annotate.collect(work, corpora, out, corpora / "train.jsonl", test=True)
    stored = annotate._read_stored(annotate.gold_file(out, "test"))
    assert sorted(p["id"] for p in stored) == ["c/2", "c/6"] and {p["split"] for p in stored} == {"test"}
    assert not annotate.gold_file(out, "validation").exists()
    with gzip.open(annotate.gold_file(out, "validation"), "wt") as fh:
        fh.write("")
    card = annotate.card(out, corpora, corpora / "train.jsonl")
    assert "Test: 2 pages of 1 held-out sites" in card and "| label | train lines | validation lines | test lines |" in card
