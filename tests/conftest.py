import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def tokenizer():
    from pagesieve.backbone import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised 2-layer model saved like a release (for fast predictor tests)."""
    from pagesieve import modeling

    out = tmp_path_factory.mktemp("tiny")
    model = modeling.tiny_random(encoding=dict(max_length=64, line_token_budget=8, overlap=16))
    modeling.save(model, out)
    return out


@pytest.fixture(scope="session")
def tiny_fast_dir(tmp_path_factory):
    """A randomly initialised 1-layer fast tier saved like a release, in a folder named `fast`."""
    from pagesieve import fast

    cfg = fast.FastConfig(hidden=32, layers=1, heads=2, ff=64, dropout=0.0, line_tokens=8, max_lines=16, overlap_lines=4)
    return fast.save(fast.LinePageModel(cfg, fast.word_table()), tmp_path_factory.mktemp("tiny-fast") / "fast")


@pytest.fixture(scope="session")
def test_pages():
    return [json.loads(l) for l in (DATA / "pages.jsonl").read_text().splitlines()]
