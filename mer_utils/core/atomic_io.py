"""Atomic writes (a temporary file renamed into place): a file is either the old version or the complete new one.
A failed write raises :class:`WriteError` naming the file and the cause, which the libraries underneath often omit."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

# mkstemp's files are owner-only; a finished output gets the user's usual mode (0644 under umask 022). Read once,
# at import: os.umask can only be read by setting it, which must not race with other threads creating files.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FULL_DISK_BYTES = 1 << 20  # less free space than this after a failed write: the disk is full
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class WriteError(OSError):
    """A file could not be written; the message names the file and the cause (a full disk included)."""


def _write_error(path: Path, err: BaseException, tmp: Path | None = None) -> WriteError | None:
    """The :class:`WriteError` for ``err`` raised while writing ``path`` (through ``tmp``), or None when ``err``
    is not about this write (e.g. a missing input of the writer)."""
    folder = path.parent
    try:
        free = shutil.disk_usage(folder if folder.exists() else Path.cwd()).free
    except OSError:
        free = None
    if getattr(err, "errno", None) in _DISK_FULL_ERRNOS or (free is not None and free < _FULL_DISK_BYTES):
        left = "" if free is None else f" ({free / 1e6:.1f} MB free)"
        return WriteError(f"cannot write {path}: no space left on the device holding {folder}{left}; free some "
                          "space there, or write to another folder (--out / --outputs / --checkpoints)")
    if isinstance(err, OSError) and getattr(err, "filename", None) in (None, str(path), tmp and str(tmp)):
        return WriteError(f"cannot write {path}: {err.strerror or err}")
    return None  # a writer's own error (soundfile's "System error.", torch's) on a disk with room: as it is


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, scratch_dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (or in ``scratch_dir``, same file system, keeping the extension
    for writers that pick the format from it: OpenCV's); move it into place on success."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if scratch_dir is None:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        else:
            Path(scratch_dir).mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f"{path.stem}.", suffix=path.suffix, dir=scratch_dir)
        os.close(fd)
    except OSError as err:  # the folder or the temporary file cannot be made: about ``path`` whatever it names
        raise (_write_error(path, err) or WriteError(f"cannot write {path}: {err.strerror or err}")) from err
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, path)
    except Exception as err:
        named = None if isinstance(err, WriteError) else _write_error(path, err, tmp_path)
        if named is None:
            raise
        raise named from err
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


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write the matplotlib ``fig`` to ``path`` atomically, without the version tag (same figure, same bytes)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
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
