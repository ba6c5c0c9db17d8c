"""The caches (backbone conversion, ONNX exports) are built once when many processes start together on
a cold cache (a cluster job's tasks), and `pagesieve prepare` warms them all beforehand."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pagesieve.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent

# Run in each process: count calls of the named work functions into a shared log, define `work` (SETUP),
# wait until every process is ready (so that all of them find the cache cold), then print what work() got.
RACER = textwrap.dedent("""
    import hashlib, importlib, json, os, sys, time
    from pathlib import Path

    log, ready, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    for spec in sys.argv[4:]:
        module, name = spec.rsplit(".", 1)
        module = importlib.import_module(module)

        def counted(*a, _fn=getattr(module, name), _name=name, **k):
            with open(log, "a") as f:
                f.write(_name + "\\n")
            return _fn(*a, **k)

        setattr(module, name, counted)
    SETUP
    (ready / str(os.getpid())).touch()
    deadline = time.time() + 120
    while len(list(ready.iterdir())) < n and time.time() < deadline:
        time.sleep(0.02)

    def digest(p):
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        return {str(f.relative_to(p)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}

    print(json.dumps([[str(p), digest(p)] for p in work()]))
""")


def race(tmp_path, setup: str, counted: list[str], n: int = 3, env: dict | None = None):
    """Start `n` processes at once, each running `setup` (code that defines `work()`: build, return the
    paths); return (calls of each counted function, what each process got (paths and file hashes), stderr)."""
    script = tmp_path / "racer.py"
    script.write_text(RACER.replace("SETUP", textwrap.dedent(setup).strip()))
    log, ready = tmp_path / "calls.log", tmp_path / "ready"
    ready.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    procs = [subprocess.Popen([sys.executable, str(script), str(log), str(ready), str(n), *counted],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    calls = log.read_text().split() if log.exists() else []
    return {name: calls.count(name) for name in set(calls)}, [json.loads(out) for out, _ in outs], [e for _, e in outs]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name or p.name.endswith(".fp32"))


def test_build_once_builds_once_for_processes_starting_together(tmp_path):
    target = tmp_path / "cache" / "thing"
    setup = f"""
        from pagesieve.backbone import build_once

        def build(tmp):
            with open(log, "a") as f:
                f.write("build\\n")
            tmp.mkdir()
            time.sleep(1)  # long enough for the others to find the lock taken
            (tmp / "by").write_text(str(os.getpid()))

        def work():
            return [build_once(Path({str(target)!r}), build, "building")]
    """
    calls, got, errs = race(tmp_path, setup, [])
    assert calls == {"build": 1}
    assert len({json.dumps(g) for g in got}) == 1  # all got the same folder, with the same contents
    assert sum("building" in e for e in errs) == 1
    assert leftovers(target.parent) == []


def test_backbone_converted_once_for_processes_starting_together(tmp_path):
    cache = tmp_path / "cache"
    setup = """
        from pagesieve.backbone import ensure_backbone

        def work():
            return [ensure_backbone()]
    """
    calls, got, _ = race(tmp_path, setup, ["pagesieve.backbone.read_packed"], env={"PAGESIEVE_CACHE": str(cache)})
    assert calls == {"read_packed": 1}
    assert len({json.dumps(g) for g in got}) == 1
    (folder, files), = got[0]
    assert Path(folder).parent == cache and {"config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert leftovers(cache) == []


def test_onnx_exported_once_for_processes_starting_together(tiny_model_dir, tmp_path):
    cache = tmp_path / "cache"
    setup = f"""
        from pagesieve import modeling, onnxrt

        model = modeling.load({str(tiny_model_dir)!r})

        def work():
            return [onnxrt.exported(model, int8=False), onnxrt.exported(model, int8=True)]
    """
    calls, got, _ = race(tmp_path, setup, ["pagesieve.onnxrt._export_fp32", "onnxruntime.quantization.quantize_dynamic"],
                         env={"PAGESIEVE_CACHE": str(cache)})
    assert calls == {"_export_fp32": 1, "quantize_dynamic": 1}
    assert len({json.dumps(g) for g in got}) == 1
    assert [Path(p).name.endswith(".int8.onnx") for p, _ in got[0]] == [False, True]
    assert leftovers(cache / "onnx") == []


def test_leftovers_of_a_killed_build_are_removed(tmp_path):
    from pagesieve.backbone import build_once

    target = tmp_path / "thing"
    (tmp_path / "thing.tmp4242").mkdir()  # a process killed while building
    (tmp_path / "thing.tmp4242" / "half").write_text("x")
    (tmp_path / "thing.tmp4243").write_text("x")
    build_once(target, lambda tmp: tmp.write_text("done"))
    assert target.read_text() == "done" and leftovers(tmp_path) == []


def test_a_failed_build_leaves_nothing(tmp_path):
    from pagesieve.backbone import build_once

    def fails(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        build_once(tmp_path / "thing", fails)
    assert not (tmp_path / "thing").exists() and leftovers(tmp_path) == []


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache but for the backbone (linked from the usual cache: converting it takes ~15 s)."""
    from pagesieve.backbone import ensure_backbone

    backbone = ensure_backbone()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / backbone.name).symlink_to(backbone)
    monkeypatch.setenv("PAGESIEVE_CACHE", str(cache))
    return cache


def test_prepare_warms_every_cache(tiny_model_dir, cache, capsys):
    assert cli_main(["prepare", "--model", str(tiny_model_dir), "--runtime", "all"]) == 0
    out, err = capsys.readouterr()
    rows = {line.split()[0]: line.split()[-1] for line in out.splitlines()}
    assert set(rows) == {"backbone", "model", "onnx", "onnx-int8"}
    assert Path(rows["model"]) == tiny_model_dir and Path(rows["backbone"]).parent == cache
    assert [Path(rows[r]).parent for r in ("onnx", "onnx-int8")] == [cache / "onnx"] * 2
    assert "exporting" in err
    # warm: a task that loads the model now finds the export
    from pagesieve.predictor import Predictor

    assert Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="onnx-int8").onnx.path == Path(rows["onnx-int8"])
    assert "exporting" not in capsys.readouterr().err
    assert cli_main(["download", "--model", str(tiny_model_dir), "--runtime", "onnx-int8"]) == 0  # the alias
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()] == ["backbone", "model", "onnx-int8"] and err == ""


def test_prepare_torch_exports_nothing(tiny_model_dir, cache, capsys):
    assert cli_main(["prepare", "--model", str(tiny_model_dir), "--runtime", "torch"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["backbone", "model"]
    assert not (cache / "onnx").exists()


def test_prepare_offline_hub_id_is_one_clear_line(cache, monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo_id, **kwargs):
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    assert cli_main(["prepare", "--model", "org/pagesieve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "org/pagesieve" in err[0] and "offline" in err[0]


def test_a_folder_that_is_not_a_pagesieve_model_is_one_line(tmp_path, cache, capsys):
    model = tmp_path / "bert"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (model / "model.safetensors").write_bytes(b"")
    (tmp_path / "p.txt").write_text("Home\n")
    for args in (["prepare"], ["label", str(tmp_path / "p.txt"), "--runtime", "torch"],
                 ["report", str(tmp_path / "p.txt"), "-o", str(tmp_path / "r.html")]):
        assert cli_main([*args, "--model", str(model)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not a pagesieve checkpoint" in err[0], args
