"""Inference and timelines (:mod:`.predict`), the Hugging Face Hub (:mod:`.hub`), the browser app (:mod:`.app`).
Names load on first use and the window defaults need no numpy, so ``mer predict --help`` stays light."""

import importlib
import math

DEFAULT_WINDOW_S = 3.0  # CREMA-D training clips last 1-5 s (median ~2.5 s): one window ~ one training clip
DEFAULT_HOP_S = 1.0
# The experts were trained on clips of 1 s and more; a shorter window also holds fewer video frames (30 fps)
# than the face expert samples per answer (8, or a trained checkpoint's K).
MIN_WINDOW_S = 1.0


def check_window(window: float, hop: float) -> None:
    """Refuse a ``--window``/``--hop`` that is not a finite positive number of seconds, or a window too short.

    >>> check_window(3.0, 1.0)
    >>> check_window(float("nan"), 1.0)
    Traceback (most recent call last):
    ...
    ValueError: --window nan: give a finite number of seconds, at least 1 (default 3)
    """
    for option, value, least, default in (("--window", window, MIN_WINDOW_S, DEFAULT_WINDOW_S),
                                          ("--hop", hop, 0.0, DEFAULT_HOP_S)):
        wanted = f"at least {least:g}" if least else "more than 0"
        if not math.isfinite(value) or value <= 0 or value < least:
            why = (f"shorter than the {least:g} s the experts need (they were trained on clips of 1-5 s); "
                   if math.isfinite(value) and value > 0 else "")
            raise ValueError(f"{option} {value:g}: {why}give a finite number of seconds, {wanted} "
                             f"(default {default:g})")

_EXPORTS = {"format_result": "predict", "plot_result": "predict", "predict_clip": "predict",
            "save_outputs": "predict", "show_outputs": "predict", "push_checkpoints": "hub", "pull_checkpoints": "hub",
            "build_app": "app", "launch_app": "app"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mer_utils.demo.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mer_utils.demo' has no attribute {name!r}")
