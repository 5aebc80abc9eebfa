"""Benchmark of the visual pipeline on the real CREMA-D FLVs in ../shared/data.

Prints clips/s of decode + face detection + crop (K sampled frames, frames
skipped with ``grab``) against decoding every frame, the projected time for
all 7,442 CREMA-D clips on 2 cores, a measured 2-worker run, and CPU
inference time per clip. Also writes a contact sheet of the crops
(``outputs/visual/contact_sheet_real.png``) and prints the face detection
rate.

    .venv/bin/python benchmarks/bench_visual.py [--repeats 5] [--video-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from mer_utils.data.cremad_vocabulary import EMOTIONS


REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = REPO.parent / "shared" / "data" / "crema-d-sample" / "VideoFlash"
N_CREMAD = 7442


def _timed(fn, paths, repeats: int) -> tuple[float, float]:
    """Seconds per clip: (wall, process CPU), best of ``repeats`` passes."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        for path in paths:
            fn(path)
        walls.append((time.perf_counter() - wall) / len(paths))
        cpus.append((time.process_time() - cpu) / len(paths))
    return min(walls), min(cpus)


def _pipelines(config):
    from mer_utils.experts.visual.crops import extract_clip_crops
    from mer_utils.experts.visual.faces import crop_faces, track_faces
    from mer_utils.experts.visual.video import read_all_frames, sample_frame_indices

    detector = config.make_detector()

    def decode_all_then_sample(path):
        frames = read_all_frames(path)
        chosen = frames[sample_frame_indices(len(frames), config.n_frames)]
        track = track_faces(chosen, detector, margin=config.margin, window=config.smooth_window)
        return crop_faces(chosen, track.boxes, size=config.crop_size)

    def decode_all_detect_all(path):
        frames = read_all_frames(path)
        track = track_faces(frames, detector, margin=config.margin, window=config.smooth_window)
        return crop_faces(frames[sample_frame_indices(len(frames), config.n_frames)],
                          track.boxes[sample_frame_indices(len(frames), config.n_frames)], size=config.crop_size)

    return {
        "sampled K frames (grab), detect K, crop [this toolkit]": lambda p: extract_clip_crops(p, config, detector=detector),
        "decode every frame, then detect K, crop": decode_all_then_sample,
        "decode every frame, detect every frame, crop": decode_all_detect_all,
    }


def _parallel_run(paths, config, copies: int) -> tuple[float, dict]:
    """Measured clips/s of prepare_crops with 2 workers over ``copies`` copies of each clip."""
    import pandas as pd

    from mer_utils.experts.visual.crops import prepare_crops, summarize_report

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "VideoFlash"
        root.mkdir()
        ids, rels = [], []
        for i, path in enumerate(paths):
            for c in range(copies):
                clip_id = f"{1001 + c}_{path.stem.split('_', 1)[1]}"
                shutil.copy(path, root / f"{clip_id}.flv")
                ids.append(clip_id)
                rels.append(f"VideoFlash/{clip_id}.flv")
        manifest = pd.DataFrame({"clip_id": ids, "video_path": rels, "video_status": "ok"})
        start = time.perf_counter()
        _, report = prepare_crops(manifest, tmp, config=config, cache_dir=Path(tmp) / "cache", n_jobs=2,
                                  progress=False)
        return len(ids) / (time.perf_counter() - start), summarize_report(report)


def _inference(paths, config, checkpoints: Path) -> dict:
    import torch

    from mer_utils.experts.visual.checkpoint import VisualExpert, load_visual_expert
    from mer_utils.experts.visual.crops import extract_clip_crops
    from mer_utils.experts.visual.models import ModelSpec, build_visual_model

    best = checkpoints / "best_visual_model.safetensors"
    if best.exists():
        expert, source = load_visual_expert(best), str(best)
    else:  # untrained head on the pretrained encoder: same cost
        model = build_visual_model(ModelSpec(labels=EMOTIONS), weights_dir=checkpoints).eval()
        expert, source = VisualExpert(model, {"crop": vars(config)}), "fer2013 encoder + untrained head"
    torch.set_num_threads(1)
    crops = extract_clip_crops(paths[0], expert.crop_config).crops
    expert.predict_crops(crops)
    model_s, _ = _timed(lambda _: expert.predict_crops(crops), [None] * 20, 3)
    video_s, _ = _timed(expert.predict_video, paths, 2)
    return {"source": source, "model_ms_per_clip": 1000 * model_s, "video_ms_per_clip": 1000 * video_s}


def main() -> None:
    import cv2

    from mer_utils.experts.visual.crops import CropConfig, extract_clip_crops
    from mer_utils.experts.visual.figures import contact_sheet

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video-dir", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=5, help="copies of each clip in the 2-worker run")
    parser.add_argument("--checkpoints", type=Path, default=REPO / "checkpoints")
    parser.add_argument("--sheet", type=Path, default=REPO / "outputs" / "visual" / "contact_sheet_real.png")
    args = parser.parse_args()
    paths = sorted(args.video_dir.glob("*.flv"))
    if not paths:
        raise SystemExit(f"no .flv files in {args.video_dir}")
    config = CropConfig()
    print(f"{len(paths)} clips from {args.video_dir}; K={config.n_frames}, crop {config.crop_size}px, "
          f"{config.cascade}, detect at {config.detect_width}px; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (timings are best of {args.repeats})")

    clips = {p.stem: extract_clip_crops(p, config) for p in paths}
    found = sum(int(c.detected.sum()) for c in clips.values())
    total = sum(len(c.detected) for c in clips.values())
    contact_sheet({k: c.crops for k, c in clips.items()}, path=args.sheet)
    print(f"face found in {found}/{total} sampled frames ({found / total:.1%}); contact sheet: {args.sheet}")

    cv2.setNumThreads(1)  # one core per worker, as prepare_crops runs them
    print(f"\n{'one worker, one core':<56}{'clips/s':>9}{'CPU ms/clip':>13}{'7,442 clips, 2 cores':>22}")
    for name, fn in _pipelines(config).items():
        wall, cpu = _timed(fn, paths, args.repeats)
        projected = N_CREMAD * wall / 2 / 60
        print(f"{name:<56}{1 / wall:>9.1f}{1000 * cpu:>13.1f}{projected:>17.1f} min")
    cv2.setNumThreads(0)

    rate, summary = _parallel_run(paths, config, args.copies)
    print(f"\nprepare_crops, 2 workers, {len(paths) * args.copies} clips: {rate:.1f} clips/s -> "
          f"{N_CREMAD / rate / 60:.1f} min for 7,442 clips (face rate {summary['face_rate']:.3f})")

    inf = _inference(paths, config, args.checkpoints)
    print(f"\nCPU inference, one thread ({inf['source']}): model {inf['model_ms_per_clip']:.1f} ms per clip "
          f"of {config.n_frames} crops; video file to probabilities {inf['video_ms_per_clip']:.1f} ms per clip")


if __name__ == "__main__":
    main()
