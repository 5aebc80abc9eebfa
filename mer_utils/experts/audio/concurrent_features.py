"""Feature sets of a few prepared waveforms, begun now and collected later, on two cores when that helps.

A cold ``mer predict`` spends most of its start importing the libraries of
the default feature sets: librosa (1.2 s with scipy.signal and numba; the
librosa and ge2e sets) and openSMILE with pandas (0.5 s, plus 0.2 s of
ComParE; the eGeMAPS and ComParE sets). Those imports are independent, so in
a cold process the sets of each library not imported yet are computed in a
forked process of their own while this one scores the face: the start
drops to the slowest of them.

The second processes are used only when they can help and are safe: the
platform forks (Linux), the process runs one Python thread (a Jupyter
kernel does not: it computes in order), the library is not imported yet,
and only for the first call: later calls of a long-lived process import the
libraries once and compute in order, as a warm process should. The vectors
are the same either way (tests/test_concurrent_features.py); a process that
fails is reported and its sets are computed here instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
from typing import Callable, Sequence

import numpy as np

from mer_utils.experts.audio.features import FEATURE_SETS, extract_features

logger = logging.getLogger(__name__)
_STARTED = []  # a second process was used once: later calls are warm ones (the module is imported here)


def _matrices(waves: Sequence[np.ndarray], sets: Sequence[str], sample_rate: int) -> dict[str, np.ndarray]:
    return {name: np.stack([extract_features(w, name, sample_rate=sample_rate) for w in waves]) for name in sets}


def elsewhere(sets: Sequence[str]) -> dict[str, list[str]]:
    """The sets other processes would compute now, by library: those whose library is not imported here."""
    if _STARTED or "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return {}
    groups: dict[str, list[str]] = {}
    for name in sets:
        library = FEATURE_SETS[name].library
        if library and library not in sys.modules:
            groups.setdefault(library, []).append(name)
    return groups


def start_feature_sets(waves: Sequence[np.ndarray], sets: Sequence[str], *,
                       sample_rate: int = 16_000) -> Callable[[], dict[str, np.ndarray]]:
    """Begin ``{set: (n, d)}`` for prepared ``waves``; call the returned function for the result.

    Work done between the two calls (the face expert, in the demo) overlaps
    with the second process, when one is used (:func:`elsewhere`).
    """
    groups = elsewhere(sets)
    if not groups or len(waves) == 0:
        done = _matrices(waves, sets, sample_rate)
        return lambda: done
    from concurrent.futures import ProcessPoolExecutor

    _STARTED.append(groups)
    pool = ProcessPoolExecutor(max_workers=len(groups), mp_context=multiprocessing.get_context("fork"))
    futures = {tuple(names): pool.submit(_matrices, list(waves), names, sample_rate) for names in groups.values()}
    far = [name for names in groups.values() for name in names]
    here = _matrices(waves, [name for name in sets if name not in far], sample_rate)

    def finish() -> dict[str, np.ndarray]:
        try:
            for names, future in futures.items():
                try:
                    here.update(future.result())
                except Exception as err:  # a killed or failed worker: the same sets, computed here
                    logger.warning("feature sets %s: the second process failed (%s); computed here instead",
                                   list(names), err)
                    here.update(_matrices(waves, list(names), sample_rate))
        finally:
            # Wait for the workers to exit (milliseconds: a forked worker ends with os._exit). One left
            # waiting for more work would outlive a `mer predict` that ends with os._exit, blocked for
            # ever on a queue whose write end it holds itself, and keep its caller's output pipe open.
            pool.shutdown(wait=True)
        return {name: here[name] for name in sets}

    return finish
