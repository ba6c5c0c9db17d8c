"""ONNX Runtime inference: same predictions as torch, int8 close to them, exported once into the cache."""
import numpy as np
import pytest

from pagesieve.predictor import Predictor


def test_onnx_matches_torch(tiny_model_dir, test_pages):
    pages = [p["lines"] for p in test_pages]
    torch_pred = Predictor.from_pretrained(tiny_model_dir, device="cpu")
    ref = [p for _, p in torch_pred.line_probs(pages)]
    onnx_pred = Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="onnx")
    assert onnx_pred.onnx.path.exists() and not onnx_pred.onnx.path.name.endswith("int8.onnx")
    # the word table stays outside the graph (looked up in numpy): the file is smaller than the table
    assert onnx_pred.onnx.path.stat().st_size < onnx_pred.onnx.word_table.size * 4
    got = [p for _, p in onnx_pred.line_probs(pages)]
    for a, b in zip(ref, got):
        np.testing.assert_allclose(a, b, atol=1e-4)
    int8 = Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="onnx-int8")
    assert int8.onnx.path.name.endswith(".int8.onnx")
    q = np.concatenate([p for _, p in int8.line_probs(pages)])
    assert np.abs(q - np.concatenate(ref)).max() < 0.2  # int8 weights: close, not equal


def test_runtime_choice(tiny_model_dir):
    from pagesieve.onnxrt import resolve_runtime

    assert resolve_runtime("auto", "cpu") == "onnx-int8" and resolve_runtime("auto", "cuda") == "torch"
    assert resolve_runtime("torch-int8", "cpu") == "torch-int8"
    with pytest.raises(ValueError, match="runtime"):
        Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="tensorrt")
