"""Benchmark of media health, the cost of every manifest build, on the real CREMA-D sample.

Prints the wall and CPU time per file of :func:`audio_health` (WAV, MP3) and
:func:`video_health` (FLV), best of ``--repeats`` passes, the time of a whole
``build_manifest`` of the sample (18 files), and the projection for the full
corpus (7,442 WAVs + 7,442 FLVs) on 2 threads.

    .venv/bin/python benchmarks/bench_manifest.py [--repeats 5] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mer_utils.data.manifest import build_manifest
from mer_utils.data.media_health import audio_health, video_health

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "crema-d-sample"
N_CREMAD = 7442


def _per_file(check, paths, repeats: int) -> tuple[float, float]:
    """Seconds per file: (wall, process CPU), best of ``repeats`` passes."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for path in paths:
            check(path)
        walls.append((time.perf_counter() - wall) / len(paths))
        cpus.append((time.process_time() - cpu) / len(paths))
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args()
    kinds = {"wav": (audio_health, "AudioWAV/*.wav"), "mp3": (audio_health, "AudioMP3/*.mp3"),
             "flv": (video_health, "VideoFlash/*.flv")}
    per_file = {}
    for name, (check, pattern) in kinds.items():
        paths = sorted(args.data_root.glob(pattern))
        if not paths:
            continue
        check(paths[0])  # warm-up: imports, decoder set-up
        per_file[name] = _per_file(check, paths, args.repeats)
        print(f"{name}: {1000 * per_file[name][0]:.1f} ms wall, {1000 * per_file[name][1]:.1f} ms CPU per file "
              f"({len(paths)} files)")
    builds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        build_manifest(args.data_root, progress=False)
        builds.append(time.perf_counter() - start)
    print(f"build_manifest of {args.data_root.name}: {min(builds):.3f} s (best of {args.repeats})")
    if "wav" in per_file and "flv" in per_file:
        cpu = N_CREMAD * (per_file["wav"][1] + per_file["flv"][1])
        print(f"full corpus ({N_CREMAD} WAV + {N_CREMAD} FLV): {cpu / 60:.1f} min of CPU, "
              f"about {cpu / 2 / 60:.1f} min on 2 threads")


if __name__ == "__main__":
    main()
