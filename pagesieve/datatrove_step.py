"""A datatrove pipeline step (the framework FineWeb was built with): label the lines of each
Document and keep the chosen classes, so pagesieve drops into existing dump pipelines (local,
Slurm or Ray executors). Needs `pip install datatrove orjson` (or `pip install -e ".[datatrove]"`); see examples/datatrove_pipeline.py.

Each document's `text` becomes its kept lines; the per-line labels go to
`metadata["pagesieve_labels"]` (one per original line, None for blank lines). Documents left with
no kept text are dropped (counted in the step's stats) unless `drop_empty=False`.
"""
from __future__ import annotations

from datatrove.pipeline.base import PipelineStep

from .encoding import per_line
from .labels import LABELS


class PagesieveLabeler(PipelineStep):
    name = "🧹 pagesieve"
    type = "🏷 - LABEL"

    def __init__(self, model: str | None = None, keep: tuple[str, ...] = ("content",), batch_pages: int = 64,
                 batch_size: int | None = None, device: str | None = None, drop_empty: bool = True,
                 store_labels: bool = True, runtime: str = "auto"):
        super().__init__()
        bad = set(keep) - set(LABELS)
        if bad:
            raise ValueError(f"unknown label(s) {sorted(bad)}: choose from {', '.join(LABELS)}")
        self.model, self.keep, self.device, self.runtime = model, tuple(keep), device, runtime
        self.batch_pages, self.batch_size = batch_pages, batch_size
        self.drop_empty, self.store_labels = drop_empty, store_labels
        self._predictor = None

    @property
    def predictor(self):
        if self._predictor is None:  # loaded in the worker, not pickled with the pipeline
            from .predictor import Predictor

            self._predictor = Predictor.from_pretrained(self.model, device=self.device, runtime=self.runtime)
        return self._predictor

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_predictor"] = None
        return state

    def _label(self, docs):
        p = self.predictor
        pages = [d.text.splitlines() for d in docs]
        with self.track_time(unit="batch"):
            results = p.line_probs(pages, self.batch_size)
        for doc, lines, (enc, probs) in zip(docs, pages, results):
            labels = [LABELS[c] if c is not None else None for c in per_line(enc, probs)]
            for lab in labels:
                if lab:
                    self.stat_update(f"lines_{lab}")
            doc.text = "\n".join(l for l, lab in zip(lines, labels) if lab in self.keep)
            if self.store_labels:
                doc.metadata["pagesieve_labels"] = labels
            if self.drop_empty and not doc.text.strip():
                self.stat_update("dropped_empty")
                continue
            self.stat_update("kept")
            yield doc

    def run(self, data, rank: int = 0, world_size: int = 1):
        batch = []
        for doc in data:
            self.stat_update("documents")
            batch.append(doc)
            if len(batch) == self.batch_pages:
                yield from self._label(batch)
                batch = []
        if batch:
            yield from self._label(batch)
