"""Settings of a fusion run; light to import (the CLI builds its help from it)."""

from __future__ import annotations

from dataclasses import dataclass, field

STRATEGY_NAMES = ("weighted_average", "product", "log_linear", "max_confidence", "stacking")


@dataclass
class FusionConfig:
    """Settings of one fusion run (saved as the run's config.json)."""

    audio_run: str = field(default="", metadata={"help": "Run folder of the audio expert (outputs/audio/<run>)."})
    visual_run: str = field(default="", metadata={"help": "Run folder of the visual expert (outputs/visual/<run>)."})
    outputs: str = field(default="outputs", metadata={"help": "Root of all run folders."})
    strategies: tuple = field(default=STRATEGY_NAMES, metadata={"help": f"Strategies to try, from {STRATEGY_NAMES}."})
    calibrate: bool = field(default=True, metadata={"help": "Fit one temperature per expert on validation first."})
    n_bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples of the test confidence intervals."})
    cv_folds: int = field(default=5, metadata={
        "help": "Folds of the out-of-fold validation score that picks the strategy."})
    grid_step: float = field(default=0.05, metadata={"help": "Step of the weight grid searched on validation."})
    seed: int = field(default=0, metadata={"help": "Seed of the cross-validation, stacking and bootstrap."})
    on_missing: str = field(default="raise", metadata={
        "help": "'raise' refuses clips only one expert predicted; 'intersect' fuses the common ones "
                "and lists the rest in dropped_clips.csv."})
    name: str = field(default="", metadata={"help": "Run name; default <split>_<audio>+<visual> (the folder adds a "
                                                    "hash of the settings and the two runs)."})
    checkpoints: str = field(default="checkpoints", metadata={
        "help": "Folder receiving best_fusion.json, the chosen rule the demo applies ('' to skip)."})
