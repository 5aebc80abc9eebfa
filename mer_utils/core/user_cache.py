"""The user's cache folder for what is fetched once per machine (the FER2013 face model): ``MER_CACHE``, else
``$XDG_CACHE_HOME/mer_utils``, else ``~/.cache/mer_utils``; never a folder the user named for something else."""

import os
from pathlib import Path


def user_cache_dir(*parts: str) -> Path:
    """``<cache>/<parts…>`` (not created here: the writer creates what it writes)."""
    base = os.environ.get("MER_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mer_utils"
    return Path(base).joinpath(*parts)
