"""The experts (audio, visual) as plug-ins of one protocol runner (:mod:`mer_utils.experts.runner`); here their
checkpoints' writer and the runner of the ONNX copies that ``mer export onnx`` lists (and ``onnx_export`` writes)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mer_utils.core.atomic_io import atomic_path, write_json

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)


def save_with_json(path: str | os.PathLike, arrays: dict, meta: dict, *, metadata: dict | None = None) -> Path:
    """Write ``arrays`` to ``<path>.safetensors`` and ``meta`` to the ``.json`` beside it, atomically."""
    import numpy as np
    from safetensors.numpy import save_file
    path = Path(path).with_suffix(".safetensors")
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp), metadata=metadata)
    write_json(path.with_suffix(".json"), meta)
    return path


class OnnxNetwork:
    """An ONNX Runtime session on one thread: ``network(array) -> first output`` (``run`` gives all)."""

    def __init__(self, path: Path):
        import onnxruntime
        options = onnxruntime.SessionOptions()
        # Eight 64x64 crops are too little work to share: a second thread only adds waiting on 2 busy cores.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def run(self, array: np.ndarray) -> list[np.ndarray]:
        import numpy as np
        return self.session.run(None, {self.input: np.ascontiguousarray(array)})

    def __call__(self, array: np.ndarray) -> np.ndarray:
        return self.run(array)[0]


def listed_network(root: str | os.PathLike, record: dict, weights_sha256: str) -> OnnxNetwork | None:
    """The copy ``record`` lists (relative to ``root``) when there and made from these weights, else None."""
    path = Path(root) / record["path"]
    if not path.is_file():
        logger.info("%s is listed but missing: torch answers (re-run `mer export onnx`)", path)
        return None
    if record.get("weights_sha256") != weights_sha256:
        logger.warning("%s was exported from other weights: torch answers (re-run `mer export onnx`)", path)
        return None
    try:
        return OnnxNetwork(path)
    except ImportError:
        logger.info("onnxruntime is not installed: torch answers (pip install onnxruntime)")
        return None
