"""Data-parallel training through Hugging Face Accelerate: the one place audio and visual experts ask
"how many processes am I, which one, who writes?".

The same code runs as one plain process (no launcher, no config file) and as
N processes started by ``accelerate launch`` or ``torchrun`` (DDP; gloo on
CPU, NCCL on GPUs), following the ``examples/pytorch/*_no_trainer.py``
pattern: ``accelerator.prepare`` shards the data and wraps the model,
``gather_for_metrics`` brings every evaluation clip back exactly once (the
sampler's padding dropped), only the main process writes files, and
``save_state`` / ``load_state`` carry a run over an interruption.

Process questions that need no torch (``is_main_process``, ``world_size``)
read the launcher's environment (``RANK``, ``WORLD_SIZE``), so acoustic runs
never import torch for them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)
PRECISIONS = ("auto", "fp16", "bf16")


def world_size() -> int:
    """Number of processes the launcher started (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_index() -> int:
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    """True in a plain run and in rank 0 of a launched one: the process that writes files."""
    return process_index() == 0


def _state():
    """Accelerate's process state (initialises the process group once, gloo on CPU)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=_use_cpu(None, torch))


def _use_cpu(device: str | None, torch) -> bool:
    # Without CUDA, a launched run must ask Accelerate for CPU explicitly, else it stays single-process.
    return (device or "").startswith("cpu") or not torch.cuda.is_available() or \
        os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")


def process_device(device: str) -> str:
    """``device`` in a plain run; this process's own device (``cuda:<local rank>`` or cpu) when launched."""
    return str(_state().device) if is_distributed() else device


def wait_for_everyone() -> None:
    if is_distributed():
        _state().wait_for_everyone()


@contextlib.contextmanager
def main_process_first():
    """Rank 0 runs the block first (it fills caches and writes split files), the others then read them."""
    if not is_distributed():
        yield
        return
    with _state().main_process_first():
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


def all_true(flag: bool) -> bool:
    """True when ``flag`` is true on every process (e.g. "my resume state loaded")."""
    return all(gather_objects([bool(flag)]))


def warn_single_cpu_launch() -> None:
    """``accelerate launch --cpu --num_processes N`` starts ONE process unless mpirun is used: say so."""
    if (not is_distributed() and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true"
            and "MASTER_PORT" in os.environ):
        logger.warning("accelerate launch --cpu started a single process (several CPU processes need "
                       "--mpirun_hostfile); for N processes on CPU use `accelerate launch --multi_gpu "
                       "--num_processes N ...` (gloo) or `torchrun --nproc_per_node N -m mer_utils ...`")


def mixed_precision(amp: bool, dtype: str, device_type: str) -> str:
    """Accelerate's ``mixed_precision`` for ``--amp`` / ``--amp-dtype``.

    ``auto`` keeps the earlier behaviour: bf16 on GPUs that support it, else
    fp16, and full precision on CPU. An explicit ``bf16`` also runs on CPU.

    >>> mixed_precision(True, "auto", "cpu"), mixed_precision(True, "bf16", "cpu"), mixed_precision(False, "fp16", "cuda")
    ('no', 'bf16', 'no')
    """
    if dtype not in PRECISIONS:
        raise ValueError(f"amp dtype must be one of {PRECISIONS}, got {dtype!r}")
    if not amp:
        return "no"
    if dtype == "auto":
        if device_type != "cuda":
            return "no"
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if dtype == "fp16" and device_type != "cuda":
        raise ValueError("--amp-dtype fp16 needs a GPU; on CPU use --amp-dtype bf16 or --no-amp")
    return dtype


def accumulation_steps(*, batch_size: int, grad_accum: int, effective_batch_size: int | None,
                       num_processes: int) -> tuple[int, int]:
    """``(accumulation steps per process, effective batch size)``.

    The effective batch (clips per optimizer step over all processes) is what
    is kept across process counts: ``effective_batch_size`` when given, else
    ``batch_size * grad_accum`` (what one process does). Each process keeps
    its ``batch_size`` (what fits on one device) and accumulates
    ``effective / (batch_size * num_processes)`` batches.

    >>> accumulation_steps(batch_size=8, grad_accum=4, effective_batch_size=None, num_processes=2)
    (2, 32)
    >>> accumulation_steps(batch_size=4, grad_accum=1, effective_batch_size=32, num_processes=4)
    (2, 32)
    """
    effective = int(effective_batch_size or batch_size * grad_accum)
    per_step = batch_size * num_processes
    if effective < per_step or effective % per_step:
        raise ValueError(f"an effective batch of {effective} clips cannot be split into {num_processes} "
                         f"process(es) x batch {batch_size} x whole accumulation steps; pass --batch-size so that "
                         f"batch size x {num_processes} divides {effective}, or another --effective-batch-size")
    return effective // per_step, effective


def make_accelerator(*, device: str | None = None, amp: bool = True, amp_dtype: str = "auto",
                     grad_accum: int = 1, find_unused_parameters: bool = False):
    """An :class:`accelerate.Accelerator` for this process: DDP when launched, a plain device otherwise.

    No ``accelerate config`` file is needed: the launcher's environment (or
    its absence) says everything.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    warn_single_cpu_launch()
    cpu = _use_cpu(device, torch)
    precision = mixed_precision(amp, amp_dtype, "cpu" if cpu else "cuda")
    # find_unused_parameters: for models whose step leaves some trainable parameters untouched (the
    # layers above a fixed-layer head); it costs an extra graph traversal, so only when needed.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)
    accelerator = Accelerator(cpu=cpu, mixed_precision=precision, gradient_accumulation_steps=grad_accum,
                              kwargs_handlers=[ddp])
    return accelerator


def gather_predictions(accelerator, n: int, predict, *, batch_size: int = 1):
    """``predict(index) -> (len(index), K)`` tensor for clips ``0..n-1``, sharded over the processes.

    Each process scores its share of the clips; ``gather_for_metrics`` brings every clip back exactly
    once (the duplicates the sampler adds to even out the last batch are dropped). Returns a numpy
    array in clip order on every process.
    """
    import numpy as np
    import torch
    from accelerate.data_loader import prepare_data_loader

    loader = torch.utils.data.DataLoader(range(n), batch_size=batch_size, shuffle=False, collate_fn=torch.tensor)
    loader = prepare_data_loader(loader, num_processes=accelerator.num_processes,
                                 process_index=accelerator.process_index, put_on_device=True)
    index, scores = [], []
    for idx in loader:
        got_idx, got = accelerator.gather_for_metrics((idx, predict(idx).to(accelerator.device)))
        index.append(got_idx.cpu())
        scores.append(got.float().cpu())
    if not index:
        return None
    index, scores = torch.cat(index).numpy(), torch.cat(scores).numpy()
    if sorted(index.tolist()) != list(range(n)):
        raise RuntimeError(f"sharded evaluation returned {len(index)} predictions for {n} clips (some twice "
                           "or not at all)")
    out = np.empty((n, scores.shape[1]), dtype=np.float64)
    out[index] = scores
    return out


def describe(accelerator=None) -> dict:
    """The process layout of a run, for ``env.json`` and fold reports."""
    info = {"num_processes": world_size(), "launcher": "accelerate/torchrun" if is_distributed() else "none"}
    if accelerator is not None:
        info.update(num_processes=accelerator.num_processes, distributed_type=str(accelerator.distributed_type)
                    .split(".")[-1], mixed_precision=str(accelerator.mixed_precision),
                    device_type=accelerator.device.type)
    return info


def set_aside_corrupt(path: str | os.PathLike, error: BaseException | str) -> Path:
    """Rename an unreadable resume state to ``<name>.corrupt`` (kept for inspection) and say so.

    The fold then starts from scratch instead of failing on every restart.
    """
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt{n}")
    if path.exists():
        shutil.move(str(path), str(target))
    message = (f"resume state {path} is unreadable ({type(error).__name__ if isinstance(error, BaseException) else ''}"
               f"{': ' if isinstance(error, BaseException) else ''}{str(error).splitlines()[0] if str(error) else ''}); "
               f"set aside as {target.name}; this fold restarts from scratch")
    print(message, flush=True)
    logger.warning(message)
    return target
