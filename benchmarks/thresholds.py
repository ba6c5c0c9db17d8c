"""The precision/recall trade-off of a content threshold (`--min-prob content=T`, `min_prob=` in the
API): content precision, recall and F1, counting lines and characters, on labeled pages.

    python benchmarks/thresholds.py                                   # the gold dev pages, torch and onnx-int8
    python benchmarks/thresholds.py --data data/gold/validation.jsonl.gz --runtimes onnx-int8

The model runs once per runtime; each threshold then relabels the same probabilities with the rule
of `pagesieve.encoding.choose_labels` (a line whose top label is content below T takes its next
most probable label). "none" is the plain argmax, what `pagesieve label` does without --min-prob.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEV = ROOT.parent / "shared" / "data" / "gold" / "dev.jsonl"


def content_scores(pages, encoded, threshold: float | None) -> dict:
    """Content precision/recall/F1 of the lines labeled with the threshold; `encoded`: the model's
    (page encoding, probabilities) per page."""
    from pagesieve.encoding import per_line
    from pagesieve.evaluation import OTHER, gold_of
    from pagesieve.labels import LABELS
    from pagesieve.metrics import char_content_scores, scores

    gold, pred, lens = [], [], []
    for page, (enc, probs) in zip(pages, encoded):
        idx, g, n = gold_of(page)
        ids = per_line(enc, probs, {"content": threshold} if threshold is not None else None)
        gold += g
        pred += [OTHER if ids[i] is None else ids[i] for i in idx]  # a line the model skips is not content
        lens += n
    lines = scores(gold, pred)["content"]
    return {"lines": lines, "chars": char_content_scores(gold, pred, lens),
            "kept": float(np.mean(np.array(pred) == LABELS.index("content")))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEV), help="labeled pages (default: the gold dev pages)")
    ap.add_argument("--model", help="model folder (default: the released model)")
    ap.add_argument("--runtimes", default="torch,onnx-int8")
    ap.add_argument("--thresholds", default="0.5,0.55,0.6,0.65,0.7,0.75,0.8,0.85,0.9,0.95")
    args = ap.parse_args(argv)

    from pagesieve.data import read_pages
    from pagesieve.predictor import Predictor

    pages = list(read_pages(args.data))
    thresholds = [None] + [float(t) for t in args.thresholds.split(",")]
    print(f"{len(pages)} pages of {args.data}; content precision / recall / F1, by lines and by characters\n")
    print("| runtime | content min-prob | P lines | R lines | F1 lines | P chars | R chars | F1 chars | lines kept |")
    print("|---|---|---|---|---|---|---|---|---|")
    for runtime in args.runtimes.split(","):
        predictor = Predictor.from_pretrained(args.model, device="cpu", runtime=runtime)
        encoded = predictor.line_probs([p["lines"] for p in pages])
        for t in thresholds:
            s = content_scores(pages, encoded, t)
            line, char = s["lines"], s["chars"]
            print(f"| {runtime} | {'none' if t is None else f'{t:.2f}'} | {line['precision']:.3f} | "
                  f"{line['recall']:.3f} | {line['f1']:.3f} | {char['precision']:.3f} | {char['recall']:.3f} | "
                  f"{char['f1']:.3f} | {s['kept']:.1%} |", flush=True)


if __name__ == "__main__":
    main()
