"""`python -m pagesieve.data build` on a tiny hand-written corpus: splits by site, keeps gold dev
pages out, uses gold train labels, reports rejects, deterministic for a seed."""
import gzip
import json

from pagesieve.data.build import build
from pagesieve.data.pages import read_pages


def page_html(i, lang="en"):
    return (f"<html lang='{lang}'><body><nav><a href='/'>Home</a><a href='/w'>World</a></nav>"
            f"<h1>Headline number {i}</h1><figure><figcaption>Photo: Agency {i}</figcaption></figure>"
            f"<p>The first paragraph of story {i} tells what happened on Monday in the city.</p>"
            f"<p>A second paragraph of story {i} adds the reaction of the officials.</p>"
            f"<button>Share</button><footer><a href='/p'>Privacy policy</a></footer></body></html>")


def make_corpus(d):
    recs = []
    for i in range(8):
        recs.append({"id": f"c/{i}", "url": f"https://site{i % 4}.example/a/{i}", "lang": "en", "html": page_html(i),
                     "main_text": f"Headline number {i}\nThe first paragraph of story {i} tells what happened on Monday "
                                  f"in the city.\nA second paragraph of story {i} adds the reaction of the officials.",
                     "captions": [f"Photo: Agency {i}"]})
    recs.append({"id": "c/bad", "url": "https://x.example/1", "html": ""})
    recs.append({"id": "c/plain", "url": "https://x.example/2", "html": "just text, no markup"})
    with gzip.open(d / "tiny.jsonl.gz", "wt") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
        fh.write("{broken json\n")
    gold = lambda i: {"id": f"c/{i}", "lang": "en", "url": f"https://site{i % 4}.example/a/{i}",
                      "lines": ["Home World", f"Headline number {i}"], "labels": ["navigation", "content"]}
    (d / "dev.jsonl").write_text(json.dumps(gold(0)) + "\n")
    (d / "train.jsonl").write_text(json.dumps(gold(1)) + "\n")


def rows(out):
    return [p for split in ("train", "validation") for p in read_pages(out / "dataset", split=split)]


def test_build_end_to_end(tmp_path):
    make_corpus(tmp_path)
    kw = dict(corpora=tmp_path, gold_train=tmp_path / "train.jsonl", gold_dev=tmp_path / "dev.jsonl",
              seed=3, validation_fraction=0.25, workers=1)
    build(tmp_path / "a", **kw)
    build(tmp_path / "b", **kw)
    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert a == b  # deterministic
    ids = {p["id"].split("#")[0] for p in a}
    assert "c/0" not in ids  # gold dev page never built
    gold_page = next(p for p in a if p["id"] == "c/1")
    assert gold_page["labels"] == ["navigation", "content"] and gold_page["evidence"] == ["gold", "gold"]
    assert any(p["id"].startswith("c/1#") for p in a)  # one more rendering of the gold page
    assert {p["renderer"] for p in a} >= {"innertext", "chromium-innertext"}
    weak = next(p for p in a if p["renderer"] == "innertext" and "#" not in p["id"])
    lab = dict(zip(weak["lines"], weak["labels"]))
    n = weak["id"].split("/")[1]
    assert lab[f"Headline number {n}"] == "content" and lab["Share"] == "ui_chrome"
    assert lab["HomeWorld"] == "navigation" and lab[f"Photo: Agency {n}"] == "caption"
    train_sites = {p["site"] for p in read_pages(tmp_path / "a" / "dataset", split="train")}
    val_sites = {p["site"] for p in read_pages(tmp_path / "a" / "dataset", split="validation")}
    assert val_sites and not train_sites & val_sites
    rejects = [json.loads(l) for l in (tmp_path / "a" / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert reasons["c/bad"] == "no HTML" and "not HTML" in reasons["c/plain"]
    assert any("bad JSON" in r for r in reasons.values())
    card = (tmp_path / "a" / "README.md").read_text()
    assert "Per language" in card and "Weak labels against the gold dev pages" in card


def test_build_leaves_out_the_gold_validation_sites(tmp_path, monkeypatch):
    from pagesieve.data import annotate

    make_corpus(tmp_path)  # sites site0..site3.example, two pages each
    monkeypatch.setattr(annotate, "site_split", lambda site, lang, train_sites: "validation" if site == "site2.example"
                        else "train")
    kw = dict(corpora=tmp_path, gold_train=[tmp_path / "train.jsonl"], gold_dev=tmp_path / "dev.jsonl", seed=3,
              workers=1, validation_fraction=0.5)
    build(tmp_path / "out", **kw)
    ids = {p["id"].split("#")[0] for p in rows(tmp_path / "out")}
    assert "c/2" not in ids and "c/6" not in ids  # both pages of site2
    assert {"c/3", "c/4", "c/5", "c/7"} <= ids
    build(tmp_path / "all", hold_out_validation_sites=False, **kw)
    assert {"c/2", "c/6"} <= {p["id"].split("#")[0] for p in rows(tmp_path / "all")}
