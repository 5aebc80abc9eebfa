"""Face networks run by ONNX Runtime, exported once per checkpoint, so that predicting needs no torch.

Importing torch costs the demo 1.2 s of its start-up, and a face model
scores 8 small crops in 0.02 s. The first time a checkpoint is loaded for
prediction, its inference network is exported with ``torch.onnx`` (the
dynamo exporter, a few seconds), checked against torch on random inputs and
written to a cache; every later process loads the ONNX file with
``onnxruntime`` (0.05 s) and never imports torch.

The cache key is the sha256 of the checkpoint's files and of what the
network computes (:data:`EXPORT_VERSION`, the wrapper's name), so a
retrained or replaced checkpoint gets a fresh export, never a stale one.
An export that fails or disagrees with torch leaves a ``.failed`` note with
the reason and the caller keeps torch; a cached file ONNX Runtime cannot
read is set aside and exported again. Torch stays the reference: the
results are the same to float precision (checked at export, and in
tests/test_visual_onnx.py).

Environment: ``MER_ONNX_CACHE`` (default ``~/.cache/mer_utils/onnx``) holds
the files; ``MER_ONNX=0`` keeps every model on torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from mer_utils.core.atomic_io import atomic_path, sha256_file, write_json

logger = logging.getLogger(__name__)
EXPORT_VERSION = 1  # bump when an exported wrapper computes something different
TOLERANCE = 1e-4  # largest |ONNX - torch| accepted on a probability


def enabled() -> bool:
    return os.environ.get("MER_ONNX", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    return Path(os.environ.get("MER_ONNX_CACHE") or Path.home() / ".cache" / "mer_utils" / "onnx")


def content_key(network: str, *files: str | os.PathLike) -> str:
    """What identifies an export: the wrapper ``network`` computes and the bytes of the checkpoint ``files``."""
    digest = hashlib.sha256(f"{network}:{EXPORT_VERSION}".encode())
    for path in files:
        digest.update(sha256_file(path).encode())
    return f"{network}-{digest.hexdigest()[:24]}"


class OnnxNetwork:
    """An ONNX Runtime session on one thread: ``network(array) -> first output`` (``run`` gives all)."""

    def __init__(self, path: Path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # Eight 64x64 crops are too little work to share: a second thread only adds waiting on 2 busy cores.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input: np.ascontiguousarray(array)})

    def __call__(self, array: np.ndarray) -> np.ndarray:
        return self.run(array)[0]


def cached_network(key: str) -> OnnxNetwork | None:
    """The cached export of ``key``, or None (none yet, disabled, onnxruntime missing, unreadable file)."""
    path = cache_dir() / f"{key}.onnx"
    if not enabled() or not path.is_file():
        return None
    try:
        return OnnxNetwork(path)
    except ImportError:
        return None
    except Exception as err:  # a cut or foreign file in the cache: set aside, exported again below
        logger.warning("%s: ONNX Runtime cannot read it (%s); set aside as .corrupt and exported again",
                       path, str(err).splitlines()[0][:200])
        path.replace(path.with_suffix(".corrupt"))
        return None


def export_network(key: str, module, examples: list[np.ndarray], *, dynamic_batch: bool = True) -> OnnxNetwork | None:
    """Export torch ``module`` (eval mode, array in, tensors out) as ``key``, check it, cache it.

    ``examples`` are inputs of the shape predictions use (the first one
    traces); each must give the same outputs in torch and ONNX Runtime within
    :data:`TOLERANCE`. Returns None, leaving a ``.failed`` note, when the
    export is not possible or not faithful: the caller keeps torch.
    """
    if not enabled():
        return None
    failed = cache_dir() / f"{key}.failed"
    if failed.is_file():
        return None  # tried before for these exact bytes; torch serves, without another costly attempt
    try:
        import onnxruntime  # noqa: F401  (no runtime: nothing to export for)
        import onnxscript  # noqa: F401  (the dynamo exporter's dependency)
    except ImportError as err:
        logger.info("face model stays on torch (%s); pip install onnx onnxscript onnxruntime", err)
        return None
    path = cache_dir() / f"{key}.onnx"
    try:
        network = _export(path, module, examples, dynamic_batch=dynamic_batch)
    except Exception as err:  # the exporter's errors are many and version-specific; torch keeps serving
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
        try:
            write_json(failed, {"key": key, "reason": reason})
        except OSError:  # a read-only cache folder: nothing is cached, torch serves every time
            failed = f"nowhere ({cache_dir()} is not writable; set MER_ONNX_CACHE)"
        logger.warning("face model stays on torch: its ONNX export failed (%s); noted in %s", reason, failed)
        return None
    return network


def _export(path: Path, module, examples: list[np.ndarray], *, dynamic_batch: bool) -> OnnxNetwork:
    import torch

    module = module.eval()
    example = torch.from_numpy(np.ascontiguousarray(examples[0]))
    dynamic = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    print(f"face model: exporting it to ONNX for fast starts, once per checkpoint (a few seconds), into {path.parent}")
    # The exporter reports each step on stdout and warns about optional packages it does not need here.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), None, dynamo=True, dynamic_shapes=dynamic,
                                        input_names=["input"], verbose=False)
    finally:
        exporter_log.setLevel(level)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        program.save(str(tmp))
        network = OnnxNetwork(tmp)
        for array in examples:
            with torch.inference_mode():
                reference = module(torch.from_numpy(np.ascontiguousarray(array)))
            reference = reference if isinstance(reference, (tuple, list)) else (reference,)
            for ours, theirs in zip(network.run(array), reference):
                gap = float(np.abs(ours - theirs.numpy()).max())
                if not gap <= TOLERANCE:
                    raise ValueError(f"ONNX and torch outputs differ by {gap:.2e} (> {TOLERANCE:g})")
    return OnnxNetwork(path)

