"""The cascade: a fast-tier model on every line, the base model only where the fast model is unsure.

Where the fast model's top probability is high it is about as right as the base model, and most lines are
such lines; the base model's cost is its encoder over every token. So the cascade runs the fast model on the
whole page, then the base model (unchanged) over each run of unsure lines (top probability < `threshold`, one
number or one per label the fast model gives the line: {"content": 0.7, "caption": 0.85, ...}),
widened by `context_lines` lines on either side whose tokens are cut to `context_tokens`: the base model sees
an unsure line among its neighbours, as in its own windows. An unsure line takes the base model's
probabilities; every other line keeps the fast model's. A line's result depends on its own page only.

A cascade is a folder with a `config.json`: {"pagesieve_arch": "cascade", "fast": "fast", "base": "..",
"threshold": ..., "context_lines": ..., "context_tokens": ..., "unsure_tokens": ..., "overlap_tokens": ...}, the
two models' folders relative to it (the fast one may be a subfolder, as in the released one). `context_tokens`
and `unsure_tokens` (tokens the base model reads of a context line and of an unsure line) 0 (or for
`unsure_tokens` absent): all the tokens it reads of a line; `overlap_tokens` (what consecutive windows of a long
run share) absent: the base model's own. The released one is `model/cascade/` (`--model cascade`): its own fast
model `model/cascade/fast/` (FE: the fast tier's line vectors under 4 page layers; `model/fast`, FF, has 3) and
the base model `model/`; how its models and settings were chosen: docs/model-history.md.

Its runtime is the base model's (`--runtime onnx-int8`, the fast tier then on its auto), one both models have
(`torch`, `torch-bf16`, `auto`), or one for each, FAST+BASE (`torch+onnx-int8`: the fast tier in fp32 on a CPU
that does bf16, e.g. to resume a dump begun on one that does not).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .encoding import EncodedLines
from .fast import _Config
from .labels import LABELS
from .modeling import arch_of
from .predictor import Predictor

ARCH = "cascade"


def is_cascade_dir(folder: str | Path) -> bool:
    return arch_of(folder) == ARCH


SETTINGS = ("threshold", "context_lines", "context_tokens", "unsure_tokens", "overlap_tokens")


def read_config(folder: str | Path) -> dict:
    """The cascade's settings, with `fast` and `base` as absolute folders; a ValueError says what is wrong."""
    folder = Path(folder)
    conf = json.loads((folder / "config.json").read_text())
    unknown = sorted(set(conf) - {"pagesieve_arch", "fast", "base", *SETTINGS})
    if unknown:
        raise ValueError(f"{folder}/config.json: unknown setting(s) {', '.join(unknown)}: a cascade has fast, base, "
                         f"{', '.join(SETTINGS)}")
    for key in ("fast", "base"):
        if not isinstance(conf.get(key), str):
            raise ValueError(f"{folder}/config.json: a cascade needs \"{key}\": the folder of its {key} model")
        conf[key] = (folder / conf[key]).resolve()
    try:
        check_settings(*(conf.get(key) for key in SETTINGS))
    except ValueError as e:
        raise ValueError(f"{folder}/config.json: {e}") from None
    return conf


def check_settings(threshold, context_lines, context_tokens, unsure_tokens=None, overlap_tokens=None, labels=LABELS):
    """A ValueError naming the first bad setting (None: the default, where a setting has one)."""
    def bad(value, kind):
        return isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or kind(value) != value

    if isinstance(threshold, dict):
        if set(threshold) != set(labels):
            raise ValueError(f"threshold must name each label once ({', '.join(labels)}), not "
                             f"{', '.join(map(str, threshold)) or 'none'}")
    if any(bad(v, float) for v in (threshold.values() if isinstance(threshold, dict) else [threshold])):
        raise ValueError(f"threshold must be a number ≥ 0 or one per label ({{\"content\": 0.7, ...}}), not {threshold!r}")
    for key, value in (("context_lines", context_lines), ("context_tokens", context_tokens),
                       ("unsure_tokens", unsure_tokens), ("overlap_tokens", overlap_tokens)):
        if (value is not None or key in ("context_lines", "context_tokens")) and bad(value, int):
            raise ValueError(f"{key} must be a number ≥ 0 (whole), not {value!r}")


def unsure_runs(unsure: np.ndarray, context: int) -> list[tuple[int, int]]:
    """[start, end) runs of lines covering every unsure line and `context` lines on either side of it;
    runs that touch or overlap are one."""
    runs: list[tuple[int, int]] = []
    for i in np.flatnonzero(unsure).tolist():
        start, end = max(0, i - context), min(len(unsure), i + context + 1)
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return runs


class CascadePredictor(Predictor):
    """The `Predictor` API (predict, predict_many, clean, line_probs, dumps) over a fast and a base predictor."""

    def __init__(self, fast: Predictor, base: Predictor, threshold: float | dict[str, float], context_lines: int,
                 context_tokens: int, unsure_tokens: int | None = None, overlap_tokens: int | None = None):
        check_settings(threshold, context_lines, context_tokens, unsure_tokens, overlap_tokens, fast.labels)
        self.fast, self.base = fast, base
        # the settings as they act (so that settings that act alike are one dump identity)
        by_label = [float(threshold[label]) for label in fast.labels] if isinstance(threshold, dict) else [float(threshold)]
        self.threshold = by_label[0] if len(set(by_label)) == 1 else dict(zip(fast.labels, by_label))
        self.thresholds = np.array(by_label * (len(fast.labels) // len(by_label)), dtype=np.float32)  # by fast label
        full, enc = base.encoder.budget, base.encoder
        self.context_lines, self.context_tokens = int(context_lines), min(int(context_tokens), full) % full
        self.unsure_tokens = min(int(unsure_tokens or 0), full) % full  # 0: all the base model reads of a line
        self.overlap_tokens = enc.overlap if overlap_tokens is None else min(int(overlap_tokens), enc.capacity // 2)
        self.device = fast.device
        self.labels = fast.labels
        self.encoder = fast.encoder  # the fast tier's tokens: the base model reads each line's first ones
        self.model = self.onnx = None
        self.parts = (fast, base)  # what dump.model_identity hashes
        settings = {"pagesieve_arch": ARCH, "threshold": self.threshold, "context_lines": self.context_lines,
                    "context_tokens": self.context_tokens}
        # the later settings only where they differ from their defaults: a config without them keeps its identity
        if self.unsure_tokens:
            settings["unsure_tokens"] = self.unsure_tokens
        if self.overlap_tokens != enc.overlap:
            settings["overlap_tokens"] = self.overlap_tokens
        self.config = _Config(settings)

    @classmethod
    def from_folder(cls, folder: str | Path, device: str | None = None, runtime: str = "auto") -> "CascadePredictor":
        """The cascade of a folder (see the module's docstring for `runtime`); ValueError for a runtime or
        models it cannot run, before anything loads where it can."""
        from . import fast as fast_tier
        from . import onnxrt

        conf = read_config(folder)
        fast_runtime, base_runtime = onnxrt.split_runtime(runtime)
        names = {fast_tier.ARCH: "fast tier", None: "base model", ARCH: "cascade"}
        for key, want in (("fast", fast_tier.ARCH), ("base", None)):
            got = arch_of(conf[key])
            if got != want:
                raise ValueError(f"{folder}/config.json: \"{key}\" must be a {names[want]}, not a "
                                 f"{names.get(got, got)} ({conf[key]})")
        fast_tier.resolve_runtime(fast_runtime, "cpu")  # unknown ones: refused before loading
        onnxrt.resolve_runtime(base_runtime, "cpu")
        fast = Predictor.from_pretrained(conf["fast"], device, fast_runtime)
        base = Predictor.from_pretrained(conf["base"], device, base_runtime)
        if fast.labels != base.labels:
            raise ValueError(f"{folder}: its models' labels differ ({fast.labels} and {base.labels})")
        if base.encoder.budget > fast.cfg.line_tokens:
            raise ValueError(f"{folder}: the base model reads {base.encoder.budget} tokens of a line, the fast tier only "
                             f"{fast.cfg.line_tokens}: the base model's lines would be cut short")
        return cls(fast, base, *(conf.get(key) for key in SETTINGS))

    @property
    def default_batch_size(self) -> int:
        return self.fast.default_batch_size

    def ahead(self, encoded: list[EncodedLines], batch_size: int | None = None) -> list[np.ndarray]:
        """The fast tier's probabilities, which `probs` takes: a dump computes them in its reading thread, where
        the fast tier's single-threaded parts overlap the base model's work on the pages before."""
        return self.fast.probs(encoded, batch_size)  # checks batch_size

    def probs(self, encoded: list[EncodedLines], batch_size: int | None = None,
              ahead: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Per page, (non-blank lines, classes) probabilities; `batch_size`: pages per fast-tier pass (the base
        model batches its windows as it does alone); `ahead`: what `ahead(encoded)` gave (else computed here;
        copied, not written to)."""
        out = self.fast.probs(encoded, batch_size) if ahead is None else [a.copy() for a in ahead]
        if len(out) != len(encoded):
            raise ValueError(f"ahead holds {len(out)} pages' probabilities for {len(encoded)} pages")
        full = self.base.encoder.budget
        budget, context = self.unsure_tokens or full, self.context_tokens or full
        jobs, segments = [], []
        for p, (page, probs) in enumerate(zip(encoded, out)):
            unsure = probs.max(1) < self.thresholds[probs.argmax(1)]
            for start, end in unsure_runs(unsure, self.context_lines):
                toks = [t[:budget] if unsure[j] else t[:context] for j, t in enumerate(page.tokens[start:end], start)]
                segments.append(self.base.encoder.windows(page.n_lines, page.kept[start:end], toks,
                                                          overlap=self.overlap_tokens))
                jobs.append((p, start, end, unsure[start:end]))
        for (p, start, end, unsure), probs in zip(jobs, self.base.probs(segments)):
            out[p][start:end][unsure] = probs[unsure]
        return out
