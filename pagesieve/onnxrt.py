"""CPU inference with ONNX Runtime: the classifier is exported once to ONNX (optionally with
int8 dynamic quantization of its weights), cached next to the backbone, and run by onnxruntime,
which on 2 cores is faster than torch's eager forward (`benchmarks/throughput.py` prints the figures).

    predictor = Predictor.from_pretrained().use_onnx(int8=True)
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np

# the CPU inference engines a Predictor can use (see Predictor.from_pretrained)
RUNTIMES = ("torch", "torch-int8", "onnx", "onnx-int8")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _fingerprint(model) -> str:
    """Hash of the weights and config: a retrained or different model never reuses an export."""
    h = hashlib.blake2b(digest_size=8)
    h.update(model.config.to_json_string().encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        if t.numel() > 4_000_000:  # the 96 M word table: every 31st row is enough to tell tables apart
            t = t[::31]
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def exported(model, int8: bool, verbose: bool = True) -> Path:
    """Path of the model's ONNX file (int8 or fp32), exporting it into the cache on first use."""
    import torch

    from .backbone import cache_dir

    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ImportError("ONNX Runtime is not installed: pip install 'pagesieve[onnx]'") from e
    folder = cache_dir() / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    key = _fingerprint(model)
    fp32 = folder / f"{key}.onnx"
    target = folder / f"{key}.int8.onnx" if int8 else fp32
    if target.exists():
        return target
    if verbose:
        print(f"pagesieve: exporting the model to ONNX{' (int8)' if int8 else ''} once, into {folder} ...",
              file=sys.stderr)
    if not fp32.exists():
        ids = torch.ones(2, 16, dtype=torch.long)
        tmp = fp32.with_name(f"{fp32.name}.{os.getpid()}.tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.float().eval(), (), str(tmp),
                kwargs=dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids)),
                input_names=list(INPUTS), output_names=["logits"],
                dynamic_axes={k: {0: "batch", 1: "tokens"} for k in (*INPUTS, "logits")},
                dynamo=False, opset_version=17)
        os.replace(tmp, fp32)  # atomic: parallel processes never read a half-written file
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        logging.disable(logging.WARNING)  # the quantizer's advice to pre-process applies to CNNs
        try:
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        os.replace(tmp, target)
    return target


class OnnxForward:
    """Callable like the torch model's forward on padded numpy batches: returns logits."""

    def __init__(self, model, int8: bool = True, threads: int = 0):
        import onnxruntime as ort
        import torch

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = exported(model, int8)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return self.session.run(["logits"], feed)[0]
