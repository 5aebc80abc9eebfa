"""Peak memory and time of the demo's timeline (`mer predict` on a long video) against the video's length.

Synthetic 720p H.264 videos (30 fps, no sound) of a real CREMA-D face (``../shared/data``) that drifts
slowly across a grey room: a 10 s clip is encoded once, and longer videos repeat its packets (a remux,
seconds even for an hour). Each case runs ``predict_clip`` in a fresh subprocess with the FER2013
zero-shot face model, so its own peak RSS is measured (``VmHWM``: imports and the model included).
``--image`` adds a 16000x16000 PNG still.

    .venv/bin/python benchmarks/bench_long_video.py [--minutes 1 2 10 60] [--image] [--workdir DIR]

Targets: under 800 MB for 2 minutes of 720p, under 1 GB for 60 minutes, on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FACE_CLIP = REPO.parent / "shared" / "data" / "crema-d-sample" / "VideoFlash" / "1001_DFA_HAP_XX.flv"
FPS, SIZE = 30, (1280, 720)


def base_clip(path: Path, seconds: int = 10) -> Path:
    """``seconds`` of 720p: the real face pasted on a grey room, moving a few pixels a frame."""
    import av
    import cv2

    capture = cv2.VideoCapture(str(FACE_CLIP))
    ok, bgr = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read {FACE_CLIP}")
    face = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for i in range(seconds * FPS):
            frame = np.full((SIZE[1], SIZE[0], 3), 96, np.uint8)
            x = 200 + int(300 * abs(np.sin(i / (seconds * FPS) * np.pi)))  # back where it started: loops cleanly
            frame[180:180 + face.shape[0], x:x + face.shape[1]] = face
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def repeated(base: Path, path: Path, minutes: float) -> Path:
    """``base``'s packets again and again, shifted in time, up to ``minutes``."""
    import av

    with av.open(str(base)) as source:
        template = source.streams.video[0]
        packets = [(bytes(p), p.pts, p.dts, p.is_keyframe) for p in source.demux(template) if p.size]
        step = int(round(template.duration or 0)) or int(len(packets) / FPS / template.time_base)
        with av.open(str(path), "w") as out:
            stream = out.add_stream_from_template(template)
            for n in range(int(np.ceil(minutes * 60 * FPS / len(packets)))):
                for data, pts, dts, key in packets:
                    packet = av.Packet(data)
                    packet.pts, packet.dts = pts + n * step, dts + n * step
                    packet.time_base, packet.is_keyframe, packet.stream = template.time_base, key, stream
                    out.mux(packet)
    return path


def big_image(path: Path, side: int = 16000) -> Path:
    import cv2

    image = np.full((side, side, 3), 96, np.uint8)
    capture = cv2.VideoCapture(str(FACE_CLIP))
    ok, face = capture.read()
    capture.release()
    face = cv2.resize(face, (side // 2, side * 3 // 8))
    image[side // 4: side // 4 + face.shape[0], side // 4: side // 4 + face.shape[1]] = face
    cv2.imwrite(str(path), image)
    return path


def measure(path: str, checkpoints: str) -> None:
    """In a child: one prediction, then its seconds and this process's peak RSS as JSON."""
    sys.path.insert(0, str(REPO))
    from mer_utils.demo.predict import predict_clip

    start = time.perf_counter()
    result = predict_clip(video=path, checkpoints=checkpoints)
    seconds = time.perf_counter() - start
    windows = 0 if result.timeline is None else len(result.timeline.starts)
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "windows": windows, "top": result.top_emotion}))


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: ``VmHWM``, which starts afresh at ``exec``; ``ru_maxrss``
    would start from the parent's size (a child made by vfork inherits its high-water mark)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(path: Path, checkpoints: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", str(path), "--checkpoints", str(checkpoints)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode:
        raise SystemExit(f"{path.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 10, 60])
    parser.add_argument("--image", action="store_true", help="also a 16000x16000 PNG still")
    parser.add_argument("--workdir", type=Path, help="keep the generated videos here (default: a temp folder)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoints", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure, args.checkpoints)
    sys.path.insert(0, str(REPO))
    from mer_utils.experts.visual.fer2013 import ensure_fer2013_weights

    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        checkpoints = work / "checkpoints"
        ensure_fer2013_weights(checkpoints, cache_dir=REPO / "checkpoints" / ".cache")
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; 720p {FPS} fps, silent, "
              "FER2013 zero-shot face model; each case in its own process")
        base = work / "base_10s.mp4"
        if not base.exists():
            base_clip(base)
        cases = []
        for minutes in args.minutes:
            path = work / f"720p_{minutes:g}min.mp4"
            if not path.exists():
                start = time.perf_counter()
                repeated(base, path, minutes)
                print(f"  made {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s")
            cases.append((f"720p, {minutes:g} min", path))
        if args.image:
            path = work / "still_16000px.png"
            if not path.exists():
                big_image(path)
            cases.append(("PNG 16000x16000", path))
        run_case(base, checkpoints)  # a first run warms the page cache and the FER2013 conversion: not measured
        print(f"{'input':<18}{'peak RSS':>10}{'seconds':>10}{'windows':>9}")
        for name, path in cases:
            got = run_case(path, checkpoints)
            print(f"{name:<18}{got['peak_mb']:>7.0f} MB{got['seconds']:>10.1f}{got['windows']:>9}", flush=True)


if __name__ == "__main__":
    main()
