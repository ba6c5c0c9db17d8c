"""The four line labels of ../shared/LABELS.md, in a fixed order (the model's output ids)."""

LABELS = ("content", "caption", "navigation", "ui_chrome")
LABEL2ID = {label: i for i, label in enumerate(LABELS)}
ID2LABEL = dict(enumerate(LABELS))
IGNORE = -100  # label id of tokens that carry no line label (HF convention)


def check_label(label: str) -> int:
    try:
        return LABEL2ID[label]
    except KeyError:
        raise ValueError(f"unknown label {label!r}: expected one of {', '.join(LABELS)}") from None
