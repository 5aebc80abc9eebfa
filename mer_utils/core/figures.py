"""Figures written as PNG files: one atomic save for every layer."""

from __future__ import annotations

import os
from pathlib import Path

from mer_utils.core.atomic_io import atomic_path


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write the matplotlib ``fig`` to ``path`` atomically, without the version tag (same figure, same bytes)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return Path(path)
