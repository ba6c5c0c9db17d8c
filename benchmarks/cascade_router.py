"""Could a learned router pick the lines worth the base model better than the fast tier's top probability?
(issue 19; docs/model-history.md, "the cascade's router").

    python benchmarks/cascade_router.py                      # half A, 5 folds by page

On labeled pages, the released fast tier and base model (CPU defaults) label every line, the base model over
whole pages. A cascade that sends a share of the lines to the base model takes the base model's label there and
the fast tier's elsewhere (context and tokens aside: this compares orderings of lines, not costs). Three
orderings, at the same shares: 1 - the fast tier's top probability (the released cascade's rule), and two
routers fitted on the other folds' pages (a logistic regression and an MLP with 32 hidden units, on 19 features
of the fast tier's probabilities, of the line's neighbours and of the line's length and position) to predict
where the base model's label differs from the fast tier's. Printed: macro-F1 on the gold lines at each share.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARES = (0.10, 0.15, 0.20, 0.26, 0.30, 0.35)


def features(fast: np.ndarray, page: np.ndarray, position: np.ndarray, n_tokens: np.ndarray) -> np.ndarray:
    top, label = fast.max(1), fast.argmax(1)
    ranked = np.sort(fast, 1)
    entropy = -(fast * np.log(fast + 1e-9)).sum(1)

    def neighbour(x, k, outside):  # line i + k's value on the same page, else `outside`
        j = np.arange(len(x)) + k
        inside = (j >= 0) & (j < len(x))
        j = np.clip(j, 0, len(x) - 1)
        return np.where(inside & (page[j] == page), x[j], outside)

    columns = [top, ranked[:, -1] - ranked[:, -2], entropy, np.log1p(n_tokens), position,
               *(neighbour(top, k, 1.0) for k in (-2, -1, 1, 2)), *fast.T, *(label == c for c in range(fast.shape[1])),
               neighbour(label, -1, -1) == label, neighbour(label, 1, -1) == label]
    return np.stack(columns, 1).astype(np.float32)


def fit(x: np.ndarray, y: np.ndarray, hidden: int, steps: int):
    """A logistic regression (hidden 0) or a one-layer MLP, full-batch Adam on standardized features."""
    import torch

    torch.manual_seed(0)
    mean, std = x.mean(0), x.std(0) + 1e-6
    net = torch.nn.Linear(x.shape[1], 1) if not hidden else torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.Adam(net.parameters(), lr=0.01, weight_decay=1e-4)
    xs, ys = torch.from_numpy((x - mean) / std), torch.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(net(xs)[:, 0], ys).backward()
        opt.step()
    return lambda z: torch.sigmoid(net(torch.from_numpy((z - mean) / std))[:, 0]).detach().numpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "runs" / "validation-A.jsonl"), help="labeled pages (JSONL)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--target", choices=("differs", "gain"), default="differs",
                    help="what the routers predict: the base model's label differs from the fast tier's, or (gain) "
                         "the base model's label is right and the fast tier's wrong")
    args = ap.parse_args(argv)
    from pagesieve import Predictor
    from pagesieve.labels import IGNORE, LABEL2ID
    from pagesieve.metrics import scores

    pages = [json.loads(line) for line in open(args.data, encoding="utf-8")]
    lines = [p["lines"] for p in pages]
    fast_model, base_model = Predictor.from_pretrained("fast", runtime="auto"), Predictor.from_pretrained(runtime="auto")
    encoded = fast_model.encode(lines)
    fast = np.concatenate(fast_model.probs(encoded))
    base = np.concatenate(base_model.probs(base_model.encode(lines)))
    gold, page, position, n_tokens = [], [], [], []
    for k, (p, e) in enumerate(zip(pages, encoded)):
        for j, i in enumerate(e.kept):
            gold.append(LABEL2ID.get(p["labels"][i], IGNORE))
            page.append(k)
            position.append(j / max(1, len(e.kept) - 1))
            n_tokens.append(len(e.tokens[j]))
    gold, page = np.array(gold), np.array(page)
    x = features(fast, page, np.array(position), np.array(n_tokens))
    fast_label, base_label = fast.argmax(1), base.argmax(1)
    differs = fast_label != base_label
    scored = gold != IGNORE
    target = differs.astype(np.float32)
    if args.target == "gain":
        target = (scored & (base_label == gold) & (fast_label != gold)).astype(np.float32)
    print(f"{len(pages)} pages, {len(gold):,} lines; base model's label differs from the fast tier's on {differs.mean():.1%}")

    orderings = {"1 - top probability": 1 - fast.max(1)}
    for name, hidden, steps in (("logistic regression", 0, 300), ("MLP, 32 hidden", 32, 500)):
        score = np.zeros(len(gold), np.float32)
        for f in range(args.folds):  # fitted on the other folds' pages
            test = page % args.folds == f
            score[test] = fit(x[~test], target[~test], hidden, steps)(x[test])
        orderings[f"router: {name}"] = score
    print("| lines sent first by | " + " | ".join(f"{s:.0%} sent" for s in SHARES) + " |")
    print("|---" * (1 + len(SHARES)) + "|")
    for name, score in orderings.items():
        order = np.argsort(-score, kind="stable")
        cells = []
        for share in SHARES:
            sent = np.zeros(len(gold), bool)
            sent[order[:int(share * len(gold))]] = True
            cells.append(f"{scores(gold[scored], np.where(sent, base_label, fast_label)[scored])['macro_f1']:.4f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for name, label in (("fast tier alone", fast_label), ("base model alone", base_label)):
        print(f"{name}: {scores(gold[scored], label[scored])['macro_f1']:.4f}")


if __name__ == "__main__":
    main()
