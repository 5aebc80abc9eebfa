"""The user's cache folder: what the toolkit fetches or converts once per machine (the FER2013 face model and
the wheel it comes from).

It never goes into a folder the user named for something else (``--checkpoints SOME_FOLDER`` is read, not
written, by the demo). ``MER_CACHE`` overrides it; else ``$XDG_CACHE_HOME/mer_utils``, else
``~/.cache/mer_utils``.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(*parts: str) -> Path:
    """``<cache>/<parts…>`` (not created here: the writer creates what it writes)."""
    base = os.environ.get("MER_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mer_utils"
    return Path(base).joinpath(*parts)
