"""Networks run by ONNX Runtime, exported once per checkpoint, so that predicting needs no torch.

Importing torch costs the demo 1.2 s of its start-up, and its networks are
small: a face model scores 8 crops in 0.02 s, the speech encoder of the
``ge2e`` feature set a clip in 0.04 s. The first time a network is loaded
for prediction it is exported with ``torch.onnx`` (a few seconds), checked
against torch on example inputs and written to a cache; every later process
loads the ONNX file with ``onnxruntime`` (0.05 s) and never imports torch.

The cache key is the sha256 of the weights' files and of what the network
computes (:data:`EXPORT_VERSION`, the wrapper's name), so a retrained or
replaced checkpoint gets a fresh export, never a stale one. An export that
fails or disagrees with torch leaves a ``.failed`` note with the reason and
the caller keeps torch; a cached file ONNX Runtime cannot read is set aside
and exported again. Torch stays the reference: the results are the same to
float precision (checked at export, and in tests/test_visual_onnx.py).

Environment: ``MER_ONNX_CACHE`` (default ``onnx/`` in the user's cache folder, ``~/.cache/mer_utils``:
:mod:`mer_utils.core.user_cache`) holds
the files; ``MER_ONNX=0`` keeps every network on torch.
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
TOLERANCE = 1e-4  # largest |ONNX - torch| accepted on an output (probabilities, LSTM states)
EXPORTERS = ("dynamo", "torchscript")


def enabled() -> bool:
    return os.environ.get("MER_ONNX", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    from mer_utils.core.user_cache import user_cache_dir

    return Path(os.environ.get("MER_ONNX_CACHE") or user_cache_dir("onnx"))


def content_key(network: str, *files: str | os.PathLike, digests: tuple[str, ...] = ()) -> str:
    """What identifies an export: the wrapper ``network`` computes and the bytes of the weights ``files``
    (or their sha256 ``digests``, when the caller has them already)."""
    digest = hashlib.sha256(f"{network}:{EXPORT_VERSION}".encode())
    for part in [sha256_file(path) for path in files] + list(digests):
        digest.update(part.encode())
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


def export_network(key: str, module, examples: list[np.ndarray], *, dynamic_axis: int | None = 0,
                   exporter: str = "dynamo", what: str = "face model") -> OnnxNetwork | None:
    """Export torch ``module`` (eval mode, one array in, tensors out) as ``key``, check it, cache it.

    ``examples`` are inputs of the shapes predictions use (the first one
    traces; they differ along ``dynamic_axis``, the batch or time axis); each
    must give the same outputs in torch and ONNX Runtime within
    :data:`TOLERANCE`. ``exporter``: ``"dynamo"`` (torch.export; the face
    models) or ``"torchscript"`` (the tracing exporter, which keeps an
    ``nn.LSTM`` one ONNX LSTM over any length; the dynamo one unrolls it to
    the traced length). Returns None, leaving a ``.failed`` note, when the
    export is not possible or not faithful: the caller keeps torch.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; choose one of {EXPORTERS}")
    if not enabled():
        return None
    failed = cache_dir() / f"{key}.failed"
    if failed.is_file():
        return None  # tried before for these exact bytes; torch serves, without another costly attempt
    try:
        import onnx  # noqa: F401  (both exporters write through it)
        import onnxruntime  # noqa: F401  (no runtime: nothing to export for)
        if exporter == "dynamo":
            import onnxscript  # noqa: F401
    except ImportError as err:
        logger.info("%s stays on torch (%s); pip install onnx onnxscript onnxruntime", what, err)
        return None
    path = cache_dir() / f"{key}.onnx"
    try:
        network = _export(path, module, examples, dynamic_axis=dynamic_axis, exporter=exporter, what=what)
    except Exception as err:  # the exporter's errors are many and version-specific; torch keeps serving
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
        try:
            write_json(failed, {"key": key, "reason": reason})
        except OSError:  # a read-only cache folder: nothing is cached, torch serves every time
            failed = f"nowhere ({cache_dir()} is not writable; set MER_ONNX_CACHE)"
        logger.warning("%s stays on torch: its ONNX export failed (%s); noted in %s", what, reason, failed)
        return None
    return network


def _export(path: Path, module, examples: list[np.ndarray], *, dynamic_axis: int | None, exporter: str,
            what: str) -> OnnxNetwork:
    import torch

    module = module.eval()
    example = torch.from_numpy(np.ascontiguousarray(examples[0]))
    print(f"{what}: exporting it to ONNX for fast starts, once per checkpoint (a few seconds), into {path.parent}")
    # The exporters report each step on stdout and warn about optional packages and deprecations.
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with atomic_path(path) as tmp:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if exporter == "dynamo":
                    dynamic = None if dynamic_axis is None else \
                        ({dynamic_axis: torch.export.Dim("n", min=1, max=1_000_000)},)
                    torch.onnx.export(module, (example,), None, dynamo=True, dynamic_shapes=dynamic,
                                      input_names=["input"], verbose=False).save(str(tmp))
                else:
                    axes = None if dynamic_axis is None else {"input": {dynamic_axis: "n"}}
                    torch.onnx.export(module, (example,), str(tmp), dynamo=False, input_names=["input"],
                                      dynamic_axes=axes)
            network = OnnxNetwork(tmp)
            for array in examples:
                with torch.inference_mode():
                    reference = module(torch.from_numpy(np.ascontiguousarray(array)))
                reference = reference if isinstance(reference, (tuple, list)) else (reference,)
                for ours, theirs in zip(network.run(array), reference):
                    gap = float(np.abs(ours - theirs.numpy()).max())
                    if not gap <= TOLERANCE:
                        raise ValueError(f"ONNX and torch outputs differ by {gap:.2e} (> {TOLERANCE:g})")
    finally:
        exporter_log.setLevel(level)
    return OnnxNetwork(path)
