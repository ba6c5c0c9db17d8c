"""The cascade (pagesieve/cascade.py): the fast tier everywhere, the base model on the lines it is unsure of.
Tiny random-init models: what is checked is which model's probabilities each line gets, not accuracy."""
import json

import numpy as np
import pytest

# 12 tokens a line against the tiny base model's 8 (the released pair: 32 and 24): the base model takes the first 8
TINY_FAST = {"hidden": 32, "layers": 1, "heads": 2, "ff": 64, "dropout": 0.0, "line_tokens": 12, "max_lines": 16,
             "overlap_lines": 4}


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_dir):
    """A folder holding a tiny base model, a random fast tier in fast/ and cascade configs beside them."""
    import shutil

    import torch
    from pagesieve import fast

    root = tmp_path_factory.mktemp("cascade")
    shutil.copytree(tiny_model_dir, root / "base")
    torch.manual_seed(0)
    fast.save(fast.LinePageModel(fast.FastConfig(**TINY_FAST), fast.word_table()), root / "fast")
    return root


def cascade_dir(root, name, **settings):
    conf = {"pagesieve_arch": "cascade", "fast": "../fast", "base": "../base", "threshold": 0.5, "context_lines": 1,
            "context_tokens": 0, **settings}
    (root / name).mkdir(exist_ok=True)
    (root / name / "config.json").write_text(json.dumps(conf))
    return root / name


def test_unsure_runs_cover_each_unsure_line_with_its_context():
    from pagesieve.cascade import unsure_runs

    unsure = np.zeros(12, dtype=bool)
    unsure[[2, 3, 9]] = True
    assert unsure_runs(unsure, 0) == [(2, 4), (9, 10)]
    assert unsure_runs(unsure, 1) == [(1, 5), (8, 11)]
    assert unsure_runs(unsure, 3) == [(0, 12)]  # runs that touch are one; clipped at the page's ends
    assert unsure_runs(np.zeros(5, dtype=bool), 2) == []


def test_sure_lines_keep_the_fast_tier_and_unsure_ones_take_the_base_model(models, test_pages):
    from pagesieve import Predictor
    from pagesieve.cascade import CascadePredictor, unsure_runs

    pages = [t["lines"] for t in test_pages]
    fast = Predictor.from_pretrained(models / "fast")
    base = Predictor.from_pretrained(models / "base")
    fast_probs = [p for _, p in fast.line_probs(pages)]
    base_probs = [p for _, p in base.line_probs(pages)]

    never = Predictor.from_pretrained(cascade_dir(models, "never", threshold=0.0))
    assert isinstance(never, CascadePredictor)
    for (_, c), f in zip(never.line_probs(pages), fast_probs):
        np.testing.assert_array_equal(c, f)

    # every line unsure: one run per page, the whole page, read by the base model as it reads it alone
    always = Predictor.from_pretrained(cascade_dir(models, "always", threshold=1.01, context_tokens=2))
    for (_, c), b in zip(always.line_probs(pages), base_probs):
        np.testing.assert_allclose(c, b, atol=1e-5)

    threshold = float(np.median(np.concatenate([f.max(1) for f in fast_probs])))  # about half the lines unsure
    some = Predictor.from_pretrained(cascade_dir(models, "some", threshold=threshold, context_lines=1))
    seen = []
    base_probs_of = some.base.probs
    some.base.probs = lambda segments, *a: seen.extend(segments) or base_probs_of(segments, *a)
    mixed = 0
    for page, (_, c), f in zip(pages, some.line_probs(pages), fast_probs):
        unsure = f.max(1) < threshold
        np.testing.assert_array_equal(c[~unsure], f[~unsure])
        mixed += unsure.any() and not unsure.all()
        kept = [i for i, line in enumerate(page) if line.strip()]
        for start, end in unsure_runs(unsure, 1):  # each run read alone by the base model, as a page of its own
            alone = base.line_probs([[page[i] for i in kept[start:end]]])[0][1]
            np.testing.assert_allclose(c[start:end][unsure[start:end]], alone[unsure[start:end]], atol=1e-5)
    assert mixed  # pages with both kinds of lines
    lines_read = sum(len(w.label_positions) for s in seen for w in s.windows)
    assert lines_read < sum(map(len, fast_probs))  # the base model read part of the pages only

    cut = Predictor.from_pretrained(cascade_dir(models, "cut", threshold=threshold, context_lines=1, context_tokens=1))
    differ = [not np.allclose(a, b, atol=1e-4) for (_, a), (_, b) in zip(cut.line_probs(pages), some.line_probs(pages))]
    assert any(differ)  # context lines cut to their first token: the base model sees less of them


def test_a_page_gets_the_same_labels_alone_or_among_others(models, test_pages):
    from pagesieve import Predictor

    pages = [t["lines"] for t in test_pages]
    p = Predictor.from_pretrained(cascade_dir(models, "batch", threshold=0.45, context_lines=2, context_tokens=3))
    together = [probs for _, probs in p.line_probs(pages, batch_size=4)]
    for page, probs in zip(pages, together):
        np.testing.assert_allclose(p.line_probs([page], batch_size=1)[0][1], probs, atol=1e-5)


def test_a_dump_runs_the_fast_tier_in_its_reading_thread_and_labels_as_the_api_does(models, test_pages, tmp_path):
    import threading

    from pagesieve import Predictor
    from pagesieve.dump import predict_dump

    pages = [t["lines"] for t in test_pages]
    fast = Predictor.from_pretrained(models / "fast")
    top = np.concatenate([f.max(1) for _, f in fast.line_probs(pages)])
    threshold = float(np.median(top))  # about half the lines unsure: the base model's probabilities go in too
    assert 0 < (top < threshold).mean() < 1
    p = Predictor.from_pretrained(cascade_dir(models, "dump", threshold=threshold, context_lines=1, context_tokens=3))
    threads, fast_probs = [], p.fast.probs

    def fast_tier(*args):
        threads.append(threading.current_thread())
        return fast_probs(*args)

    p.fast.probs = fast_tier
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "text": "\n".join(t["lines"])}) + "\n" for i, t in enumerate(test_pages)))
    predict_dump([str(src)], str(tmp_path / "out.jsonl"), predictor=p, progress=False, with_probs=True)
    assert threads and all(t is not threading.main_thread() for t in threads)  # not after the base model: beside it
    rows = [json.loads(l) for l in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == len(pages)
    for row, (_, probs) in zip(rows, p.line_probs(pages)):
        np.testing.assert_allclose([line for line in row["probs"] if line is not None], probs, atol=1e-4)  # rounded


def test_settings_are_part_of_a_dumps_identity_and_bad_ones_are_refused(models):
    import torch
    from pagesieve import Predictor, fast
    from pagesieve.dump import model_identity

    a = model_identity(Predictor.from_pretrained(cascade_dir(models, "a", threshold=0.5)))
    b = model_identity(Predictor.from_pretrained(cascade_dir(models, "b", threshold=0.6)))
    assert a["model"] != b["model"] and a["runtime"] == b["runtime"] == "torch cpu torch.float32 + torch cpu torch.float32"
    with pytest.raises(ValueError, match="threshold must be a number"):
        Predictor.from_pretrained(cascade_dir(models, "bad", threshold="high"))
    with pytest.raises(ValueError, match="context_lines must be a number ≥ 0 \\(whole\\)"):
        Predictor.from_pretrained(cascade_dir(models, "bad", context_lines=1.5))
    with pytest.raises(ValueError, match='needs "base"'):
        Predictor.from_pretrained(cascade_dir(models, "bad", base=None))
    with pytest.raises(ValueError, match='"fast" must be a fast tier, not a base'):
        Predictor.from_pretrained(cascade_dir(models, "bad", fast="../base", base="../fast"))
    torch.manual_seed(0)
    fast.save(fast.LinePageModel(fast.FastConfig(**dict(TINY_FAST, line_tokens=6)), fast.word_table()), models / "short")
    with pytest.raises(ValueError, match="reads 8 tokens of a line, the fast tier only 6"):
        Predictor.from_pretrained(cascade_dir(models, "bad", fast="../short"))
    with pytest.raises(ValueError, match="unknown runtime"):
        Predictor.from_pretrained(cascade_dir(models, "bad"), runtime="torch+tensorrt")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Predictor.from_pretrained(cascade_dir(models, "a")).predict_many([["a line"]], batch_size=-1)


def test_cli_labels_with_a_cascade_and_each_model_takes_its_runtime(models, tmp_path, capsys):
    from pagesieve import Predictor
    from pagesieve.cli import main
    from pagesieve.dump import model_identity

    folder = cascade_dir(models, "cli")
    page = tmp_path / "page.txt"
    page.write_text("Home\nNews\nA headline of the piece\nThe body of the piece goes on.\nSubscribe\n")
    assert main(["label", str(page), "--model", str(folder), "--format", "jsonl"]) == 0
    rows = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["line"] for r in rows] == [0, 1, 2, 3, 4] and all(r["label"] in r["probs"] for r in rows)
    import torch

    p = Predictor.from_pretrained(folder, runtime="torch-bf16")  # both models have it
    assert (p.fast.runtime, p.base.model.dtype) == ("torch-bf16", torch.bfloat16)
    p = Predictor.from_pretrained(folder, runtime="torch-int8")  # the base model's only: the fast tier on its auto
    assert p.fast.runtime in ("torch", "torch-bf16") and "int8" in model_identity(p)["runtime"]
    p = Predictor.from_pretrained(folder, runtime="torch+torch-int8")  # one for each
    assert p.fast.runtime == "torch" and model_identity(p)["runtime"].startswith("torch cpu torch.float32 + torch-int8")
    page.write_text("a line\n")
    with pytest.raises(SystemExit) as e:  # argparse's one line
        main(["label", str(page), "--model", str(folder), "--runtime", "torch+nope"])
    assert e.value.code == 2 and "FAST+BASE" in capsys.readouterr().err


def test_unsure_tokens_and_overlap_tokens_cut_what_the_base_model_reads(models, test_pages):
    from pagesieve import Predictor
    from pagesieve.dump import model_identity

    pages = [t["lines"] * 3 for t in test_pages]  # long pages: runs longer than one of the tiny model's windows

    def read(**settings):
        p = Predictor.from_pretrained(cascade_dir(models, "read", threshold=1.01, context_lines=1, **settings))
        seen, probs_of = [], p.base.probs
        p.base.probs = lambda segments, *a: seen.extend(segments) or probs_of(segments, *a)
        p.line_probs(pages)
        return seen, model_identity(p)

    def lines_in(window):  # tokens of each line: from its first token to the next line's (or </s>)
        ends = window.label_positions[1:] + [len(window.input_ids) - 1]
        return [e - s for s, e in zip(window.label_positions, ends)]

    full, identity = read()
    assert max(n for s in full for w in s.windows for n in lines_in(w)) == 8  # the tiny base model's budget
    short, short_identity = read(unsure_tokens=3)
    assert max(n for s in short for w in s.windows for n in lines_in(w)) == 3
    assert read(unsure_tokens=0, overlap_tokens=16)[1] == identity != short_identity  # 0 and 16: the defaults
    assert read(unsure_tokens=8)[1] == read(unsure_tokens=99)[1] == identity  # all of the 8 it reads: the default

    def shared(segments):  # lines read in two windows of one run
        return sum(len(set(a.line_ids) & set(b.line_ids)) for s in segments for a, b in zip(s.windows, s.windows[1:]))

    assert shared(full) > 0  # the base model's own overlap: 16 tokens
    assert shared(read(overlap_tokens=0)[0]) == 0
    assert read(overlap_tokens=10**6)[1] == read(overlap_tokens=31)[1]  # at most half a window (62 tokens) either way
    with pytest.raises(ValueError, match="overlap_tokens must be a number"):
        read(overlap_tokens=-1)
    with pytest.raises(ValueError, match="unknown setting\\(s\\) overlap: a cascade has"):
        read(overlap=0)


def test_a_threshold_for_each_label_the_fast_tier_gives(models, test_pages):
    from pagesieve import Predictor
    from pagesieve.cascade import CascadePredictor
    from pagesieve.dump import model_identity

    pages = [t["lines"] for t in test_pages]
    fast = Predictor.from_pretrained(models / "fast")
    fast_probs = [p for _, p in fast.line_probs(pages)]
    # content lines: never unsure; every other line: always
    p = Predictor.from_pretrained(cascade_dir(models, "per_label", context_lines=0, threshold={
        "content": 0.0, "caption": 1.01, "navigation": 1.01, "ui_chrome": 1.01}))
    some = 0
    for (_, c), f in zip(p.line_probs(pages), fast_probs):
        content = f.argmax(1) == fast.labels.index("content")
        np.testing.assert_array_equal(c[content], f[content])
        assert not np.allclose(c[~content], f[~content], atol=1e-4) or not (~content).any()
        some += content.any() and (~content).any()
    assert some
    same = dict.fromkeys(fast.labels, 0.6)
    a = Predictor.from_pretrained(cascade_dir(models, "one", threshold=0.6)).line_probs(pages)
    b = Predictor.from_pretrained(cascade_dir(models, "each", threshold=same)).line_probs(pages)
    for (_, x), (_, y) in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert model_identity(Predictor.from_pretrained(cascade_dir(models, "each", threshold=same))) == \
        model_identity(Predictor.from_pretrained(cascade_dir(models, "one", threshold=0.6)))  # they act alike
    with pytest.raises(ValueError, match="threshold must name each label once .*, not content"):
        Predictor.from_pretrained(cascade_dir(models, "bad", threshold={"content": 0.5}))
    for value in ("high", True, -0.1):
        with pytest.raises(ValueError, match="threshold must be a number ≥ 0 or one per label"):
            Predictor.from_pretrained(cascade_dir(models, "bad", threshold={**same, "caption": value}))
    with pytest.raises(ValueError, match="threshold must name each label once"):  # refused without a config too
        CascadePredictor(fast, fast, {"content": 0.5}, 1, 0)


def test_cascade_probe_splits_the_base_models_tokens_into_unsure_and_context_lines(models, test_pages):
    """benchmarks/cascade_probe.py's split: without window overlap, the base model's tokens are the unsure lines'
    own, their context lines' and each window's <s> and </s>, nothing else."""
    import importlib.util

    from conftest import ROOT
    from pagesieve import Predictor

    spec = importlib.util.spec_from_file_location("cascade_probe", ROOT / "benchmarks" / "cascade_probe.py")
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    pages = [t["lines"] for t in test_pages]
    fast = Predictor.from_pretrained(models / "fast")
    encoded = fast.encode(pages)
    fast_probs = fast.probs(encoded)
    middle = float(np.median(np.concatenate(fast_probs).max(1)))  # half the lines unsure: runs with context lines
    cascade = Predictor.from_pretrained(cascade_dir(models, "split", threshold=middle, context_tokens=3,
                                                    overlap_tokens=0))
    read = []
    base_probs = cascade.base.probs
    cascade.base.probs = lambda segments, *a: read.extend(segments) or base_probs(segments, *a)
    cascade.probs(encoded, ahead=fast_probs)
    windows = [w for s in read for w in s.windows]
    own, context = probe.line_tokens(cascade, encoded, fast_probs)
    assert own > 0 and context > 0  # the check can fail: some lines are unsure, some are context
    assert own + context + 2 * len(windows) == sum(len(w.input_ids) for w in windows)
    none = Predictor.from_pretrained(cascade_dir(models, "split-none", threshold=0.0, overlap_tokens=0))
    assert probe.line_tokens(none, encoded, fast_probs) == (0, 0)
