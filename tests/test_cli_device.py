"""--device that this machine cannot run: one line and exit code 2 in every command that runs a model,
before the model loads. Tiny random model."""
import pytest
import torch

from conftest import DATA
from pagesieve.cli import main as cli_main


@pytest.fixture
def commands(tiny_model_dir, tmp_path):
    """Each command that takes --device, with inputs that are fine."""
    page = tmp_path / "page.txt"
    page.write_text("Home\nLavrov said on Thursday that the conflict may escalate.\n")
    model = ["--model", str(tiny_model_dir), "--runtime", "torch"]
    return {"label": ["label", str(page), *model],
            "evaluate": ["evaluate", "--data", str(DATA / "pages.jsonl"), *model],
            "predict": ["predict", str(page), "-o", str(tmp_path / "out.jsonl"), *model],
            "report": ["report", str(page), "-o", str(tmp_path / "report.html"), *model]}


def run(args, capsys):
    code = cli_main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("command", ["label", "evaluate", "predict", "report"])
def test_a_device_this_machine_lacks_is_one_line(command, commands, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    for device, why in (("foo", "not cpu, cuda or cuda:N"), ("cuda", "CUDA is not available"), ("cuda:0", "CUDA is not available")):
        code, out, err = run([*commands[command], "--device", device], capsys)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert err.startswith(f"pagesieve: error: --device {device}: {why}")
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "report.html").exists()  # nothing ran


def test_a_cuda_device_number_past_the_last_is_one_line(commands, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code, out, err = run([*commands["label"], "--device", "cuda:1"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "1 CUDA device(s)" in err


def test_cpu_runs(commands, capsys):
    code, out, err = run([*commands["label"], "--device", "cpu"], capsys)
    assert code == 0 and len(out.splitlines()) == 2 and err == ""
