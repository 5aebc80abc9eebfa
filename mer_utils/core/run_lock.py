"""One process at a time per run folder, or per part of one (``part="fold2"``: other ``--run-folds`` share it).
An OS file lock dies with its process: a killed run leaves no stale lock. Only rank 0 of a launch locks."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import socket
import sys
from pathlib import Path

from mer_utils.core.atomic_io import read_json, write_json

_HELD: dict[tuple[Path, str], object] = {}  # (run folder, part) -> its acquired filelock.FileLock


class RunFolderBusy(RuntimeError):
    """Another process is writing this run folder (or this part of it)."""


def _lock_file(run_dir: Path, part: str) -> Path:
    return run_dir / (f".lock-{part}" if part else ".lock")


def _holder_file(run_dir: Path, part: str) -> Path:
    return Path(f"{_lock_file(run_dir, part)}.holder.json")


def lock_run_dir(run_dir: str | os.PathLike, part: str = "", *, wait_s: float = 0) -> None:
    """Take the lock of ``run_dir`` (or of ``part`` of it) for this process (again: a no-op), waiting up to
    ``wait_s``; raise :class:`RunFolderBusy` naming the holder when another process keeps it."""
    from filelock import FileLock, Timeout
    run_dir = Path(run_dir).resolve()
    if (run_dir, part) in _HELD or int(os.environ.get("RANK", "0")) != 0:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(_lock_file(run_dir, part)))
    try:
        lock.acquire(timeout=wait_s)
    except Timeout:
        what = f"{part} of {run_dir}" if part else str(run_dir)
        try:
            info = read_json(_holder_file(run_dir, part))
            holder = f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}: {info.get('command')}"
        except (OSError, ValueError):
            holder = f"lock file {_lock_file(run_dir, part)}"
        raise RunFolderBusy(f"{what} is in use by another run ({holder}). Wait for it "
                            "to finish, or give this run other --outputs; two runs must not write one folder."
                            ) from None
    _HELD[(run_dir, part)] = lock
    write_json(_holder_file(run_dir, part), {
        "pid": os.getpid(), "host": socket.gethostname(), "since": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:500],
    })


def release_run_dir(run_dir: str | os.PathLike, part: str = "") -> None:
    """Free this process's lock on ``run_dir`` (or ``part`` of it); nothing if it holds none."""
    run_dir = Path(run_dir).resolve()
    lock = _HELD.pop((run_dir, part), None)
    if lock is not None:
        _holder_file(run_dir, part).unlink(missing_ok=True)
        lock.release()


def releasing_run_locks(func):
    """Decorator: the run folders locked during ``func`` are released when it returns or raises."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        before = set(_HELD)
        try:
            return func(*args, **kwargs)
        finally:
            for run_dir, part in set(_HELD) - before:
                release_run_dir(run_dir, part)
    return wrapper

