"""The four line labels of ../shared/LABELS.md, in a fixed order (the model's output ids)."""
from __future__ import annotations

from typing import Iterable

LABELS = ("content", "caption", "navigation", "ui_chrome")
LABEL2ID = {label: i for i, label in enumerate(LABELS)}
ID2LABEL = dict(enumerate(LABELS))
IGNORE = -100  # label id of tokens that carry no line label (HF convention)


def check_label(label: str) -> int:
    try:
        return LABEL2ID[label]
    except KeyError:
        raise ValueError(f"unknown label {label!r}: expected one of {', '.join(LABELS)}") from None


def check_keep(keep: str | Iterable[str]) -> tuple[str, ...]:
    """The labels of a line to keep, one ("content") or several, checked: ValueError when one is
    unknown or there is none."""
    keep = (keep,) if isinstance(keep, str) else tuple(keep)  # "content": one label, not its letters
    bad = [str(k) for k in keep if k not in LABELS]
    if bad or not keep:
        problem = f"unknown label(s) {', '.join(bad)}" if bad else "no label to keep"
        raise ValueError(f"{problem}: choose from {', '.join(LABELS)}")
    return keep
