"""One run at a time per run folder.

Two processes writing the same run folder (a notebook and a terminal, or a
double-clicked cell in two Colab tabs) would interleave fold files and
checkpoints. :func:`lock_run_dir` takes an OS file lock (``filelock``:
``flock`` on POSIX, ``msvcrt`` on Windows), which the OS drops when the
holding process dies, so a killed run never leaves a stale lock. Beside it,
``.lock.holder.json`` says who holds it, for the refusal message.

The lock belongs to the process: taking it again from the same process is
a no-op (a notebook re-running a cell), and :func:`releasing_run_locks`
frees the locks a call took when it returns or fails. Under a multi-process
launcher (``torchrun`` / ``accelerate launch`` set ``RANK``) only rank 0
locks: the other ranks belong to the job that rank 0 holds the lock for.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import socket
import sys
from pathlib import Path

from mer_utils.core.atomic_io import read_json, write_json

LOCK_NAME = ".lock"
HOLDER_NAME = ".lock.holder.json"
_HELD: dict[Path, object] = {}  # run folder -> its acquired filelock.FileLock


class RunFolderBusy(RuntimeError):
    """Another process is writing this run folder."""


def lock_run_dir(run_dir: str | os.PathLike) -> None:
    """Take the run folder's lock for this process, or raise :class:`RunFolderBusy` naming the holder."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir).resolve()
    if run_dir in _HELD or int(os.environ.get("RANK", "0")) != 0:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunFolderBusy(f"{run_dir} is in use by another run ({_describe_holder(run_dir)}). Wait for it to "
                            "finish, or give this run other --outputs; two runs must not write one folder.") from None
    _HELD[run_dir] = lock
    write_json(run_dir / HOLDER_NAME, {
        "pid": os.getpid(), "host": socket.gethostname(), "since": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:500],
    })


def release_run_dir(run_dir: str | os.PathLike) -> None:
    """Free this process's lock on ``run_dir`` (nothing if it holds none)."""
    run_dir = Path(run_dir).resolve()
    lock = _HELD.pop(run_dir, None)
    if lock is not None:
        (run_dir / HOLDER_NAME).unlink(missing_ok=True)
        lock.release()


def releasing_run_locks(func):
    """Decorator: the run folders locked during ``func`` are released when it returns or raises."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        before = set(_HELD)
        try:
            return func(*args, **kwargs)
        finally:
            for run_dir in set(_HELD) - before:
                release_run_dir(run_dir)
    return wrapper


def _describe_holder(run_dir: Path) -> str:
    holder = run_dir / HOLDER_NAME
    try:
        info = read_json(holder)
    except (OSError, ValueError):
        return f"lock file {run_dir / LOCK_NAME}"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}: {info.get('command')}"
