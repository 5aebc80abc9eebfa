"""The fusion rule for two experts never validated together.

A tuned rule (``mer fuse``) needs validation clips that both experts scored. A speech expert trained on
RAVDESS and the FER2013 face model used zero-shot never saw a clip in common: nothing can be tuned on both, and
their confidences are not on one scale. Each was at best calibrated on its own corpus, and on a CREMA-D clip
(or a webcam recording) both work outside it: the speech expert trained on ravdess-dev gives 0.93-0.99 to
wrong emotions of real CREMA-D clips. The product rule lets such an expert veto the other, and so does a plain
average of probabilities.

The untuned rule therefore compares preferences, not confidences: each expert's probabilities are first
rescaled by its own temperature (fitted on its own validation predictions, ``predictions_val.csv`` of its run
folder; 1 when it has none, as for the zero-shot face model), then mapped per input onto [0, 1] (its top
emotion 1, its last 0) and the two are averaged (min-max normalisation and the sum rule,
:func:`~mer_utils.fusion.rules.min_max_mean`). The fused numbers are shares of that score, not calibrated
probabilities; the description says so. Measured on the six real CREMA-D clips of actor 1001: docs/demo.md.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mer_utils.fusion.calibration import apply_temperature
from mer_utils.fusion.rules import min_max_mean

log = logging.getLogger(__name__)
UNTUNED_STRATEGY = "untuned min-max average"


@dataclass(frozen=True)
class UntunedRule:
    """Fuses like :class:`~mer_utils.fusion.deploy.FusionRule` (``fuse``, ``description``), with nothing tuned
    on the two experts together."""

    temperatures: dict = field(default_factory=lambda: {"audio": 1.0, "visual": 1.0})
    why: dict = field(default_factory=dict)  # expert -> where its temperature came from
    strategy: str = UNTUNED_STRATEGY

    @property
    def description(self) -> str:
        where = "; ".join(f"{e} T={t:.2f} ({self.why.get(e, '')})" for e, t in self.temperatures.items())
        return (f"{self.strategy} fusion, UNTUNED: no fusion rule was tuned with these two experts together, so "
                f"each expert's probabilities (own temperature: {where}) are rescaled to [0, 1] per input and "
                "averaged; the fused numbers are shares, not calibrated probabilities")

    def fuse(self, audio_probs, visual_probs) -> np.ndarray:
        """Fused shares; accepts one clip ``(K,)`` or a batch ``(n, K)``."""
        audio, visual = (np.atleast_2d(np.asarray(p, dtype=float)) for p in (audio_probs, visual_probs))
        if audio.shape != visual.shape:
            raise ValueError(f"expected two probability arrays of one shape, got {audio.shape} and {visual.shape}")
        fused = min_max_mean([apply_temperature(audio, self.temperatures["audio"]),
                              apply_temperature(visual, self.temperatures["visual"])])
        return fused[0] if np.ndim(audio_probs) == 1 else fused


def validation_predictions(entry: dict) -> Path | None:
    """The validation predictions of the run an index entry came from, when its run folder is here."""
    run_dir = entry.get("run_dir")
    path = Path(run_dir) / "predictions_val.csv" if run_dir else None
    return path if path is not None and path.is_file() else None


def expert_temperature(entry: dict) -> tuple[float, str]:
    """``(temperature, where it came from)`` for one expert's index entry."""
    path = validation_predictions(entry)
    if path is None:
        why = "zero-shot, no validation predictions" if entry.get("zero_shot") else "no validation predictions here"
        return 1.0, why
    try:
        temperature, n = _fitted(str(path), path.stat().st_mtime_ns, tuple(entry.get("labels") or ()))
    except (ValueError, KeyError) as err:  # a damaged file must not stop the answer: say so and use T=1
        log.warning("could not fit a temperature on %s (%s); using 1", path, err)
        return 1.0, f"{path.name} unreadable"
    return temperature, f"fitted on its {n} validation clips"


@functools.lru_cache(maxsize=16)
def _fitted(path: str, _mtime: int, labels: tuple) -> tuple[float, int]:
    from mer_utils.core.predictions import labels_of, read_predictions
    from mer_utils.fusion.calibration import fit_temperature

    frame = read_predictions(path)
    labels = labels or labels_of(frame)
    proba = frame[[f"p_{label}" for label in labels]].to_numpy()
    return fit_temperature(proba, frame["y_true"].to_numpy(), labels=labels), len(frame)


def untuned_rule(audio_entry: dict, visual_entry: dict) -> UntunedRule:
    """The untuned rule for these two experts' index entries (see the module docstring)."""
    (t_audio, why_audio), (t_visual, why_visual) = expert_temperature(audio_entry), expert_temperature(visual_entry)
    return UntunedRule({"audio": t_audio, "visual": t_visual}, {"audio": why_audio, "visual": why_visual})
