"""Paper tables and figures from the run folders under ``outputs/``.

:mod:`.collect` finds the runs, :mod:`.tables` and :mod:`.breakdown` build
the tables, :mod:`mer_utils.core.formatting` writes them as CSV/Markdown/LaTeX,
:mod:`.figures` draws the PNGs and :mod:`.build` (``mer report``) ties them
together.
"""
