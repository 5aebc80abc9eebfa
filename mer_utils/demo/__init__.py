"""One-click inference on a video, a recording, a face image or a corpus clip (:mod:`.predict`), emotion
timelines for long inputs (:mod:`.timeline`), checkpoint sets shared on the Hugging Face Hub (:mod:`.hub`), and the
same in a browser (:mod:`.app`, ``mer app``).

Names below are imported on first use, so ``mer predict --help`` does not pull in numpy or the experts.
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
