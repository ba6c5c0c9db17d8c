"""How much of the base model's accuracy survives when each line is encoded alone (issue 19's hierarchical model).

    python benchmarks/line_probe.py --layers 3,6 --epochs 12          # ~20 min encoding + ~5 min/epoch/K, 2 cores
    python benchmarks/line_probe.py --layers 3 --epochs 8      # the cached K=3 vectors: training only
    python benchmarks/line_probe.py --layers 2,3,6 --speed     # speed of the line encoders only (~3 min)

Each distinct line of the gold pages (its first 24 tokens, as the base model reads it) goes alone, between
<s> and </s>, through the lower K layers of the released base model (frozen); its vector is the mean of its
tokens' hidden states and its first token's. The fast tier's page transformer (`pagesieve.fast`, 4 layers,
hidden 256, the shape features, positions from the top and bottom) is then trained over those vectors of the
whole page, on the gold train pages, the epoch chosen on half A of the validation sites (`fast.fit`).
Prints, per K, half A and dev macro-F1 and per-class F1 next to the released model's on the same lines.
The vectors are cached per K (`--cache`); one encoder pass computes every K not cached yet.

--speed times, instead, the line encoder alone against the released model on the same 60 validation pages
(from their lines): the K-layer encoder exported to ONNX int8 like the base model (`pagesieve.onnxrt`), the
distinct lines of 16 pages at a time encoded once, each line alone (labels independent of the batch) or 64
lines per call; the base predictor timed in the same minute. The page transformer is not counted.
Results: docs/model-history.md, candidate H.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pagesieve import encoding, fast  # noqa: E402
from pagesieve.labels import IGNORE, LABEL2ID, LABELS  # noqa: E402

LINE_TOKENS = 24
SETS = {"train": ["../shared/data/gold/train.jsonl", "data/gold/train.jsonl.gz"],
        "validation": ["data/gold/validation.jsonl.gz"], "dev": ["../shared/data/gold/dev.jsonl"]}


class OnVectors(fast.LinePageModel):
    """The fast tier's page transformer reading precomputed line vectors: a line's single 'token' is the
    row of its vector in `table` (so `fast.collate`, `FastPredictor.probs` and `fast.fit` work unchanged)."""

    def __init__(self, cfg: fast.FastConfig, table: torch.Tensor):
        super().__init__(cfg, line_dim=table.shape[1])
        self.register_buffer("table", table, persistent=False)

    def line_vectors(self, ids, offsets, first, last):
        return self.table[first]


def line_vectors(seqs: list[tuple[int, ...]], layers: list[int], bos: int, eos: int, tokens_per_batch: int = 4096) -> np.ndarray:
    """(lines, len(layers), 2, hidden) fp16: mean over the line's tokens and its first token, per layer."""
    from pagesieve.modeling import load

    bert = load(ROOT / "model").bert
    out = np.zeros((len(seqs), len(layers), 2, bert.config.hidden_size), np.float16)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    t0, i = time.time(), 0
    with torch.inference_mode():
        while i < len(order):
            idx = order[i:i + max(8, tokens_per_batch // (len(seqs[order[i]]) + 2))]
            width = max(len(seqs[j]) for j in idx) + 2
            ids = torch.full((len(idx), width), bert.config.pad_token_id, dtype=torch.long)
            att = torch.zeros_like(ids)
            for r, j in enumerate(idx):
                ids[r, :len(seqs[j]) + 2] = torch.tensor([bos, *seqs[j], eos])
                att[r, :len(seqs[j]) + 2] = 1
            hidden = bert(input_ids=ids, attention_mask=att, output_hidden_states=True).hidden_states
            own = att.clone()
            own[:, 0] = 0
            own[torch.arange(len(idx)), att.sum(1) - 1] = 0  # pool over the line's own tokens only
            own = own.unsqueeze(-1).float()
            for k, layer in enumerate(layers):
                h = hidden[layer]
                out[idx, k, 0] = ((h * own).sum(1) / own.sum(1)).numpy()
                out[idx, k, 1] = h[:, 1].numpy()
            i += len(idx)
            print(f"\rencoding lines: {i:,}/{len(seqs):,} ({time.time() - t0:.0f} s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def speed(pages: list[list[str]], ks: list[int], enc):
    """Print each K's line-encoder pages/s and its ratio to the base predictor's, timed alternately."""
    from pagesieve import Predictor
    from pagesieve.modeling import load
    from pagesieve.onnxrt import OnnxForward

    base = Predictor.from_pretrained(ROOT / "model", runtime="onnx-int8")
    base.predict_many(pages[:4])
    for k in ks:
        model = load(ROOT / "model")
        model.bert.encoder.layer = nn.ModuleList(list(model.bert.encoder.layer)[:k])
        model.config.num_hidden_layers = k
        run_onnx = OnnxForward(model, int8=True, threads=torch.get_num_threads())

        def encode(chunk):
            width = max(map(len, chunk)) + 2
            ids = np.full((len(chunk), width), model.config.pad_token_id, np.int64)
            att = np.zeros_like(ids)
            for r, s in enumerate(chunk):
                ids[r, :len(s) + 2] = [enc.bos, *s, enc.eos]
                att[r, :len(s) + 2] = 1
            return run_onnx(ids, att, np.zeros_like(ids), np.ones((len(chunk), 1), np.int64))

        for per_call in (1, 64):
            def lines_through_encoder():
                t = time.time()
                for b in range(0, len(pages), 16):
                    distinct = sorted({tuple(t) for t in enc.line_tokens([l for p in pages[b:b + 16] for l in p if l.strip()])}, key=len)
                    run_onnx.map(encode, [distinct[i:i + per_call] for i in range(0, len(distinct), per_call)])
                return time.time() - t

            lines_through_encoder()  # warm-up
            took = lines_through_encoder()
            t = time.time()
            base.predict_many(pages)
            base_took = time.time() - t
            print(f"K={k}, {'each line alone' if per_call == 1 else f'{per_call} lines per call'}: {len(pages) / took:.1f} pages/s; "
                  f"base model {len(pages) / base_took:.1f} pages/s in the same minute: {base_took / took:.2f}x", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="3,6", help="encoder depths K to try, comma-separated (default 3,6)")
    ap.add_argument("--epochs", type=int, default=12, help="epochs of the page transformer (default 12)")
    ap.add_argument("--cache", default="runs/line-probe", help="folder for the line vectors (default runs/line-probe)")
    ap.add_argument("--max-pages", type=int, default=0, help="at most this many pages of each set (a quick check)")
    ap.add_argument("--speed", action="store_true", help="time the line encoders instead (see above)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from pagesieve.data.annotate import validation_half
    from pagesieve.data.pages import site_of
    from pagesieve.encoding import PageEncoder
    from pagesieve.metrics import scores
    from pagesieve.modeling import load_tokenizer
    from pagesieve.training import load_sources

    ks = sorted({int(k) for k in args.layers.split(",")})
    tok = load_tokenizer(ROOT / "model")
    enc = PageEncoder(tok, max_length=LINE_TOKENS + 2, line_token_budget=LINE_TOKENS, overlap=0)
    pages, index = {}, {}
    for name, specs in SETS.items():
        pages[name] = [p for p in load_sources(specs) if any(line.strip() for line in p["lines"])][:args.max_pages or None]
        for p in pages[name]:
            p["kept"] = [i for i, line in enumerate(p["lines"]) if line.strip()]
            p["rows"] = [index.setdefault(tuple(t), len(index)) for t in enc.line_tokens([p["lines"][i] for i in p["kept"]])]
    if args.speed:
        return speed([p["lines"] for p in pages["validation"][:60]], ks, enc)
    seqs = list(index)
    key = hashlib.sha1(json.dumps(seqs).encode()).hexdigest()[:12]
    cached = {k: Path(args.cache) / f"lines-{key}-K{k}.npy" for k in ks}
    missing = [k for k in ks if not cached[k].exists()]
    if missing:  # one encoder pass for every depth not cached yet
        Path(args.cache).mkdir(parents=True, exist_ok=True)
        vectors = line_vectors(seqs, missing, enc.bos, enc.eos)
        for n, k in enumerate(missing):
            np.save(cached[k], vectors[:, n])
    print(f"{len(seqs):,} distinct lines; pages: " + ", ".join(f"{k} {len(v)}" for k, v in pages.items()), flush=True)

    def encoded(ps):
        out = []
        for p in ps:
            y = np.array([LABEL2ID.get(p["labels"][i], IGNORE) if p["labels"][i] else IGNORE for i in p["kept"]])
            out.append(encoding.EncodedLines(len(p["lines"]), p["kept"], [[r] for r in p["rows"]],
                                             encoding.line_features([p["lines"][i] for i in p["kept"]]), y))
        return out

    train = encoded(pages["train"])
    weights = [float(p.get("weight", 1.0)) for p in pages["train"]]
    half_a_pages = [p for p in pages["validation"] if validation_half(site_of(p)) == "A"]
    half_a = encoded(half_a_pages)
    dev = encoded(pages["dev"])

    from pagesieve import Predictor

    base = Predictor.from_pretrained(ROOT / "model", runtime="onnx-int8")  # as `pagesieve predict` runs it on a CPU

    def base_scores(ps, es):
        preds = base.predict_many([p["lines"] for p in ps])
        gold = np.concatenate([e.labels for e in es])
        pred = np.array([LABEL2ID[line.label] for page in preds for line in page])  # one per non-blank line
        return scores(gold[gold != IGNORE], pred[gold != IGNORE])

    rows = [("released base model (windows)", base_scores(half_a_pages, half_a), base_scores(pages["dev"], dev))]
    for k in ks:
        table = torch.from_numpy(np.load(cached[k]).astype(np.float32).reshape(len(seqs), -1))
        cfg = fast.FastTrainConfig(epochs=args.epochs, seed=13)
        torch.manual_seed(cfg.seed)
        model = OnVectors(fast.FastConfig(), table)
        fm = fast.FastPredictor(model, tok, "cpu")
        best_state = {}
        history, _ = fast.fit(fm, train, weights, half_a, cfg,
                              lambda score: best_state.update({k: v.clone() for k, v in model.state_dict().items()}))
        model.load_state_dict(best_state)
        model.eval()
        rows.append((f"each line alone, K={k} layers", fast.evaluate_pages(fm, half_a), fast.evaluate_pages(fm, dev)))
    print("\n| model | half A macro-F1 | content | caption | navigation | ui_chrome | dev macro-F1 |\n|---|---|---|---|---|---|---|")
    for name, a, d in rows:
        print(f"| {name} | {a['macro_f1']:.3f} | " + " | ".join(f"{a[l]['f1']:.3f}" for l in LABELS) + f" | {d['macro_f1']:.3f} |")


if __name__ == "__main__":
    main()
