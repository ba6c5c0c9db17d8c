"""How a cascade's settings trade the base model's tokens for accuracy (docs/model-history.md, candidate C).

    python benchmarks/cascade_probe.py                                    # half A, the settings of the table
    python benchmarks/cascade_probe.py --data runs/validation-A.jsonl --settings 0.85:2:8,0.9:2:0,0.85:2:4:16:32
    python benchmarks/cascade_probe.py --fast runs/fast-convends/best --settings 0.7:2:8,0.85:2:8

For each setting THRESHOLD:CONTEXT_LINES:CONTEXT_TOKENS[:UNSURE_TOKENS[:OVERLAP_TOKENS]] (the settings of
`pagesieve.cascade`; THRESHOLD one number or one per label, in the models' order: 0.7/0.85/0.8/0.85; tokens 0:
all the base model reads of a line; no OVERLAP_TOKENS: the base model's), the released
fast tier (or `--fast FOLDER`) and base model (their CPU defaults: bf16 where native, onnx-int8) run as `pagesieve.cascade` runs
them, on labeled pages; printed: macro-F1 and per-class F1 on the gold lines, the share of lines the fast tier
is unsure of, and the tokens and segments the base model reads (of those tokens, the unsure lines' own and their
context lines'), next to the base model alone. Choose settings on pages that do not judge them (half A);
`runs/validation-A.jsonl` is written by `pagesieve.data.annotate`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS = ("0.8:0:0,0.8:1:0,0.8:2:0,0.8:2:8,0.8:2:4,0.8:3:8,0.8:4:0,0.7:2:0,0.7:2:8,0.85:1:0,0.85:2:0,0.85:2:8,"
            "0.85:3:8,0.9:0:0,0.9:2:0,0.9:2:8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "runs" / "validation-A.jsonl"),
                    help="labeled pages (JSONL, or data/gold's hash-only files)")
    ap.add_argument("--settings", default=SETTINGS,
                    help="comma-separated THRESHOLD:CONTEXT_LINES:CONTEXT_TOKENS[:UNSURE_TOKENS[:OVERLAP_TOKENS]]")
    ap.add_argument("--fast", default="fast", help="the fast tier's folder (default: the released one)")
    args = ap.parse_args(argv)
    from pagesieve import Predictor
    from pagesieve.cascade import CascadePredictor
    from pagesieve.data import read_pages
    from pagesieve.labels import IGNORE, LABEL2ID, LABELS
    from pagesieve.metrics import scores

    pages = list(read_pages(args.data, strict=True))  # a page left out would change every figure
    lines = [p["lines"] for p in pages]
    gold = np.array([LABEL2ID.get(p["labels"][i], IGNORE) if p["labels"][i] else IGNORE
                     for p in pages for i, line in enumerate(p["lines"]) if line.strip()])
    scored = gold != IGNORE
    fast = Predictor.from_pretrained(args.fast, runtime="auto")
    base = Predictor.from_pretrained(runtime="auto")

    def row(name, probs, extra):
        s = scores(gold[scored], np.concatenate([p.argmax(1) for p in probs])[scored])
        print(f"| {name} | {s['macro_f1']:.4f} | " + " | ".join(f"{s[k]['f1']:.3f}" for k in LABELS) + f" | {extra} |",
              flush=True)

    print("| setting | macro-F1 | " + " | ".join(LABELS) + " | base tokens, segments, unsure lines |")
    print("|---" * (3 + len(LABELS)) + "|")
    encoded = base.encode(lines)
    full = sum(len(w.input_ids) for e in encoded for w in e.windows)
    fast_encoded = fast.encode(lines)
    fast_pages = fast.probs(fast_encoded)  # the same for every setting
    fast_probs = np.concatenate(fast_pages)
    top, fast_label = fast_probs.max(1), fast_probs.argmax(1)
    row("base model alone", base.probs(encoded), f"{full:,}, {sum(len(e.windows) for e in encoded):,} windows, –")
    for setting in args.settings.split(","):
        threshold, *rest = setting.split(":")
        per_label = [float(t) for t in threshold.split("/")]
        if len(per_label) not in (1, len(fast.labels)):
            ap.error(f"{setting}: one threshold, or one per label ({'/'.join(fast.labels)})")
        threshold = dict(zip(fast.labels, per_label)) if len(per_label) > 1 else per_label[0]
        cascade = CascadePredictor(fast, base, threshold, *map(int, rest))
        read = []
        base_probs = base.probs
        base.probs = lambda segments, *a: read.extend(segments) or base_probs(segments, *a)
        try:
            probs = [p for _, p in cascade.line_probs(lines)]
        finally:
            del base.probs
        tokens = sum(len(w.input_ids) for s in read for w in s.windows)
        unsure = np.mean(top < cascade.thresholds[fast_label])
        own, context = line_tokens(cascade, fast_encoded, fast_pages)
        assert own + context <= tokens, "the split counts tokens the base model did not read"
        row(f"cascade {setting}", probs, f"{tokens:,} ({tokens / full:.1%}; unsure lines {own:,}, context lines "
                                         f"{context:,}), {len(read):,}, {unsure:.1%}")


def line_tokens(cascade, encoded, fast_probs) -> tuple[int, int]:
    """The tokens the base model reads of the unsure lines and of their context lines, as `CascadePredictor.probs`
    cuts them (the rest of its tokens are each window's <s>, </s> and overlap)."""
    from pagesieve.cascade import unsure_runs

    full = cascade.base.encoder.budget
    budget, context = cascade.unsure_tokens or full, cascade.context_tokens or full
    own = around = 0
    for page, probs in zip(encoded, fast_probs):
        unsure = probs.max(1) < cascade.thresholds[probs.argmax(1)]
        for start, end in unsure_runs(unsure, cascade.context_lines):
            for j, t in enumerate(page.tokens[start:end], start):
                if unsure[j]:
                    own += min(len(t), budget)
                else:
                    around += min(len(t), context)
    return own, around


if __name__ == "__main__":
    main()
