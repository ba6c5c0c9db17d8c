"""pagesieve: label every line of a scraped web page as content, caption, navigation or ui_chrome.

    from pagesieve import Predictor
    p = Predictor.from_pretrained()          # the released model in model/
    p.predict("Subscribe\nLavrov said on Thursday that ...")
"""
from .labels import LABELS

__version__ = "0.7.0"
__all__ = ["LABELS", "Predictor", "LinePrediction", "predict_dump"]


def __getattr__(name):  # import torch & co. only when the predictor is used
    if name in ("Predictor", "LinePrediction"):
        from . import predictor

        return getattr(predictor, name)
    if name == "predict_dump":
        from .dump import predict_dump

        return predict_dump
    raise AttributeError(name)
