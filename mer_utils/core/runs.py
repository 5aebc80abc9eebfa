"""Self-describing run folders (SpeechBrain / lightning-hydra style).

``outputs/<stage>/<run_name>/`` holds ``config.json`` (the stage dataclass),
``env.json`` (package versions, git commit, device), ``metrics.json`` and the
predictions CSVs. ``outputs/<stage>/latest_<key>.json`` points at the newest
run of a given protocol so that the fusion notebook finds it without the user
copying folder names around.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.metadata
import os
import platform
import random
import subprocess
from pathlib import Path
from typing import Any

from mer_utils.core.atomic_io import read_json, write_json

_TRACKED_PACKAGES = (
    "mer-utils", "numpy", "pandas", "scikit-learn", "scipy", "torch", "transformers",
    "opencv-python-headless", "librosa", "soundfile", "opensmile",
)


def set_seed(seed: int) -> None:
    """Seed python, numpy and (if imported) torch."""
    import sys

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info() -> dict[str, Any]:
    """Package versions, git commit and compute device, for ``env.json``."""
    import sys

    versions = {}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    device = "cpu"
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "packages": versions,
        "git_commit": git_commit(),
    }


def config_to_dict(config: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(config):
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()}
    return dict(config)


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def new_run_dir(outputs: str | os.PathLike, stage: str, name: str, config: Any) -> Path:
    """Create ``outputs/<stage>/<name>`` and write config.json and env.json."""
    run_dir = Path(outputs) / stage / name
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", config_to_dict(config))
    write_json(run_dir / "env.json", environment_info())
    return run_dir


def point_latest(outputs: str | os.PathLike, stage: str, key: str, run_dir: str | os.PathLike) -> Path:
    """Record ``run_dir`` as the newest run of ``stage``/``key``."""
    pointer = Path(outputs) / stage / f"latest_{key}.json"
    write_json(pointer, {"run_dir": os.path.relpath(run_dir, pointer.parent), "updated": timestamp()})
    return pointer


def resolve_latest(outputs: str | os.PathLike, stage: str, key: str) -> Path:
    """The run folder recorded by :func:`point_latest`, with a clear error."""
    pointer = Path(outputs) / stage / f"latest_{key}.json"
    if not pointer.exists():
        raise FileNotFoundError(
            f"No {stage} run for {key!r}: {pointer} does not exist. Run the {stage} stage "
            f"(notebook or `mer {stage} train ...`) first."
        )
    return (pointer.parent / read_json(pointer)["run_dir"]).resolve()
