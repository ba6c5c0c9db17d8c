"""The project's gold in data/gold/: well formed, never overlapping the shared dev pages or sites
across splits, and still matching what the project's renderer makes of the corpora's HTML (a renderer
change that moves lines shows up here, not as silently misaligned training labels)."""
import json
import random
from pathlib import Path

import pytest

from conftest import ROOT, SHARED
from pagesieve.data.annotate import _read_stored, gold_file
from pagesieve.labels import LABELS

GOLD = ROOT / "data" / "gold"
STORED = {s: _read_stored(gold_file(GOLD, s)) for s in ("train", "validation")}


def test_stored_gold_is_well_formed_and_split_by_site():
    for split, pages in STORED.items():
        for p in pages:
            assert p["split"] == split and "lines" not in p  # no page text in the repository
            assert len(p["line_hashes"]) == len(p["labels"]) and set(p["labels"]) <= set(LABELS)
            for k in ("labels_a", "labels_b", "labels_before_review"):
                assert k not in p or len(p[k]) == len(p["labels"])
    ids = [p["id"] for ps in STORED.values() for p in ps]
    assert len(ids) == len(set(ids))
    assert not {p["site"] for p in STORED["train"]} & {p["site"] for p in STORED["validation"]}


@pytest.mark.skipif(not (SHARED / "gold" / "dev.jsonl").exists(), reason="../shared is not beside this checkout")
def test_gold_never_holds_dev_pages_and_validation_sites_never_train():
    from pagesieve.data.pages import site_of

    dev = {json.loads(l)["id"] for l in (SHARED / "gold" / "dev.jsonl").read_text().splitlines()}
    shared_train = [json.loads(l) for l in (SHARED / "gold" / "train.jsonl").read_text().splitlines()]
    assert not dev & {p["id"] for ps in STORED.values() for p in ps}
    assert not {site_of(p) for p in shared_train} & {p["site"] for p in STORED["validation"]}


@pytest.mark.skipif(not (SHARED / "corpora").exists(), reason="../shared/data/corpora is not beside this checkout")
def test_a_sample_of_gold_pages_renders_to_the_stored_lines():
    from pagesieve.data.annotate import resolve

    sample = random.Random(0).sample(STORED["train"] + STORED["validation"], 60)
    pages = resolve(sample, SHARED / "corpora")
    assert len(pages) == len(sample)
    for stored, page in zip(sample, pages):
        assert None not in page["labels"], stored["id"]  # every line hash matched
        assert page["labels"] == stored["labels"]
