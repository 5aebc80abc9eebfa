"""Settings of a fusion run; light to import (the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass

from mer_utils.core.config import field as _f

STRATEGY_NAMES = ("weighted_average", "product", "log_linear", "max_confidence", "stacking")


@dataclass
class FusionConfig:
    """Settings of one fusion run (saved as the run's config.json)."""

    audio_run: str = _f("", "Run folder of the audio expert (outputs/audio/<run>).")
    visual_run: str = _f("", "Run folder of the visual expert (outputs/visual/<run>).")
    outputs: str = _f("outputs", "Root of all run folders.")
    strategies: list[str] = _f(STRATEGY_NAMES, "Strategies to try.", choices=STRATEGY_NAMES)
    calibrate: bool = _f(True, "Fit one temperature per expert on validation first.")
    n_bootstrap: int = _f(1000, "Bootstrap resamples of the test confidence intervals.")
    cv_folds: int = _f(5, "Folds of the out-of-fold validation score that picks the strategy.")
    grid_step: float = _f(0.05, "Step of the weight grid searched on validation.")
    seed: int = _f(0, "Seed of the cross-validation, stacking and bootstrap.")
    on_missing: str = _f("raise", "'raise' refuses clips only one expert predicted; 'intersect' fuses the common "
                                  "ones and lists the rest in dropped_clips.csv.", choices=("raise", "intersect"))
    name: str = _f("", "Run name; default <split>_<audio>+<visual> (the folder adds a hash of the settings and "
                       "the two runs).")
    checkpoints: str = _f("checkpoints", "Folder receiving best_fusion.json, the chosen rule the demo applies "
                                         "('' to skip).")
