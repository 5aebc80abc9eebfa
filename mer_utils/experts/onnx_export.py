"""``mer export onnx``: ONNX copies of the visual checkpoints, the FER2013 face model and the GE2E encoder, checked
against torch and listed with their weights' sha256; the demo runs a listed copy (:func:`with_listed_copy`)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np

from mer_utils.core.atomic_io import atomic_path, read_json, sha256_file, write_json
from mer_utils.core.checkpoint_index import entry_path, read_index, update_entry
from mer_utils.experts import OnnxNetwork, listed_network
from mer_utils.experts.audio import speaker_encoder
from mer_utils.experts.audio.speaker_encoder import weights_fingerprint
from mer_utils.experts.visual.checkpoint import VisualExpert, load_visual_model
from mer_utils.experts.visual.fer2013 import WEIGHTS_NAME, load_fer2013_model

logger = logging.getLogger(__name__)
TOLERANCE = 1e-4  # largest |ONNX - torch| accepted on an output (probabilities, LSTM states)


def export_module(path: Path, module, examples: list[np.ndarray], *, dynamic_axis: int = 0,
                  dynamo: bool = True) -> float:
    """Write ``module`` to ``path``; returns the largest ``|ONNX Runtime - torch|`` over ``examples`` (over
    :data:`TOLERANCE`: ValueError, nothing written). ``dynamo=False`` (TorchScript) keeps an LSTM whole."""
    import torch
    module = module.eval()
    example = torch.from_numpy(np.ascontiguousarray(examples[0]))
    with atomic_path(path) as tmp, _quiet_exporter():
        if dynamo:
            dynamic = ({dynamic_axis: torch.export.Dim("n", min=1, max=1_000_000)},)
            torch.onnx.export(module, (example,), None, dynamo=True, dynamic_shapes=dynamic,
                              input_names=["input"], verbose=False).save(str(tmp))
        else:
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, input_names=["input"],
                              dynamic_axes={"input": {dynamic_axis: "n"}})
        network, gap = OnnxNetwork(tmp), 0.0
        for array in examples:
            with torch.inference_mode():
                reference = module(torch.from_numpy(np.ascontiguousarray(array)))
            reference = reference if isinstance(reference, (tuple, list)) else (reference,)
            for ours, theirs in zip(network.run(array), reference):
                gap = max(gap, float(np.abs(ours - theirs.numpy()).max()))
        if not gap <= TOLERANCE:
            raise ValueError(f"{path.name}: ONNX and torch outputs differ by {gap:.2e} (> {TOLERANCE:g}); not written")
    return gap


@contextlib.contextmanager
def _quiet_exporter():
    """The exporters report each step on stdout and warn about optional packages and deprecations."""
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        exporter_log.setLevel(level)


def export_checkpoints(checkpoints: str | os.PathLike = "checkpoints") -> list[dict]:
    """Export and list every network of ``checkpoints``; returns the records, each with ``network``."""
    root = Path(checkpoints).resolve()
    done = []
    for entry in read_index(root):
        path = entry_path(root, entry)
        if entry["modality"] == "visual":
            record = _export(root, path.with_suffix(".safetensors"), "visual")
        elif entry["modality"] == "audio" and "ge2e" in re.split(r"[+,]", str(entry.get("backbone", ""))):
            record = _export(root, path.with_suffix(".ge2e.onnx"), "ge2e")
        else:
            continue
        update_entry(root, entry, onnx=record)
        done.append({"network": entry["path"], **record})
    fer = root / f"{WEIGHTS_NAME}.safetensors"
    if fer.is_file() and fer.with_suffix(".json").is_file():
        record = _export(root, fer, "fer2013")
        write_json(fer.with_suffix(".json"), {**read_json(fer.with_suffix(".json")), "onnx": record})
        done.append({"network": fer.name, **record})
    if not done:
        raise FileNotFoundError(f"nothing to export in {root}: no visual or ge2e speech checkpoint in its index and "
                                f"no {WEIGHTS_NAME}.safetensors; train first (`mer run-all`) or "
                                "`mer hub pull REPO_ID`")
    return done


def _export(root: Path, path: Path, kind: str) -> dict:
    """Export the visual checkpoint (checked as any load) or FER2013 model at ``path`` beside it, or the GE2E encoder
    to ``path``; returns the record (its path relative to ``root``)."""
    rng, onnx, options = np.random.default_rng(0), path.with_suffix(".onnx"), {}
    if kind == "visual":
        model, meta = load_visual_model(path)
        module, k, size = model.inference_module(), meta["crop"]["n_frames"], meta["crop"]["crop_size"]
        examples = [rng.integers(0, 256, (batch, k, size, size, 3), dtype=np.uint8) for batch in (1, 3)]
    elif kind == "fer2013":
        module = load_fer2013_model(path).probabilities_module()
        examples = [rng.uniform(-1, 1, (n, 1, 64, 64)).astype(np.float32) for n in (8, 3)]
    else:  # TorchScript: dynamo would unroll the LSTM
        onnx, module, options = path, speaker_encoder.layer_outputs_module(), {"dynamic_axis": 1, "dynamo": False}
        examples = [rng.gamma(1.0, 1.0, (1, n, speaker_encoder.N_MELS)).astype(np.float32) for n in (120, 37)]
    gap = export_module(onnx, module, examples, **options)
    sha256 = weights_fingerprint()["weights_sha256"] if kind == "ge2e" else sha256_file(path)
    return {"path": Path(os.path.relpath(onnx, root)).as_posix(), "max_abs_diff": gap, "weights_sha256": sha256}


def with_listed_copy(kind: str, expert, checkpoints: str | os.PathLike, entry: dict):
    """``expert`` (index ``entry``'s) running the ONNX copy the entry lists when usable, else ``expert`` itself."""
    if not entry.get("onnx"):
        return expert
    if kind == "visual":
        weights = entry_path(checkpoints, entry).with_suffix(".safetensors")
        network = listed_network(checkpoints, entry["onnx"], sha256_file(weights))
        return expert if network is None else VisualExpert(expert.model, expert.meta, network=network)
    if not hasattr(expert, "encoder"):  # a speech-model checkpoint: no GE2E encoder
        return expert
    network = listed_network(checkpoints, entry["onnx"], weights_fingerprint()["weights_sha256"])
    return expert if network is None else dataclasses.replace(expert, encoder=network.run)
