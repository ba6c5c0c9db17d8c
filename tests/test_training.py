"""train.py with the tiny config: trains, evaluates, saves, resumes; config errors are clear."""
import json
import subprocess
import sys

import pytest

from pagesieve.training import TrainConfig, _arch, glue_lines, split_by_site, training_and_validation_pages

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_tiny_training_run_and_resume(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", "--config", "configs/tiny.yaml", "--set", f"out={out}",
           "--set", f"release={tmp_path / 'released'}"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "result.json").read_text())
    assert "eval_macro_f1" in res["validation"]
    assert (tmp_path / "released" / "model.safetensors").exists()
    from pagesieve.data import read_pages

    held_out = list(read_pages(out / "validation.jsonl"))  # the pages that chose the model, for `evaluate`
    assert held_out and all(p["labels"] for p in held_out)
    assert len(held_out) == int(__import__("re").search(r"(\d+) validation pages", r.stderr).group(1))
    from pagesieve.predictor import Predictor

    p = Predictor.from_pretrained(tmp_path / "released", device="cpu")
    assert len(p.predict("Home\nText")) == 2
    # the same command again resumes from the last checkpoint instead of starting over
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "resuming from" in r.stderr
    # a second stage from that checkpoint with other windows saves the windows it trained on
    # (distilling the first model into it: the teacher runs on every training page)
    r = subprocess.run([sys.executable, "train.py", "--config", "configs/tiny.yaml", "--set", f"out={tmp_path / 'stage2'}",
                        "--set", f"init={tmp_path / 'released'}", "--set", "max_length=96", "--set", "epochs=1",
                        "--set", f"teacher={tmp_path / 'released'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "distilling" in r.stderr, r.stderr[-3000:]
    assert (tmp_path / "stage2" / "teacher_probs.npz").exists()
    saved = json.loads((tmp_path / "stage2" / "best" / "config.json").read_text())["pagesieve"]
    assert saved["max_length"] == 96 and saved["line_token_budget"] == 16


def test_config_overrides_and_errors(tmp_path):
    cfg = TrainConfig.load(str(ROOT / "configs/tiny.yaml"), ["lr=1e-4", "epochs=3", "bf16=true", "train=[a.jsonl,b.jsonl*2]"])
    assert cfg.lr == 1e-4 and cfg.epochs == 3.0 and cfg.bf16 is True and cfg.train == ["a.jsonl", "b.jsonl*2"]
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.load(None, ["learning_rate=1"])
    with pytest.raises(ValueError, match="validate_on"):
        TrainConfig.load(None, ["train=[a.jsonl*2]", "validate_on=[b.jsonl]"])
    assert TrainConfig.load(None, ["train=[a.jsonl*2]", "validate_on=a.jsonl"]).validate_on == ["a.jsonl"]
    with pytest.raises(ValueError, match="number"):
        TrainConfig.load(None, ["lr=fast"])
    r = subprocess.run([sys.executable, "train.py", "--set", "nope=1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown field" in r.stderr


def test_freeze_layers_applies_to_a_checkpoint_init_too(tiny_model_dir):
    from pagesieve.training import build_model

    model = build_model(TrainConfig(init=str(tiny_model_dir), num_layers=2, freeze_layers=1,
                                    max_length=96, line_token_budget=16, overlap=16))
    first, second = model.bert.encoder.layer
    assert not any(p.requires_grad for p in first.parameters())
    assert all(p.requires_grad for p in second.parameters())
    with pytest.raises(ValueError, match="freeze_layers=3"):
        build_model(TrainConfig(init=str(tiny_model_dir), num_layers=2, freeze_layers=3))


def test_init_layers_pick_a_checkpoints_layers(tiny_model_dir):
    import torch

    from pagesieve import modeling
    from pagesieve.training import build_model

    teacher = modeling.load(tiny_model_dir)
    enc = dict(max_length=64, line_token_budget=8, overlap=16)
    student = build_model(TrainConfig(init=str(tiny_model_dir), num_layers=1, init_layers=[1], **enc))
    assert student.config.num_hidden_layers == 1 and len(student.bert.encoder.layer) == 1
    assert torch.equal(student.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[1].output.dense.weight)
    lowest = build_model(TrainConfig(init=str(tiny_model_dir), num_layers=1, **enc))
    assert torch.equal(lowest.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[0].output.dense.weight)
    for bad, match in (([1, 0], "increasing"), ([2], "increasing"), ([0, 1], "num_layers is 1")):
        with pytest.raises(ValueError, match=match):
            build_model(TrainConfig(init=str(tiny_model_dir), num_layers=1, init_layers=bad, **enc))
    with pytest.raises(ValueError, match="checkpoint"):
        TrainConfig.load(None, ["init_layers=[0]"])


def test_all_configs_parse():
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert {c.stem for c in configs} >= {"cpu", "cpu-finetune", "gpu", "gpu-finetune", "tiny"}
    for path in configs:
        if _arch(str(path), []) == "line-page":
            from pagesieve.fast import FastTrainConfig

            FastTrainConfig.load(str(path))
        else:
            TrainConfig.load(str(path))


def test_fast_config_reads_like_the_base_config():
    from pagesieve.fast import FastTrainConfig

    cfg = FastTrainConfig.load(str(ROOT / "configs/fast.yaml"), ["lr=1e-4", "epochs=3", "train=a.jsonl"])
    assert (cfg.lr, cfg.epochs, cfg.train) == (1e-4, 3, ["a.jsonl"]) and isinstance(cfg.lr, float)
    with pytest.raises(ValueError, match="unknown field"):
        FastTrainConfig.load(None, ["learning_rate=1"])
    with pytest.raises(ValueError, match="expected a number"):
        FastTrainConfig.load(None, ["lr=fast"])


def test_split_by_site_is_stable(test_pages):
    a_keep, a_held = split_by_site(test_pages, 0.34, 1)
    b_keep, b_held = split_by_site(test_pages + [{"url": "https://other.example/x", "lines": [], "labels": []}], 0.34, 1)
    assert [p["id"] for p in a_held] == [p["id"] for p in b_held if "id" in p]
    sites = lambda ps: {p["url"].split("/")[2] for p in ps}
    assert not sites(a_keep) & sites(a_held)


def test_split_seed_keeps_the_validation_pages_when_the_seed_changes():
    """Training noise is measured by changing `seed` alone: the validation sites stay put."""
    data = str(ROOT / "tests/data/pages.jsonl")
    ids = lambda pages: sorted(p["id"] for p in pages)
    held = {}
    for seed, split_seed in [(1, None), (2, None), (2, 1)]:
        cfg = TrainConfig.load(None, [f"train=[{data}]", "validation_fraction=0.5", f"seed={seed}",
                                      f"split_seed={split_seed if split_seed is not None else 'null'}"])
        train, val = training_and_validation_pages(cfg)
        assert val and not set(ids(train)) & set(ids(val))
        held[seed, split_seed] = ids(val)
    assert held[2, 1] == held[1, None]
    assert held[2, None] != held[1, None]  # the default: the seed moves the held-out sites too


def test_teacher_probabilities_sit_on_each_line_first_token(tokenizer, test_pages):
    """Distillation targets must land on the token that carries the same line's label."""
    import numpy as np

    from pagesieve.encoding import EncodedPage, PageEncoder
    from pagesieve.labels import IGNORE, LABEL2ID
    from pagesieve.training import WindowDataset, collate, teacher_probs

    class OneHotTeacher:  # a Predictor that "predicts" each line's gold label
        def line_probs(self, pages):
            by_lines = {tuple(p["lines"]): p["labels"] for p in test_pages}
            out = []
            for lines in pages:
                kept = [i for i, line in enumerate(lines) if line.strip()]
                gold = by_lines[tuple(lines)]
                out.append((EncodedPage(len(lines), kept), np.eye(4)[[LABEL2ID[gold[i]] for i in kept]]))
            return out

    ds = WindowDataset(test_pages, PageEncoder(tokenizer, 64, 8, 16),
                       teacher=lambda pages: teacher_probs(OneHotTeacher(), pages, chunk=2))
    assert len(ds) > len(test_pages)  # several windows per page: the overlap paths are exercised
    batch = collate([ds[i] for i in range(len(ds))])
    labels, soft = batch["labels"], batch["soft"]
    on = labels != IGNORE
    assert (soft[on].argmax(-1) == labels[on]).all() and (soft[on].sum(-1) == 1).all()
    assert (soft[~on] == 0).all()


def test_glue_lines_keeps_labels_aligned():
    import random

    lines, labels = glue_lines(["a", "b", "c", "d"], ["nav", "nav", "content", "nav"], random.Random(0))
    assert len(lines) == len(labels) and "".join(lines) == "abcd"


def test_pagesieve_train_is_train_py():
    r = subprocess.run([sys.executable, "-m", "pagesieve", "train", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--config" in r.stdout


def test_teacher_probabilities_are_cached_for_a_resumed_run(tiny_model_dir, test_pages, tmp_path, capsys):
    import numpy as np

    from pagesieve.training import cached_teacher

    pages = [p["lines"] for p in test_pages]
    run = cached_teacher(str(tiny_model_dir), tmp_path / "teacher_probs.npz")
    first = run(pages)
    assert [len(a) for a in first] == [len(p) for p in pages]
    capsys.readouterr()
    again = run(pages)
    assert "teacher probabilities from" in capsys.readouterr().err
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    run(pages[:-1])  # other pages: computed afresh, not the saved ones
    assert "teacher probabilities from" not in capsys.readouterr().err
