"""Predictor API and the `pagesieve label` command, on a tiny random model (fast)."""
import json
import subprocess
import sys

import pytest

from pagesieve import LABELS, Predictor
from pagesieve.cli import main as cli_main


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    return Predictor.from_pretrained(tiny_model_dir, device="cpu")


def test_predict_text_lines_and_html(predictor):
    res = predictor.predict("Subscribe\n\nLavrov said on Thursday that the conflict may escalate.\n  \nЗаголовок")
    assert [r.index for r in res] == [0, 2, 4]  # blank lines skipped, original indexes kept
    for r in res:
        assert r.label in LABELS and set(r.probs) == set(LABELS)
        assert abs(sum(r.probs.values()) - 1) < 1e-3
        assert r.label == max(r.probs, key=r.probs.get)
    assert [r.text for r in predictor.predict(["a", "b"])] == ["a", "b"]
    html = "<html><body><nav><a>Home</a></nav><script>x=1</script><p>Body &amp; text</p></body></html>"
    assert [r.text for r in predictor.predict(html=html)] == ["Home", "Body & text"]
    assert predictor.predict("") == [] and predictor.predict(html="") == []


def test_predict_many_matches_predict(predictor):
    pages = [f"line {i}\nanother line {i}\n" * (i + 1) for i in range(5)]
    many = predictor.predict_many(pages, batch_size=3)
    for page, got in zip(pages, many):
        one = predictor.predict(page)
        assert [r.label for r in got] == [r.label for r in one]
        for a, b in zip(got, one):
            for lab in LABELS:
                assert abs(a.probs[lab] - b.probs[lab]) < 1e-3


def test_clean_keeps_requested_labels(predictor):
    text = "one\ntwo\nthree"
    res = predictor.predict(text)
    for keep in (("content",), tuple(LABELS)):
        assert predictor.clean(text, keep=keep) == "\n".join(r.text for r in res if r.label in keep)
    with pytest.raises(ValueError):
        predictor.clean(text, keep=("body",))


def run_cli(args, capsys):
    code = cli_main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_label_command_formats(tiny_model_dir, tmp_path, capsys):
    page = tmp_path / "page.txt"
    page.write_text("Home\nThe council approved the budget.\n\nShare\n")
    code, out, _ = run_cli(["label", str(page), "--model", str(tiny_model_dir)], capsys)
    assert code == 0 and len(out.splitlines()) == 3
    code, out, _ = run_cli(["label", str(page), "--model", str(tiny_model_dir), "--format", "jsonl"], capsys)
    rows = [json.loads(l) for l in out.splitlines()]
    assert [r["line"] for r in rows] == [0, 1, 3] and all(set(r["probs"]) == set(LABELS) for r in rows)
    code, out, _ = run_cli(["label", str(page), "--model", str(tiny_model_dir), "--format", "tsv"], capsys)
    assert all(l.split("\t")[0] in LABELS for l in out.splitlines())
    code, out, _ = run_cli(["label", str(page), "--model", str(tiny_model_dir), "--keep", ",".join(LABELS)], capsys)
    assert out.splitlines() == ["Home", "The council approved the budget.", "Share"]


def test_label_command_html(tiny_model_dir, tmp_path, capsys):
    page = tmp_path / "page.html"
    page.write_text("<html><body><h1>Title</h1><p>Para <b>one</b></p><style>.x{}</style></body></html>")
    code, out, _ = run_cli(["label", str(page), "--model", str(tiny_model_dir), "--keep", ",".join(LABELS)], capsys)
    assert code == 0 and out.splitlines() == ["Title", "Para one"]


def test_bad_input_gives_clear_messages(tiny_model_dir, tmp_path, capsys):
    m = ["--model", str(tiny_model_dir)]
    code, _, err = run_cli(["label", str(tmp_path / "missing.txt")] + m, capsys)
    assert code == 2 and "no such file" in err and "Traceback" not in err
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02PNG\x00" * 100)
    code, _, err = run_cli(["label", str(binary)] + m, capsys)
    assert code == 2 and "binary" in err
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Café crème\nSubscribe\n".encode("latin-1"))
    code, out, err = run_cli(["label", str(latin)] + m, capsys)
    assert code == 0 and "replacement" in err and len(out.splitlines()) == 2
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    code, out, err = run_cli(["label", str(empty)] + m, capsys)
    assert code == 0 and out == "" and "empty" in err
    code, _, err = run_cli(["label", str(latin), "--keep", "body"] + m, capsys)
    assert code == 2 and "unknown label" in err
    code, _, err = run_cli(["label", str(tmp_path)] + m, capsys)
    assert code == 2 and "directory" in err


def test_stdin_and_entry_point(tiny_model_dir):
    r = subprocess.run([sys.executable, "-m", "pagesieve", "label", "-", "--model", str(tiny_model_dir),
                        "--format", "tsv"], input="Home\nText line\n", capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    r = subprocess.run([sys.executable, "-m", "pagesieve", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "label" in r.stdout and "evaluate" in r.stdout


def test_checkpoint_round_trip(tmp_path):
    import torch

    from pagesieve import modeling

    model = modeling.tiny_random(seed=3)
    modeling.save(model, tmp_path)
    again = modeling.load(tmp_path)
    ids = torch.tensor([[0, 100, 200, 2]])
    with torch.no_grad():
        a, b = model.eval()(input_ids=ids).logits, again(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-2)  # fp16 storage
    with pytest.raises(FileNotFoundError):
        modeling.load(tmp_path / "nothing")
