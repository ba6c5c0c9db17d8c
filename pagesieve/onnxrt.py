"""CPU inference with ONNX Runtime: the classifier is exported once to ONNX (optionally with
int8 dynamic quantization of its weights), cached next to the backbone, and run by onnxruntime,
which on 2 cores is faster than torch's eager forward (`benchmarks/throughput.py` prints the figures).

The graph starts from word vectors: the 250k-row word table (90% of the weights) stays outside,
looked up in numpy from an fp16 copy. Exporting and quantizing the whole table took 2.8 GB of
memory at its peak; without it, far less, and the file is ~10x smaller.

The graph ends at the label tokens: only a line's first token is read out, so the last layer
computes its queries, attention and feed-forward for those tokens alone (keys and values still
for all), a tenth of them. The layers are written out here (eager attention, additive mask), which
also exports to a leaner graph than transformers' SDPA path.

Each layer's outlier feed-forward channel (one, up to ~15x the others: `outlier_channels`) is
computed apart in fp32, and the feed-forward input's outlier hidden channel is divided down (its
range moved into the weights: `input_scales`), so that int8's one-scale-per-tensor activations fit
the ordinary channels.

    predictor = Predictor.from_pretrained().use_onnx(int8=True)
"""
from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np

# the inference engines a Predictor can use (see Predictor.from_pretrained)
RUNTIMES = ("auto", "torch", "torch-int8", "torch-bf16", "onnx", "onnx-int8")
FAST_RUNTIMES = ("auto", "torch", "torch-bf16")  # the fast tier's (pagesieve/fast.py), here: the CLI reads both without torch


def split_runtime(runtime: str) -> tuple[str, str]:
    """A cascade's runtime -> (its fast tier's, its base model's): "FAST+BASE", or one runtime for the base
    model that the fast tier takes too when it has it (else its "auto"). Unchecked: see resolve_runtime."""
    if "+" in runtime:
        fast, _, base = runtime.partition("+")
        return fast, base
    return (runtime if runtime in FAST_RUNTIMES else "auto"), runtime


def resolve_runtime(runtime: str, device: str) -> str:
    """"auto": ONNX Runtime int8 on a CPU (about as accurate as fp32 and 2x faster), torch elsewhere."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: choose from {', '.join(RUNTIMES)}")
    if runtime != "auto":
        return runtime
    import importlib.util

    return "onnx-int8" if device == "cpu" and importlib.util.find_spec("onnxruntime") else "torch"


INPUTS = ("inputs_embeds", "attention_mask", "token_type_ids", "label_positions")


def fingerprint(model) -> str:
    """Hash of the weights and config: a retrained or different model never reuses an export."""
    h = hashlib.blake2b(digest_size=8)
    h.update(b"int8 per-channel; word table outside; last layer at label tokens; outlier channels apart; feed-forward input smoothed")  # the export recipe: change it and old exports are not reused
    h.update(model.config.to_json_string().encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        if t.numel() > 4_000_000:  # the 96 M word table: every 31st row is enough to tell tables apart
            t = t[::31]
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def exported(model, int8: bool, verbose: bool = True, key: str | None = None) -> Path:
    """Path of the model's ONNX file (int8 or fp32), exporting it into the cache on first use (once
    for all the processes that ask at the same time: `backbone.build_once`). `key`: the model's
    `fingerprint`, when the caller already has it (hashing the weights takes seconds)."""
    from .backbone import build_once, cache_dir

    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ImportError("ONNX Runtime is not installed: pip install onnxruntime onnx (pagesieve depends on them)") from e
    folder = cache_dir() / "onnx"
    key = key or fingerprint(model)
    fp32 = folder / f"{key}.onnx"
    target = folder / f"{key}.int8.onnx" if int8 else fp32

    def export(tmp: Path):
        if not int8:
            return _export_fp32(model, tmp)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        src = fp32 if fp32.exists() else Path(f"{tmp}.fp32")  # reused when cached, else a temporary export
        if src != fp32:
            _export_fp32(model, src)
        logging.disable(logging.WARNING)  # the quantizer's advice to pre-process applies to CNNs
        try:
            # per-channel weight scales: the 6-layer release keeps the fp32 label on 97% of the dev +
            # validation lines (dev macro-F1 0.700 either way), where torch's per-tensor dynamic
            # quantization loses 0.04 dev / 0.08 validation macro-F1
            quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.disable(logging.NOTSET)
            if src != fp32:
                src.unlink(missing_ok=True)

    message = f"pagesieve: exporting the model to ONNX{' (int8)' if int8 else ''} once, into {folder} ..."
    return build_once(target, export, message if verbose else None)


def _input_peaks(model, module_of, seed: int = 0) -> list:
    """Per layer, each input channel's largest |value| at `module_of(layer)`, over random token
    windows (which pick the same channels as real pages: checked on the release)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, model.config.vocab_size, (8, 128), generator=g)
    types = (torch.arange(128) // 6 % 2).expand(8, -1)  # lines of ~6 tokens, like real windows
    peaks = {}
    hooks = [module_of(layer).register_forward_hook(
        lambda mod, inp, out, i=i: peaks.__setitem__(i, inp[0].reshape(-1, inp[0].shape[-1]).abs().amax(0)))
        for i, layer in enumerate(model.bert.encoder.layer)]
    try:
        with torch.no_grad():
            model(input_ids=ids, token_type_ids=types)
    finally:
        for h in hooks:
            h.remove()
    return [peaks[i] for i in sorted(peaks)]


def outlier_channels(model, ratio: float = 2.0) -> list[list[int]]:
    """Per layer, the feed-forward channels (GELU outputs, inputs of the output projection) whose
    largest value is over `ratio` x the 99th percentile of the channels' largest values.

    e5's layers each have one such channel (up to ~70 where the others stay under ~5, the same
    channel on every input). Int8's dynamic quantization gives an activation tensor one scale, so
    that channel alone coarsens the steps of all 1,536 (6-layer checkpoints lost 0.02 validation
    macro-F1 under int8)."""
    import torch

    return [torch.nonzero(p > ratio * p.quantile(0.99)).flatten().tolist()
            for p in _input_peaks(model, lambda layer: layer.output.dense)]


def input_scales(model, ratio: float = 2.0, alpha: float = 0.5) -> list:
    """Per layer, a divisor for each channel of the feed-forward block's input (the attention
    block's LayerNorm output), SmoothQuant-style: (peak / 99th percentile) ** alpha for the channels
    over `ratio` x that percentile, else 1; the projection's weights are multiplied by it.

    e5 has one such hidden channel (~30 where the others stay under ~4, from layer 1 on). Dividing
    it moves part of its range into the per-channel-quantized weights (alpha 0.5: SmoothQuant's
    default, not tuned here); the fp32 product is the same."""
    import torch

    out = []
    for p in _input_peaks(model, lambda layer: layer.intermediate.dense):
        q = p.quantile(0.99)
        out.append(torch.where(p > ratio * q, (p / q) ** alpha, torch.ones_like(p)))
    return out


def _export_fp32(model, path: Path):
    import torch  # here, not at the top: the CLI reads RUNTIMES without loading torch

    model = model.float().eval()
    outliers = outlier_channels(model)
    scales = input_scales(model)

    def ordinary_part(layer, channels, scale):
        """The layer's first feed-forward projection as the int8 MatMul sees it: its input channels
        divided by `scale` (so its weights multiplied by it), its outlier output channels switched off
        (GELU(x - 1e4) is exactly 0, so the int8 MatMul that follows sees only the ordinary channels)."""
        first = copy.deepcopy(layer.intermediate.dense)
        with torch.no_grad():
            first.weight *= scale[None, :]
            first.bias[channels] = -1e4
        return first

    def feed_forward(layer, a, channels, ordinary, scale):
        """The layer's feed-forward block, each outlier channel an fp32 dot product, GELU and
        multiply-add of its own: the same sum, so the fp32 graph is unchanged, and int8's activation
        steps fit the ordinary channels."""
        first, act, second = layer.intermediate.dense, layer.intermediate.intermediate_act_fn, layer.output.dense
        x = a * (1 / scale) if bool((scale != 1).any()) else a  # no Mul in the graph when nothing is scaled
        out = second(act(ordinary(x)))
        for j in channels:
            pre = (a * first.weight[j].detach()).sum(-1, keepdim=True) + first.bias[j].detach()
            out = out + act(pre) * second.weight[:, j].detach()
        return out

    def layer_forward(layer, h_q, h_kv, mask_add, channels, ordinary, scale):
        """One BERT layer (eval mode) for the queries h_q, attending over h_kv."""
        att = layer.attention.self
        b, t, width = h_q.shape
        heads, size = att.num_attention_heads, att.attention_head_size
        q = att.query(h_q).view(b, t, heads, size).transpose(1, 2)
        k = att.key(h_kv).view(b, -1, heads, size).transpose(1, 2)
        v = att.value(h_kv).view(b, -1, heads, size).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(2, 3) * size ** -0.5 + mask_add, dim=-1)
        ctx = (weights @ v).transpose(1, 2).reshape(b, t, width)
        a = layer.attention.output.LayerNorm(layer.attention.output.dense(ctx) + h_q)
        return layer.output.LayerNorm(feed_forward(layer, a, channels, ordinary, scale) + a)

    class AtLabelTokens(torch.nn.Module):
        """The classifier from word vectors to the logits of the label tokens: what the graph holds."""

        def __init__(self):
            super().__init__()
            self.model = model
            # submodules, so that their weights are exported as initializers, which the quantizer needs
            self.ordinary = torch.nn.ModuleList(
                ordinary_part(layer, channels, scale)
                for layer, channels, scale in zip(model.bert.encoder.layer, outliers, scales))

        def forward(self, inputs_embeds, attention_mask, token_type_ids, label_positions):
            bert = self.model.bert
            h = bert.embeddings(inputs_embeds=inputs_embeds, token_type_ids=token_type_ids)
            mask_add = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
            *lower, last = bert.encoder.layer
            for layer, channels, ordinary, scale in zip(lower, outliers, self.ordinary, scales):
                h = layer_forward(layer, h, h, mask_add, channels, ordinary, scale)
            at = torch.gather(h, 1, label_positions[:, :, None].expand(-1, -1, h.shape[-1]))
            return self.model.classifier(layer_forward(last, at, h, mask_add, outliers[-1], self.ordinary[-1], scales[-1]))

    mask = torch.ones(2, 16, dtype=torch.long)
    vectors = torch.zeros(2, 16, model.config.hidden_size)
    positions = torch.tensor([[1, 5, 9], [1, 3, 0]])
    axes = {k: {0: "batch", 1: "tokens"} for k in INPUTS[:3]}
    axes.update(label_positions={0: "batch", 1: "lines"}, logits={0: "batch", 1: "lines"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            AtLabelTokens(), (vectors, mask, torch.zeros_like(mask), positions), str(path),
            input_names=list(INPUTS), output_names=["logits"], dynamic_axes=axes, dynamo=False, opset_version=17)


# ONNX Runtime's fused residual-add + LayerNorm kernel (SkipLayerNormalization) is slow here: unfused, the int8
# base model runs 1.10x faster on one thread and on two (2-core AMD EPYC, ONNX Runtime 1.32, 60 half-A pages:
# `python benchmarks/onnx_profile.py --pages 60 --ab 4`). int8's activation scales then round differently: 0.17%
# of those lines' labels change, so it is part of a dump's identity (dump.model_identity).
DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)


class OnnxForward:
    """The model on padded numpy batches: logits at the given token positions (batch, lines, classes).

    Predictor gives it one window per call (unpadded), `threads` calls at once, each on one thread.
    One window per call: int8's dynamic quantization takes an activation tensor's scale from its
    range, so in a batch a window's int8 steps depended on the other windows and their padding
    (`--shard-size` alone changed 0.4% of the line labels); alone, a page's probabilities are the same
    whatever is labeled with it. Calls in parallel rather than ONNX Runtime's threads within each
    operator (one window per call on those: 13% slower than batches of 4): on 2 cores shared with a
    training job, `benchmarks/throughput.py`'s synthetic dump went from 1.9-2.6 to 2.9-4.6 pages/s
    (int8; fp32 unchanged), and on one thread a window alone costs 6% less than in a padded batch."""

    def __init__(self, model, int8: bool = True, threads: int = 0):
        import onnxruntime as ort
        import torch

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.threads = threads or torch.get_num_threads()
        self.path = exported(model, int8)
        self.disabled = DISABLED_OPTIMIZERS  # what dump.model_identity names besides the file
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"],
                                            disabled_optimizers=list(self.disabled))
        self.word_table = model.get_input_embeddings().weight.detach().to(torch.float16).numpy()

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray,
                 label_positions: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], self.feed(input_ids, attention_mask, token_type_ids, label_positions))[0]

    def feed(self, input_ids, attention_mask, token_type_ids, label_positions) -> dict:
        """The session's inputs: the word vectors looked up here (the graph holds no word table)."""
        return {"inputs_embeds": self.word_table[input_ids].astype(np.float32), "attention_mask": attention_mask,
                "token_type_ids": token_type_ids, "label_positions": label_positions}

    def map(self, fn, items: list) -> list:
        """[fn(item) for item in items], `threads` at a time (ONNX Runtime releases the GIL while it runs)."""
        if self.threads == 1 or len(items) < 2:
            return list(map(fn, items))
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(self.threads, len(items))) as pool:
            return list(pool.map(fn, items))
