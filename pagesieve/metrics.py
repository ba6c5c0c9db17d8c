"""Line-level metrics: per-class precision/recall/F1, macro-F1, accuracy, confusion matrix,
and content precision/recall weighted by characters."""
from __future__ import annotations

import numpy as np

from .labels import LABELS


def confusion(gold, pred, n: int = len(LABELS)) -> np.ndarray:
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (np.asarray(gold, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return cm  # rows: gold, columns: predicted


def scores(gold, pred, weights=None) -> dict:
    """Metrics of predicted vs gold label ids (0..3); `weights` (e.g. characters) optional."""
    gold, pred = np.asarray(gold, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    w = np.ones(len(gold)) if weights is None else np.asarray(weights, dtype=np.float64)
    out = {"lines": int(len(gold))}
    f1s = []
    for i, name in enumerate(LABELS):
        tp = w[(gold == i) & (pred == i)].sum()
        fp = w[(gold != i) & (pred == i)].sum()
        fn = w[(gold == i) & (pred != i)].sum()
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[name] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
                     "support": int((gold == i).sum())}
        f1s.append(f)
    out["macro_f1"] = round(float(np.mean(f1s)), 4)
    out["accuracy"] = round(float(w[gold == pred].sum() / w.sum()) if len(gold) else 0.0, 4)
    cm = confusion(gold, pred)
    out["confusion"] = cm.tolist()
    n = cm.sum()
    chance = float((cm.sum(0) * cm.sum(1)).sum()) / n ** 2 if n else 0.0
    out["kappa"] = round((out["accuracy"] - chance) / (1 - chance), 4) if n and chance < 1 else 0.0
    return out


def char_content_scores(gold, pred, lengths) -> dict:
    """Content precision/recall/F1 counting characters, not lines (what a text user keeps)."""
    s = scores(gold, pred, lengths)["content"]
    return {k: s[k] for k in ("precision", "recall", "f1")}
