"""Start-up and per-clip time of the demo (`mer predict`) on the real CREMA-D FLVs in ../shared/data.

Cold: a fresh ``python -m mer_utils predict FLV --no-figure`` subprocess per
run (interpreter start, imports, loading the checkpoints, one prediction),
wall and CPU seconds, best and median of ``--repeats``, and the same with the
figure. Warm: ``predict_clip`` in one process after a first call (experts
loaded once), seconds per clip over the six clips. Also prints how long the
heaviest imports take on their own, so a regression is easy to place.

    .venv/bin/python benchmarks/bench_predict.py --checkpoints checkpoints [--repeats 5]

The checkpoints come from ``mer run-all`` (synthetic-trained, seconds) or
``mer hub pull REPO_ID``; with none, the face expert is FER2013 zero-shot.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = REPO.parent / "shared" / "data" / "crema-d-sample" / "VideoFlash"
COLD_BUDGET_S, WARM_BUDGET_S = 5.0, 0.2  # on 2 cores


def _env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra}


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cold_runs(args: list[str], repeats: int, **env: str) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``repeats`` fresh interpreters running ``args``."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu, wall = _child_cpu(), time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True, env=_env(**env), cwd=REPO)
        walls.append(time.perf_counter() - wall)
        cpus.append(_child_cpu() - cpu)
    return walls, cpus


def _report(name: str, walls: list[float], cpus: list[float], budget: float | None = None) -> None:
    verdict = "" if budget is None else \
        f" [{'within' if statistics.median(walls) <= budget else 'OVER'} the {budget:g} s budget]"
    print(f"{name:<44} wall best {min(walls):5.2f} s, median {statistics.median(walls):5.2f} s; "
          f"CPU median {statistics.median(cpus):5.2f} s{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", default="checkpoints")
    parser.add_argument("--video-dir", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_predict"))
    args = parser.parse_args()
    videos = sorted(args.video_dir.glob("*.flv"))
    if not videos:
        raise SystemExit(f"no FLVs in {args.video_dir}")
    print(f"{len(videos)} clips from {args.video_dir}; checkpoints {args.checkpoints}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}")
    # --allow-synthetic: with `mer run-all`'s synthetic checkpoints both experts still run on the real clips
    # (the default leaves synthetic-trained experts out of real inputs), so the timings cover both.
    predict = ["-m", "mer_utils", "predict", str(videos[0]), "--checkpoints", str(args.checkpoints),
               "--out", str(args.out), "--allow-synthetic"]
    _report("python -c pass (interpreter alone)", *cold_runs(["-c", "pass"], args.repeats))
    for module in ("numpy", "torch", "opensmile", "cv2", "av", "onnxruntime"):
        _report(f"import {module}", *cold_runs(["-c", f"import {module}"], max(2, args.repeats // 2)))
    # librosa loads lazily: its cost comes with the first function used.
    _report("librosa's first use (stft)", *cold_runs(["-c", "import numpy, librosa; librosa.stft(numpy.zeros(16000))"],
                                                     max(2, args.repeats // 2)))
    _report("mer predict --help", *cold_runs(["-m", "mer_utils", "predict", "--help"], args.repeats))
    _report("mer predict FLV --no-figure (cold)", *cold_runs([*predict, "--no-figure"], args.repeats), COLD_BUDGET_S)
    _report("mer predict FLV --figure (cold)", *cold_runs([*predict, "--figure"], args.repeats))

    sys.path.insert(0, str(REPO))
    from mer_utils.demo.predict import predict_clip

    start = time.perf_counter()
    first = predict_clip(video=videos[0], checkpoints=args.checkpoints, allow_synthetic=True)
    print(f"{'in-process first call (imports + loading)':<44} {time.perf_counter() - start:5.2f} s")
    times = []
    for _ in range(args.repeats):
        for video in videos:
            start = time.perf_counter()
            predict_clip(video=video, checkpoints=args.checkpoints, allow_synthetic=True)
            times.append(time.perf_counter() - start)
    warm = statistics.median(times)
    print(f"{'warm, per clip (experts loaded)':<44} median {warm:5.3f} s, best {min(times):5.3f} s over "
          f"{len(times)} predictions [{'within' if warm <= WARM_BUDGET_S else 'OVER'} the {WARM_BUDGET_S:g} s "
          f"budget]; load average now {os.getloadavg()[0]:.2f}")
    print("experts: " + "; ".join(f"{k}: {v}" for k, v in first.checkpoints.items()))


if __name__ == "__main__":
    main()
