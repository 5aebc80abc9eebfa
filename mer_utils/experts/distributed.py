"""Which process, how many, who writes, which device under ``accelerate launch`` / ``torchrun`` or a plain
process (``world_size`` and ``is_main_process`` need no torch); one torch thread for small networks."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_index() -> int:
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    return process_index() == 0


def use_cpu(device: str | None = None) -> bool:
    # Without CUDA, a launched run must ask for CPU explicitly, else Accelerate stays single-process.
    import torch
    return (device or "").startswith("cpu") or not torch.cuda.is_available() or \
        os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")


def _state():
    """Accelerate's process state (initialises the process group once, gloo on CPU)."""
    from accelerate import PartialState
    return PartialState(cpu=use_cpu())


def pick_device(device: str | None = None) -> str:
    """``device``, else cuda when available; a launched process gets its own (``cuda:<local rank>`` or cpu)."""
    import torch
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return str(_state().device) if is_distributed() else device


def wait_for_everyone() -> None:
    if is_distributed():
        _state().wait_for_everyone()


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first (it fills caches and writes split files), the others then read them."""
    with _state().main_process_first() if is_distributed() else contextlib.nullcontext():
        yield


def broadcast(obj):
    """Rank 0's ``obj`` on every process (any picklable object)."""
    if not is_distributed():
        return obj
    from accelerate.utils import broadcast_object_list
    _state()
    return broadcast_object_list([obj], from_process=0)[0]


def gather_objects(items: list) -> list:
    """Every process's ``items``, concatenated in rank order, on every process."""
    if not is_distributed():
        return list(items)
    from accelerate.utils import gather_object
    _state()
    return gather_object(list(items))


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block on one torch thread (small networks: a second thread made one clip's face model 0.7-1.0 s
    instead of 0.04 s on a busy 2-core machine); does nothing when torch is not loaded."""
    if "torch" not in sys.modules:
        yield
        return
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
