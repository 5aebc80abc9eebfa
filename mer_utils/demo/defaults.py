"""The demo's window defaults and their check, free of numpy (the command line reads them for ``--help``)."""

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
