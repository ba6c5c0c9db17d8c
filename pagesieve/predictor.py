"""`Predictor`: label every line of a page as content / caption / navigation / ui_chrome."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from . import modeling
from .encoding import EncodedPage, PageEncoder, merge_window_probs
from .labels import LABELS


@dataclass
class LinePrediction:
    index: int  # position of the line in the page (blank lines are skipped, not renumbered)
    text: str
    label: str
    probs: dict[str, float]

    def __repr__(self):
        return f"LinePrediction({self.index}, {self.label}, {self.probs[self.label]:.2f}, {self.text[:40]!r})"


def as_lines(text_or_lines: str | Sequence[str]) -> list[str]:
    if isinstance(text_or_lines, str):
        return text_or_lines.splitlines()
    return [str(line) for line in text_or_lines]


class Predictor:
    def __init__(self, model, tokenizer, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda":
            model = model.to(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.onnx = None  # an OnnxForward when use_onnx() was called
        self.labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        self.encoder = PageEncoder(tokenizer, **modeling.encoding_settings(model))

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None,
                        runtime: str = "torch") -> "Predictor":
        """Load a checkpoint (default: the released model in `model/`); CUDA when available.

        `runtime` on a CPU: "torch" (fp32), "torch-int8" (torch dynamic quantization: faster, less
        accurate), "onnx" (ONNX Runtime, fp32), "onnx-int8" (ONNX Runtime with int8 weights: the
        fastest, about as accurate as fp32), or "auto" (onnx-int8 on a CPU, torch on a GPU)."""
        from .backbone import load_tokenizer
        from .onnxrt import resolve_runtime

        predictor = cls(modeling.load(path), load_tokenizer(), device)
        runtime = resolve_runtime(runtime, predictor.device.type)
        if runtime.startswith("onnx"):
            predictor.use_onnx(int8=runtime.endswith("int8"))
        elif runtime == "torch-int8":
            predictor.quantize_int8()
        return predictor

    # -- the core: pages of lines -> per-line probabilities ---------------------------
    def encode(self, pages: Sequence[Sequence[str]]) -> list[EncodedPage]:
        """Tokenize pages into windows (CPU work that can run while the model is busy)."""
        return self.encoder.encode_many([list(lines) for lines in pages])

    @property
    def default_batch_size(self) -> int:
        """Windows per forward pass: large on a GPU; on a CPU 4, as 16 x 12 heads x 256 x 256
        attention scores no longer fit the cache (onnx-int8 forward alone on the dev pages: 4 windows
        19.5-20 pages/s, 8: 18.3, 16: 17.4)."""
        return 128 if self.device.type == "cuda" else 4

    @torch.inference_mode()
    def probs(self, encoded: list[EncodedPage], batch_size: int | None = None) -> list[np.ndarray]:
        """Per page, (non-blank lines, classes) probabilities. Windows of all pages are batched
        together, sorted by length so little is spent on padding."""
        batch_size = batch_size or self.default_batch_size
        jobs = [(p, w) for p, page in enumerate(encoded) for w in range(len(page.windows))]
        jobs.sort(key=lambda j: len(encoded[j[0]].windows[j[1]].input_ids))
        out: dict[tuple[int, int], np.ndarray] = {}
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b:b + batch_size]
            out.update(zip(batch, self._forward([encoded[p].windows[w] for p, w in batch])))
        return [merge_window_probs(page, [out[(p, w)] for w in range(len(page.windows))], len(self.labels))
                for p, page in enumerate(encoded)]

    def line_probs(self, pages: Sequence[Sequence[str]], batch_size: int | None = None) -> list[tuple[EncodedPage, np.ndarray]]:
        """For each page: its encoding and (non-blank lines, classes) probabilities."""
        encoded = self.encode(pages)
        return list(zip(encoded, self.probs(encoded, batch_size)))

    def quantize_int8(self) -> "Predictor":
        """Dynamic int8 quantization of the linear layers (CPU): ~2x faster, slightly less accurate."""
        import warnings

        if self.device.type != "cpu" or self.model is None:
            raise ValueError("torch int8 dynamic quantization runs on the CPU only, not with ONNX Runtime")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        return self

    def use_onnx(self, int8: bool = True, threads: int = 0) -> "Predictor":
        """Run the model with ONNX Runtime on the CPU (exported and cached on first use); `int8`
        quantizes the weights (faster, slightly less accurate: see the model card)."""
        from .onnxrt import OnnxForward

        if self.device.type != "cpu" or self.model is None:
            raise ValueError("the ONNX Runtime path runs on the CPU only, once")
        self.onnx = OnnxForward(self.model, int8=int8, threads=threads)
        self.model = None  # the session holds the weights: free torch's copy (~470 MB)
        return self

    @torch.inference_mode()
    def _forward(self, wins) -> list[np.ndarray]:
        width = max(len(w.input_ids) for w in wins)
        ids = np.full((len(wins), width), self.config.pad_token_id or 0, dtype=np.int64)
        types = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        positions = np.zeros((len(wins), max(len(w.label_positions) for w in wins)), dtype=np.int64)
        for i, w in enumerate(wins):
            n = len(w.input_ids)
            ids[i, :n] = w.input_ids
            types[i, :n] = w.token_type_ids
            mask[i, :n] = 1
            positions[i, :len(w.label_positions)] = w.label_positions
        if self.onnx is not None:  # logits of the label tokens only
            logits = self.onnx(ids, mask, types, positions)
            e = np.exp(logits - logits.max(-1, keepdims=True))
            probs = e / e.sum(-1, keepdims=True)
            return [probs[i, :len(w.label_positions)] for i, w in enumerate(wins)]
        inputs = {k: torch.from_numpy(v).to(self.device) for k, v in
                  (("input_ids", ids), ("token_type_ids", types), ("attention_mask", mask))}
        probs = torch.softmax(self.model(**inputs).logits.float(), dim=-1).cpu().numpy()
        return [probs[i, w.label_positions] for i, w in enumerate(wins)]

    # -- user API ----------------------------------------------------------------------
    def _results(self, lines: list[str], page: EncodedPage, probs: np.ndarray) -> list[LinePrediction]:
        out = []
        for row, idx in enumerate(page.kept):
            p = probs[row]
            out.append(LinePrediction(idx, lines[idx], self.labels[int(p.argmax())],
                                      {lab: round(float(v), 4) for lab, v in zip(self.labels, p)}))
        return out

    def predict(self, text_or_lines: str | Sequence[str] | None = None, *, html: str | bytes | None = None,
                renderer: str = "innertext") -> list[LinePrediction]:
        """Label each non-blank line of a page given as text, a list of lines, or `html=`."""
        return self.predict_many([html_lines(html, renderer) if html is not None else as_lines(text_or_lines)])[0]

    def predict_many(self, pages: Iterable[str | Sequence[str]], batch_size: int | None = None) -> list[list[LinePrediction]]:
        pages = [as_lines(p) for p in pages]
        return [self._results(lines, page, probs)
                for lines, (page, probs) in zip(pages, self.line_probs(pages, batch_size))]

    def clean(self, text_or_lines: str | Sequence[str] | None = None, keep: Sequence[str] = ("content",), *,
              html: str | bytes | None = None) -> str:
        """The page's text with only the lines whose label is in `keep`."""
        bad = set(keep) - set(LABELS)
        if bad:
            raise ValueError(f"unknown label(s) {sorted(bad)}: expected some of {', '.join(LABELS)}")
        return "\n".join(r.text for r in self.predict(text_or_lines, html=html) if r.label in keep)


def html_lines(html: str | bytes, renderer: str = "innertext") -> list[str]:
    """Lines of an HTML page; empty or unparsable HTML is an empty page."""
    from .html import try_html_lines

    return try_html_lines(html, renderer) or []
