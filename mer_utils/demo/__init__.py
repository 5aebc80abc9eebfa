"""One-click inference (:mod:`.predict`), timelines (:mod:`.timeline`), checkpoint sets on the Hugging Face Hub
(:mod:`.hub`) and the browser app (:mod:`.app`). Names load on first use, so ``mer predict --help`` stays light.
"""

import importlib

_EXPORTS = {"format_result": "predict", "plot_result": "predict", "predict_clip": "predict",
            "save_outputs": "predict", "show_outputs": "predict", "push_checkpoints": "hub", "pull_checkpoints": "hub",
            "build_app": "app", "launch_app": "app"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mer_utils.demo.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mer_utils.demo' has no attribute {name!r}")
