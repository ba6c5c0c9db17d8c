"""Self-contained checkpoints: `pagesieve export` writes a Hugging Face folder that plain transformers
loads exactly; models by Hub id; the released model inside the wheel; `--version`. Tiny model, except
one test on the release."""
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import DATA, ROOT
from pagesieve import LABELS, Predictor, modeling
from pagesieve.cli import main as cli_main

SAMPLE = ["Subscribe to our newsletter", "Лавров заявил в четверг, что конфликт может обостриться.",
          "市议会周二在长时间辩论后批准了新预算。", "Der Stadtrat hat am Dienstag den Haushalt beschlossen.", "Home"]


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    """(source folder with a model card, its export made by `pagesieve export`)."""
    src = tmp_path_factory.mktemp("src") / "model"
    shutil.copytree(tiny_model_dir, src)
    (src / "README.md").write_text("---\nlicense: mit\n---\n# tiny test model\n")
    out = tmp_path_factory.mktemp("export") / "hf"
    assert cli_main(["export", str(out), "--model", str(src)]) == 0
    return src, out


def _ids(tokenizer, texts):
    return torch.tensor(tokenizer(texts, padding=True)["input_ids"])


def test_export_is_a_standard_hf_folder(exported, tokenizer):
    from safetensors import safe_open
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    src, out = exported
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"} <= {
        p.name for p in out.iterdir()}
    assert (out / "README.md").read_text() == (src / "README.md").read_text()  # the model card
    config = json.loads((out / "config.json").read_text())
    source = json.loads((src / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and config["model_type"] == "bert"
    assert [config["id2label"][str(i)] for i in range(len(LABELS))] == list(LABELS)
    assert config["pagesieve"] == dict(source["pagesieve"], word_embeddings="included")  # encoding settings kept
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:  # every weight, the word table too, fp16
        assert modeling.WORD_EMB in f.keys()
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}

    hf, info = AutoModelForTokenClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info  # no missing (random), unexpected or mismatched weights
    assert hf.dtype == torch.float32
    hf_tok = AutoTokenizer.from_pretrained(out)
    assert len(hf_tok) > 250_000  # the real vocabulary
    assert hf_tok(SAMPLE)["input_ids"] == tokenizer(SAMPLE)["input_ids"]  # = the packaged backbone's
    ids = _ids(hf_tok, SAMPLE)
    mask = (ids != hf.config.pad_token_id).long()
    with torch.no_grad():
        ref = modeling.load(src)(input_ids=ids, attention_mask=mask).logits
        got = hf.eval()(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(ref, got)


def test_predictor_loads_an_export_without_the_backbone(exported, monkeypatch):
    src, out = exported
    want = Predictor.from_pretrained(src, device="cpu").predict_many(SAMPLE)

    def no_backbone(*a, **k):
        raise AssertionError("an exported folder must not need the backbone")

    monkeypatch.setattr("pagesieve.backbone.ensure_backbone", no_backbone)
    got = Predictor.from_pretrained(out, device="cpu").predict_many(SAMPLE)
    assert [[(r.index, r.label, r.probs) for r in page] for page in got] == \
           [[(r.index, r.label, r.probs) for r in page] for page in want]
    assert Predictor.from_pretrained(str(out), device="cpu").predict(SAMPLE)[0].label in LABELS


def test_export_refuses_its_own_source(exported, capsys):
    src, _ = exported
    with pytest.raises(ValueError):
        modeling.export(src, src)
    assert cli_main(["export", str(src), "--model", str(src)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_hub_ids_told_from_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert modeling.is_hub_id("org/name") and modeling.is_hub_id("intfloat/multilingual-e5-small")
    (tmp_path / "models" / "mine").mkdir(parents=True)
    for path in ("models/mine", "./model", "/abs/path", "a/b/c", "org/", "name", Path("org/name"), None):
        assert not modeling.is_hub_id(path), path


def test_hub_id_downloaded_with_snapshot_download(exported, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(exported[1])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    p = Predictor.from_pretrained("org/pagesieve", device="cpu")
    assert calls and calls[0][0] == "org/pagesieve"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(calls[0][1]["allow_patterns"])
    assert [r.text for r in p.predict(SAMPLE)] == SAMPLE


def test_hub_id_offline_is_one_clear_line(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo_id, **kwargs):
        raise LocalEntryNotFoundError("An error happened while trying to locate the files on the Hub and we cannot\n"
                                      "find the appropriate snapshot folder on the local disk.")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(modeling.ModelNotFoundError) as e:
        Predictor.from_pretrained("org/pagesieve", device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "org/pagesieve" in msg and "offline" in msg


def test_hub_id_offline_cli(tmp_path):
    """The real huggingface_hub, offline, with an empty cache: one line and exit code 2."""
    import os

    page = tmp_path / "page.txt"
    page.write_text("Home\nSome text\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), HF_HUB_CACHE=str(tmp_path / "hf" / "hub"))
    r = subprocess.run([sys.executable, "-m", "pagesieve", "label", str(page), "--model", "org/pagesieve"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and r.stdout == ""
    assert len(err) == 1 and err[0].startswith("pagesieve: error: org/pagesieve") and "offline" in err[0], r.stderr


def test_released_model_found_in_checkout_then_package(tiny_model_dir, tmp_path, monkeypatch):
    assert modeling.default_model_dir() == ROOT / "model"  # this checkout
    monkeypatch.setattr(modeling, "DEFAULT_MODEL_DIR", tmp_path / "no-checkout" / "model")
    monkeypatch.setattr(modeling, "PACKAGED_MODEL_DIR", tiny_model_dir)  # as in an installed wheel
    assert modeling.default_model_dir() == tiny_model_dir
    assert modeling.resolve(None) == tiny_model_dir
    monkeypatch.setattr(modeling, "PACKAGED_MODEL_DIR", tmp_path / "nothing")
    with pytest.raises(modeling.ModelNotFoundError, match="no released model"):
        modeling.load()


def test_wheel_ships_the_released_model(tmp_path):
    """`pip wheel .` (here without build isolation: no network needed) packs model/ as pagesieve/_model/."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pagesieve", "model"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "whl")], cwd=src, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "whl").glob("pagesieve-*.whl")
    with zipfile.ZipFile(wheel) as z:
        sizes = {i.filename: i.file_size for i in z.infolist()}
    for f in ("config.json", "model.safetensors", "README.md", "fast/config.json", "fast/model.safetensors",
              "cascade/config.json", "cascade/fast/config.json", "cascade/fast/model.safetensors"):  # the three tiers
        assert sizes.get(f"pagesieve/_model/{f}") == (ROOT / "model" / f).stat().st_size, f
    code = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pagesieve").rglob("*.py") if "__pycache__" not in p.parts}
    assert code <= set(sizes), sorted(code - set(sizes))  # every module still packaged


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["--version"])
    assert e.value.code == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"pagesieve {version}"


def test_released_model_exported_runs_in_plain_transformers(tmp_path):
    """The release, exported: plain transformers gives the very logits of pagesieve, and the same labels
    as Predictor on pages."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    out = modeling.export(None, tmp_path / "release")
    assert (out / "README.md").read_text() == (ROOT / "model" / "README.md").read_text()
    hf, info = AutoModelForTokenClassification.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    hf_tok = AutoTokenizer.from_pretrained(out)
    assert len(hf_tok) > 250_000

    pages = [json.loads(l)["lines"] for l in (DATA / "pages.jsonl").read_text().splitlines()[:4]]
    released = Predictor.from_pretrained(device="cpu", runtime="torch")
    plain = Predictor(hf, hf_tok, device="cpu")  # transformers' own model and tokenizer, pagesieve's line encoding
    encoded = released.encode(pages)
    assert [[w.input_ids for w in p.windows] for p in encoded] == [[w.input_ids for w in p.windows]
                                                                   for p in plain.encode(pages)]
    with torch.no_grad():
        for page in encoded:
            for w in page.windows:
                ids = torch.tensor([w.input_ids])
                types = torch.tensor([w.token_type_ids])
                assert torch.equal(released.model(input_ids=ids, token_type_ids=types).logits,
                                   plain.model(input_ids=ids, token_type_ids=types).logits)
    want = [[r.label for r in p] for p in released.predict_many(pages)]
    assert [[r.label for r in p] for p in plain.predict_many(pages)] == want
    assert sum(map(len, want)) > 20
    shutil.rmtree(out)  # 230 MB: not left in pytest's kept temporary folders
