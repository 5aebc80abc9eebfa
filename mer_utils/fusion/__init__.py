"""Late fusion of the audio and visual experts' predictions.

The experts hand over predictions CSVs (:mod:`mer_utils.core.predictions`); this
subpackage joins them clip by clip (:mod:`.join`), calibrates and combines them
with strategies tuned on validation only (:mod:`.calibration`,
:mod:`.strategies`, :mod:`.tuning`), tests the result (:mod:`.significance`,
:mod:`.results`) and writes a run folder in the same contract (:mod:`.run`).

Names below are imported on first use, so ``import mer_utils.fusion`` (and
``mer --help``) does not pull in scikit-learn and SciPy.
"""

import importlib

_EXPORTS = {
    "FusionConfig": "config", "STRATEGY_NAMES": "config", "build_master_table": "join",
    "expert_probabilities": "join", "load_expert_run": "join", "fuse_runs": "run",
    "make_strategy": "strategies", "FusionOutcome": "tuning", "fuse_master": "tuning",
    "FusionRule": "deploy", "load_fusion_rule": "deploy",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mer_utils.fusion.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mer_utils.fusion' has no attribute {name!r}")
