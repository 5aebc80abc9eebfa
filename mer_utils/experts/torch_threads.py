"""One torch thread for small networks, the caller's setting restored afterwards.

Small networks (a face model on 8 crops, the GE2E encoder on one clip, a
head on precomputed features) are too little work to share between threads:
on a busy 2-core machine a second torch thread made one clip's face model
0.7-1.0 s instead of 0.04 s, and a frozen head's training 10x slower
(measured).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block on one torch thread; does nothing (and imports nothing) when torch is not loaded,
    as when the network runs in ONNX Runtime."""
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
