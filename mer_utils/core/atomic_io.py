"""Atomic writes: a file is either the old version or the complete new one.

A Colab runtime can disconnect mid-write; writing to a temporary file in the
same folder and renaming it (``os.replace`` is atomic on POSIX and Windows)
means a half-written CSV is never left behind for the next notebook to read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, scratch_dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path; move it into place on success.

    The temporary file sits next to ``path`` (hidden, ``.tmp``) unless
    ``scratch_dir`` is given; there it keeps ``path``'s extension, for
    writers that pick the format from it (OpenCV's video writer). The scratch
    folder must be on the same file system for the rename to be atomic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if scratch_dir is None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    else:
        Path(scratch_dir).mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{path.stem}.", suffix=path.suffix, dir=scratch_dir)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame, **kwargs) -> Path:
    """Write a pandas DataFrame atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
