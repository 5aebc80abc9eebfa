"""Run folders ``outputs/<stage>/<corpus key>/<run name>-<settings hash>/``: the same settings on the same data
resume in the same folder, anything else gets its own; ``latest_<protocol>.json`` pointers name the newest run."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import importlib.metadata
import os
import platform
import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any, Sequence

from mer_utils.core.atomic_io import read_json, write_json
from mer_utils.core.run_lock import lock_run_dir

# The manifest columns a run's results depend on (the data root's path is not one: a moved folder resumes).
_CORPUS_COLUMNS = ("clip_id", "actor_id", "emotion", "audio_path", "video_path", "audio_status", "video_status",
                   "duration_s")
_TRACKED_PACKAGES = ("mer-utils", "numpy", "pandas", "scikit-learn", "scipy", "torch", "transformers",
                     "opencv-python-headless", "librosa", "soundfile", "opensmile")


def set_seed(seed: int) -> None:
    """Seed python, numpy and (if imported) torch."""
    import numpy as np
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        import torch
        torch.manual_seed(seed)


def environment_info() -> dict[str, Any]:
    """Package versions, git commit and compute device, for ``env.json``."""
    versions = {}
    for name in _TRACKED_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip() or None
    torch = sys.modules.get("torch")  # only when already imported
    device = torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else "cpu"
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "device": device, "packages": versions, "git_commit": commit}


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def frame_digest(frame) -> str:
    """8 hex digits of a pandas frame's cells as text, row order included and the index left out."""
    import pandas as pd
    rows = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()[:8]


def corpus_key(name: str, manifest) -> str:
    """``<corpus>-<digest of the manifest's clips, labels, speakers and media>``: the first half of a run's
    key (runs on other data never share a folder) and the corpus slot of the checkpoint index."""
    return f"{name}-{frame_digest(manifest.loc[:, [c for c in _CORPUS_COLUMNS if c in manifest.columns]])}"


def settings_hash(settings: dict) -> str:
    """Short hash of the settings that change a run's results.

    >>> settings_hash({"seed": 0}) == settings_hash({"seed": 0}), settings_hash({"seed": 0}) == settings_hash({"seed": 1})
    (True, False)
    """
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]


# Device names Windows refuses as a file name, with any extension ("nul.png" too).
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def safe_name(text: str, *, unique: bool = False) -> str:
    """The one portable file/folder name of a label, protocol, clip or run name: letters and digits of any script
    (NFC), ``. _ -``, and ``-`` for anything else. ``unique`` (names from users' files): when a character was
    replaced, 8 hex digits of the text's sha1 follow, so two inputs never share a file.

    >>> safe_name("cross:ravdess-dev->ravdess-hidden")
    'cross-ravdess-dev-ravdess-hidden'
    >>> safe_name("egemaps+mfcc"), safe_name("nul"), safe_name("../x")
    ('egemaps-mfcc', '_nul', 'x')
    >>> safe_name("日本"), safe_name("my clip ü 日本", unique=True)
    ('日本', 'my-clip-ü-日本-4b7f658c')
    """
    text = unicodedata.normalize("NFC", str(text))
    kept = "".join(c if c in "._-" or unicodedata.category(c)[0] in "LMN" else "-" for c in text)
    name = re.sub(r"-{2,}", "-", kept).strip("-.") or "run"
    name = f"_{name}" if name.split(".")[0].upper() in _WINDOWS_RESERVED else name
    if unique and name != text:
        name += "-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return name


def new_run_dir(outputs: str | os.PathLike, stage: str, name: str, config: Any, *, corpus_key: str | None = None,
                settings: dict | None = None, lock_parts: Sequence[str] | None = None) -> Path:
    """Create (or reuse, for the same ``settings``) the locked run folder; write config.json and env.json."""
    if settings is not None:
        settings = json.loads(json.dumps(settings, sort_keys=True, default=str))  # as JSON stores it
    base = Path(outputs) / stage / (safe_name(corpus_key) if corpus_key else "")
    run_dir = base / (f"{safe_name(name)}-{settings_hash(settings)}" if settings is not None else safe_name(name))
    # Before anything is written: two runs never share a folder (or, with ``lock_parts``, a fold) at once.
    for part in lock_parts if lock_parts is not None else ("",):
        lock_run_dir(run_dir, part)
    stamp = run_dir / "settings.json"
    if settings is not None and stamp.exists() and read_json(stamp) != settings:
        raise RuntimeError(f"{run_dir} holds a run with other settings ({stamp}); refusing to mix them. "
                           "Move that folder away or pass other --outputs.")
    run_dir.mkdir(parents=True, exist_ok=True)
    stored = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    write_json(run_dir / "config.json", {k: str(v) if isinstance(v, Path) else v for k, v in stored.items()})
    if settings is not None:
        write_json(stamp, settings)
    write_json(run_dir / "env.json", environment_info())
    return run_dir


def point_latest(outputs: str | os.PathLike, stage: str, key: str, run_dir: str | os.PathLike,
                 *, corpus_key: str | None = None) -> Path:
    """Record ``run_dir`` as the newest run of ``stage``/``key`` (and of ``corpus_key`` when given)."""
    pointers = [Path(outputs) / stage / f"latest_{safe_name(key)}.json"]  # keys may be "cross:a->b" protocols
    if corpus_key:
        pointers.append(Path(outputs) / stage / safe_name(corpus_key) / f"latest_{safe_name(key)}.json")
    for pointer in pointers:
        write_json(pointer, {"run_dir": os.path.relpath(run_dir, pointer.parent), "updated": timestamp(),
                             **({"corpus_key": corpus_key} if corpus_key else {})})
    return pointers[0]


def resolve_latest(outputs: str | os.PathLike, stage: str, key: str, *, corpus_key: str | None = None) -> Path:
    """The run folder recorded by :func:`point_latest` (of ``corpus_key`` when given), with a clear error."""
    pointer = Path(outputs) / stage / (safe_name(corpus_key) if corpus_key else "") / f"latest_{safe_name(key)}.json"
    if not pointer.exists():
        raise FileNotFoundError(f"No {stage} run for {key!r}: {pointer} does not exist. Run the {stage} stage "
                                f"(notebook or `mer {stage} train ...`) first.")
    return (pointer.parent / read_json(pointer)["run_dir"]).resolve()
