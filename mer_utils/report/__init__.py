"""Paper tables and figures from the run folders under ``outputs/``.

:mod:`.collect` finds the runs, :mod:`.tables` and :mod:`.breakdown` build
the tables, :mod:`.formatting` writes them as CSV/Markdown/LaTeX,
:mod:`.figures` draws the PNGs and :mod:`.build` (``mer report``) ties them
together. ``make_report`` and ``collect_runs`` are imported on first use.
"""

import importlib

_EXPORTS = {"make_report": "build", "collect_runs": "collect"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"mer_utils.report.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'mer_utils.report' has no attribute {name!r}")
