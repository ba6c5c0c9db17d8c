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


def test_outlier_channels_stay_out_of_int8(tiny_model_dir, test_pages, tmp_path, monkeypatch):
    """e5 has a feed-forward channel per layer ~15x larger than the rest; int8 gives an activation tensor
    one scale, so the export computes such channels apart (in fp32). Plant one in the tiny model."""
    import torch

    from pagesieve import modeling, onnxrt

    model = modeling.load(tiny_model_dir)
    ffn = model.bert.encoder.layer[0]
    with torch.no_grad():  # a feed-forward block that matters (random init: near zero), like a trained one
        ffn.intermediate.dense.weight *= 20
        ffn.output.dense.weight *= 20
        ffn.intermediate.dense.bias[7] = 150.0  # channel 7: ~150 on every token, the others ~1
    assert onnxrt.outlier_channels(model)[0] == [7]
    assert onnxrt.outlier_channels(modeling.load(tiny_model_dir))[0] == []
    modeling.save(model, tmp_path / "m")

    def every_linear_quantized(pred):  # a weight exported as a computed tensor would stay fp32: slower
        import onnx

        ops = [n.op_type for n in onnx.load(str(pred.onnx.path)).graph.node]
        assert ops.count("MatMulInteger") == sum(isinstance(m, torch.nn.Linear) for m in model.modules())

    # the same export with the channel left in the int8 MatMul
    fp32, apart, plain = _export_errors(tmp_path / "m", test_pages, monkeypatch, "outlier_channels",
                                        lambda m: [[] for _ in m.bert.encoder.layer], every_linear_quantized)
    assert fp32 < 1e-4  # computing the channel apart changes nothing in fp32
    assert apart < plain / 2


def test_outlier_hidden_channel_is_divided_down_for_int8(test_pages, tmp_path, monkeypatch):
    """e5's feed-forward input (a LayerNorm output) has one hidden channel ~8x larger than the rest;
    the export divides it down and multiplies the projection's weights back. Plant one."""
    import torch

    from pagesieve import modeling, onnxrt

    # 128 hidden channels: with the tiny model's 32, one channel is the 99th percentile itself
    modeling.save(modeling.tiny_random(hidden=128), tmp_path / "plain")
    model = modeling.load(tmp_path / "plain")
    layer = model.bert.encoder.layer[0]
    with torch.no_grad():  # a feed-forward block that matters, fed by a LayerNorm with one huge channel
        layer.intermediate.dense.weight *= 20
        layer.output.dense.weight *= 20
        layer.attention.output.LayerNorm.weight[3] = 40.0
    scale = onnxrt.input_scales(model)[0]
    assert scale[3] > 2 and torch.all(scale[torch.arange(len(scale)) != 3] == 1)
    assert all(torch.all(s == 1) for s in onnxrt.input_scales(modeling.load(tmp_path / "plain")))
    modeling.save(model, tmp_path / "m")
    fp32, smoothed, plain = _export_errors(tmp_path / "m", test_pages, monkeypatch, "input_scales",
                                           lambda m: [torch.ones(m.config.hidden_size) for _ in m.bert.encoder.layer])
    assert fp32 < 1e-4  # dividing the input and multiplying the weights: the same product in fp32
    assert smoothed < plain / 2


def _export_errors(model_dir, test_pages, monkeypatch, step, plain_step, check_int8=lambda pred: None):
    """Largest probability error against torch of the onnx export, of onnx-int8, and of onnx-int8
    with the export step `onnxrt.<step>` replaced by `plain_step` (under its own cache key)."""
    from pagesieve import onnxrt

    pages = [p["lines"] for p in test_pages]
    ref = np.concatenate([p for _, p in Predictor.from_pretrained(model_dir, device="cpu").line_probs(pages)])

    def error(runtime):
        pred = Predictor.from_pretrained(model_dir, device="cpu", runtime=runtime)
        if runtime == "onnx-int8":
            check_int8(pred)
        return np.abs(np.concatenate([p for _, p in pred.line_probs(pages)]) - ref).max()

    fp32, int8 = error("onnx"), error("onnx-int8")
    monkeypatch.setattr(onnxrt, step, plain_step)
    monkeypatch.setattr(onnxrt, "fingerprint", lambda m, key=onnxrt.fingerprint: key(m) + "-plain")
    return fp32, int8, error("onnx-int8")


def test_int8_probs_do_not_depend_on_the_batch(tiny_model_dir, test_pages):
    """Int8's dynamic quantization takes an activation tensor's scale from its range: a page's windows
    must never share a tensor with other pages' windows (or their padding). Its probabilities alone, in
    a batch of other pages in any order and batch size, and on any number of threads: bitwise the same."""
    pages = [p["lines"] for p in test_pages]
    pages = [lines[:k] for k in (3, 19) for lines in pages]  # short and long pages: one window or several
    pred = Predictor.from_pretrained(tiny_model_dir, device="cpu", runtime="onnx-int8")
    alone = [pred.line_probs([page])[0][1] for page in pages]
    for batch_size in (None, 3, 16):
        together = [p for _, p in pred.line_probs(pages[::-1], batch_size)][::-1]
        for a, b in zip(alone, together):
            np.testing.assert_array_equal(a, b)
    pred.onnx.threads = 1
    for a, (_, b) in zip(alone, pred.line_probs(pages)):
        np.testing.assert_array_equal(a, b)
