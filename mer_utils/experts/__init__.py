"""The experts (audio, visual) as plug-ins of one protocol runner (:mod:`mer_utils.experts.runner`)."""

from __future__ import annotations

import os
from pathlib import Path


def save_with_json(path: str | os.PathLike, arrays: dict, meta: dict, *, metadata: dict | None = None) -> Path:
    """Write ``arrays`` to ``<path>.safetensors`` and ``meta`` to the ``.json`` beside it, atomically."""
    import numpy as np
    from safetensors.numpy import save_file

    from mer_utils.core.atomic_io import atomic_path, write_json

    path = Path(path).with_suffix(".safetensors")
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=metadata)
    write_json(path.with_suffix(".json"), meta)
    return path
