"""On-disk cache of per-clip arrays (acoustic functionals, SSL embeddings).

Each pass appends one ``shard-*.npz`` (``keys``, ``values``) per chunk, written atomically, so an interrupted
pass keeps its finished chunks. A key holds the file's name, size and mtime: a replaced file is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from mer_utils.core.atomic_io import atomic_path
from mer_utils.experts.audio.loading import AudioLoadError


def file_key(path: str | os.PathLike) -> str:
    """``"<name>:<size>:<mtime_ns>"`` of a media file (no decoding)."""
    stat = os.stat(path)
    return f"{Path(path).name}:{stat.st_size}:{stat.st_mtime_ns}"


def clip_keys(paths) -> list[str]:
    """One key per path; a missing file gets a key no cache holds."""
    return [file_key(p) if os.path.exists(p) else f"missing:{p}" for p in paths]


def namespace(name: str, settings: Mapping) -> str:
    """A folder name for ``name`` extracted with ``settings`` (any JSON-able dict).

    >>> namespace("egemaps", {"sample_rate": 16000})[:8]
    'egemaps-'
    """
    digest = hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{safe}-{digest}"


class FeatureCache:
    """Arrays keyed by string, persisted as shards under ``root/namespace``.

    >>> import tempfile
    >>> cache = FeatureCache(tempfile.mkdtemp(), "demo")
    >>> _ = cache.put({"a.wav:1:2": np.ones(3)})
    >>> FeatureCache(cache.directory.parent, "demo").get(["a.wav:1:2", "b"]).keys()
    dict_keys(['a.wav:1:2'])
    """

    def __init__(self, root: str | os.PathLike, name: str):
        self.directory = Path(root) / name
        self._index: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._index is None:
            self._index = {}
            for shard in sorted(self.directory.glob("shard-*.npz")):
                try:
                    with np.load(shard, allow_pickle=False) as data:
                        keys, values = data["keys"], data["values"]
                except (OSError, ValueError, KeyError) as err:
                    warnings.warn(f"ignoring unreadable feature-cache shard {shard} ({err}); delete it", stacklevel=2)
                    continue
                self._index.update(zip(keys.tolist(), values))
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def get(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached arrays among ``keys`` (missing keys are left out)."""
        index = self._load()
        return {k: index[k] for k in keys if k in index}

    def put(self, items: Mapping[str, np.ndarray]) -> Path | None:
        """Write ``items`` (same-shaped arrays) as one new shard; returns its path."""
        if not items:
            return None
        keys = np.array(list(items.keys()))
        values = np.stack([np.asarray(v) for v in items.values()])
        path = self.directory / f"shard-{uuid.uuid4().hex[:12]}.npz"
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, keys=keys, values=values)
        self._load().update(zip(keys.tolist(), values))
        return path


def assemble(paths, keys: list[str], found: dict, errors: dict, what: str = "") -> tuple[np.ndarray, np.ndarray, list]:
    """``(X, ok, skipped)``: the rows of ``keys`` in ``found`` (zeros elsewhere), the mask of rows found and
    ``[{"path", "reason"}]`` of the others (``errors``: row index -> reason); no row found raises."""
    ok = np.array([k in found for k in keys], dtype=bool)
    if not ok.any():
        raise AudioLoadError(f"no clip could be decoded{what}; first error: {next(iter(errors.values()), 'none')}")
    rows = [found[k] for k in keys if k in found]
    X = np.zeros((len(keys), *np.shape(rows[0])), dtype=np.float32)
    X[ok] = rows
    return X, ok, [{"path": str(paths[i]), "reason": errors.get(i, "not found")} for i in np.flatnonzero(~ok)]
