"""The line metrics of `pagesieve.metrics.scores` as a Hugging Face `evaluate` metric.

    from pagesieve.line_metric import LineMetrics
    LineMetrics().compute(predictions=[0, 2, 1], references=[0, 2, 2])   # label ids, see pagesieve.labels
    evaluate.load("path/to/pagesieve/line_metric.py")                     # the same, through evaluate's loader

Per-class precision / recall / F1 / support, macro-F1, accuracy and the confusion matrix;
`weights=` (e.g. each line's characters) weighs the lines. Works offline (nothing is fetched).
"""
import datasets
import evaluate

from pagesieve.labels import LABELS
from pagesieve.metrics import scores


class LineMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Line classification metrics of pagesieve: per class (" + ", ".join(LABELS) +
                        ") precision, recall, F1 and support; macro-F1; accuracy; confusion matrix.",
            citation="",
            inputs_description="predictions, references: label ids (0..3) of the same lines; "
                               "weights (optional): a weight per line, e.g. its characters.",
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, weights=None):
        return scores(references, predictions, weights)
