"""Speed of the audio expert on CPU (a benchmark, not a test).

Prints:
- CPU inference seconds per 2.5 s clip of a wav2vec2-base-sized model
  (the real architecture, random weights: no download needed);
- acoustic-feature extraction throughput (clips/s) per feature set, and the
  time that implies for the full CREMA-D (7,442 clips);
- peak resident memory of this process and of its worker processes.

Targets: wav2vec2-base inference under 0.5 s per clip on 2 cores; full
CREMA-D acoustic features in under 10 minutes on 2 cores.

    python benchmarks/bench_audio.py --threads 2 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from mer_utils.data.cremad_vocabulary import EMOTIONS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SAMPLE_DIR = REPO.parent / "shared" / "data" / "crema-d-sample" / "AudioWAV"
CREMAD_CLIPS = 7442
SR = 16_000


def speech_clips(n: int, seconds: float = 2.5) -> list[np.ndarray]:
    """``n`` clips of ``seconds``: real CREMA-D speech looped when available, else a synthetic voice."""
    import soundfile as sf

    sources = [sf.read(p, dtype="float32")[0] for p in sorted(SAMPLE_DIR.glob("*.wav"))]
    if not sources:
        t = np.arange(int(seconds * SR)) / SR
        sources = [sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 10)).astype(np.float32) * 0.1
                   for f0 in (110, 140, 180, 220)]
    length = int(seconds * SR)
    return [np.resize(sources[i % len(sources)], length) for i in range(n)]


def bench_wav2vec2(n_clips: int, threads: int) -> dict:
    import torch
    from transformers import AutoModel, Wav2Vec2Config

    from mer_utils.experts.audio.ssl_model import SSLClassifier, default_feature_extractor

    torch.set_num_threads(threads)
    config = Wav2Vec2Config()  # the facebook/wav2vec2-base architecture (95 M parameters)
    model = SSLClassifier(AutoModel.from_config(config), default_feature_extractor(config), labels=EMOTIONS).eval()
    clips = speech_clips(n_clips + 1)
    model.predict_proba_waves(clips[:1])  # warm-up: first call allocates
    start = time.perf_counter()
    model.predict_proba_waves(clips[1:])
    per_clip = (time.perf_counter() - start) / n_clips
    return {"model": "wav2vec2-base architecture, random weights",
            "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "threads": threads, "clips": n_clips, "seconds_per_2.5s_clip": round(per_clip, 3),
            "target_s": 0.5, "meets_target": per_clip < 0.5}


def bench_features(n_clips: int, jobs: int, feature_sets: list[str]) -> list[dict]:
    import soundfile as sf

    from mer_utils.experts.audio.features import features_for_files

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, clip in enumerate(speech_clips(n_clips)):
            paths.append(Path(tmp) / f"clip{i:04d}.wav")
            sf.write(paths[-1], clip, SR)
        for name in feature_sets:
            # Warm-up: start the worker processes and build the extractors before timing.
            features_for_files(paths[: 2 * jobs], feature_set=name, n_jobs=jobs, progress=False)
            start = time.perf_counter()
            features_for_files(paths, feature_set=name, n_jobs=jobs, progress=False)
            rate = n_clips / (time.perf_counter() - start)
            minutes = CREMAD_CLIPS / rate / 60
            rows.append({"feature_set": name, "processes": jobs, "clips": n_clips,
                         "clips_per_s": round(rate, 1), "full_cremad_minutes": round(minutes, 1),
                         "target_minutes": 10, "meets_target": minutes < 10})
    return rows


def _own_peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux


def peak_memory_mb(jobs: int) -> dict:
    """Peak resident memory of this process and of the (still running) extraction workers."""
    from joblib import Parallel, delayed

    workers = Parallel(n_jobs=jobs)(delayed(_own_peak_kb)() for _ in range(4 * jobs)) if jobs != 1 else [0]
    return {"self_mb": round(_own_peak_kb() / 1024, 1), "largest_worker_mb": round(max(workers) / 1024, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for wav2vec2 inference")
    parser.add_argument("--jobs", type=int, default=2, help="processes for feature extraction")
    parser.add_argument("--ssl-clips", type=int, default=10, help="clips timed for wav2vec2")
    parser.add_argument("--feature-clips", type=int, default=120, help="clips timed per feature set")
    parser.add_argument("--feature-sets", nargs="+", default=["librosa", "egemaps", "compare"])
    parser.add_argument("--skip-ssl", action="store_true", help="only the acoustic features")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    results = {"features": bench_features(args.feature_clips, args.jobs, args.feature_sets)}
    for row in results["features"]:
        print(f"{row['feature_set']:>8}: {row['clips_per_s']:6.1f} clips/s with {row['processes']} processes "
              f"-> full CREMA-D in {row['full_cremad_minutes']:.1f} min (target < 10: "
              f"{'yes' if row['meets_target'] else 'NO'})")
    if not args.skip_ssl:
        results["wav2vec2"] = bench_wav2vec2(args.ssl_clips, args.threads)
        w = results["wav2vec2"]
        print(f"wav2vec2-base ({w['parameters_M']} M params), {w['threads']} threads: "
              f"{w['seconds_per_2.5s_clip']:.3f} s per 2.5 s clip (target < 0.5: "
              f"{'yes' if w['meets_target'] else 'NO'})")
    results["peak_memory"] = peak_memory_mb(args.jobs)
    print(f"peak memory: {results['peak_memory']['self_mb']:.0f} MB (this process), "
          f"{results['peak_memory']['largest_worker_mb']:.0f} MB (largest worker)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
