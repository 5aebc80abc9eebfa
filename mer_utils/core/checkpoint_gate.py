"""One gate for every checkpoint file the toolkit reads: a truncated, foreign, wrong-shaped, NaN or pickled-code
file becomes one :class:`CheckpointError` naming the file, what is wrong in the toolkit's words, and the fix.

>>> from pathlib import Path
>>> try:
...     with opening_checkpoint(Path("best.safetensors"), kind="audio", fix="retrain it"):
...         raise RuntimeError("Error while deserializing header: HeaderTooLarge")
... except CheckpointError as err:
...     print(err)
best.safetensors: not a usable audio checkpoint: the file is truncated or not in safetensors format; it was not used. Fix: retrain it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pickle
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the fix."""


def _reason(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) or "weights_only" in text or "Weights only load failed" in text:
        return ("this file is not a checkpoint the toolkit wrote: it holds Python objects besides tensors, which "
                "could run code when unpickled, so it was not loaded")
    if isinstance(err, json.JSONDecodeError):
        return f"its JSON is truncated or malformed (line {err.lineno}, column {err.colno})"
    if type(err).__name__ == "SafetensorError" or "deserializing header" in text or "HeaderTooLarge" in text:
        return "the file is truncated or not in safetensors format"
    if "PytorchStreamReader" in text or "zip archive" in text or isinstance(err, EOFError):
        return "the file is truncated or corrupt (not a complete torch checkpoint)"
    if "size mismatch" in text or "matmul" in text or "shapes" in text or "Missing key" in text \
            or "Unexpected key" in text:
        return f"its weights do not fit the architecture it declares ({text.splitlines()[0][:200]})"
    return f"{type(err).__name__}: {text.splitlines()[0][:200] if text else ''}"


@contextlib.contextmanager
def opening_checkpoint(path: str | os.PathLike, *, kind: str, fix: str) -> Iterator[None]:
    """Any failure inside but ``FileNotFoundError`` (callers say how to make the file) becomes a CheckpointError."""
    try:
        yield
    except (CheckpointError, FileNotFoundError):
        raise
    except Exception as err:  # noqa: BLE001 - every library's failure mode ends here, named
        raise CheckpointError(f"{path}: not a usable {kind} checkpoint: {_reason(err)}; it was not used. "
                              f"Fix: {fix}.") from None


def refuse_non_finite(arrays: Iterable[tuple[str, object]], *, path: str | os.PathLike, kind: str, fix: str) -> None:
    """Raise :class:`CheckpointError` if any named array (numpy or torch) holds NaN or infinity (an arg-max
    over NaN silently picks the first label)."""
    for name, values in arrays:
        values = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            raise CheckpointError(f"{path}: not a usable {kind} checkpoint: array {name!r} holds NaN or infinite "
                                  f"values, so every answer would be NaN; it was not used. Fix: {fix}.")


def safetensors_arrays(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray]]:
    """``(name, array)`` of every tensor in a safetensors file, read one at a time."""
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as handle:
        for key in handle.keys():
            yield key, handle.get_tensor(key)


def cached_by_file(loader):
    """Decorator: a loader called again on an unchanged checkpoint (path, size and modification time of the file
    and of the ``.json``/``.safetensors``/``.pt`` beside it) returns the model it already loaded."""
    cache: dict = {}

    @functools.wraps(loader)
    def wrapper(path, **kwargs):
        path = Path(path)
        stamps = tuple((s, st.st_size, st.st_mtime_ns) for s in (path.suffix, ".json", ".safetensors", ".pt")
                       if (candidate := path.with_suffix(s) if s else path).exists()
                       and (st := candidate.stat()))
        key = (str(path.resolve()), stamps, tuple(sorted(kwargs.items())))
        if key not in cache:
            if len(cache) >= 8:
                cache.pop(next(iter(cache)))
            cache[key] = loader(path, **kwargs)
        return cache[key]

    return wrapper


def first_usable(candidates: Iterable[tuple[Path, dict]], load) -> tuple[Path, dict, object, list[str]]:
    """The first candidate ``load(path)`` accepts: ``(path, entry, loaded, refusals)``; a broken file in front
    of a valid one is skipped with its refusal recorded. Raises :class:`CheckpointError` when none loads."""
    refusals = []
    for path, entry in candidates:
        try:
            return path, entry, load(path), refusals
        except CheckpointError as err:
            refusals.append(str(err))
    raise CheckpointError("no usable checkpoint: " + " | ".join(refusals) if refusals else "no checkpoint candidates")
