"""One-click inference on a video, a recording or a corpus clip (see :mod:`mer_utils.demo.predict`)."""

from mer_utils.demo.predict import format_result, plot_result, predict_clip

__all__ = ["format_result", "plot_result", "predict_clip"]
