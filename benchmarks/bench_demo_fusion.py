"""Hits of the demo's experts and fusion rules on the six real CREMA-D videos of actor 1001 (one per emotion,
../shared/data/crema-d-sample/VideoFlash).

Runs ``predict_clip`` on each FLV with the checkpoints given (chosen real-first, as ``mer predict`` does) and
prints, per clip, each expert's top emotion and the fused one, then how many of the six each got right: the
speech expert alone, the face expert alone, the fusion the demo used, and for comparison the product rule and
the plain average of the two experts' probabilities. Six clips of one actor are a sanity check, not a
benchmark: one clip is 17 points.

    .venv/bin/python benchmarks/bench_demo_fusion.py --checkpoints checkpoints
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "data" / "crema-d-sample" / "VideoFlash"
EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", default="checkpoints", help="checkpoint folder (or hf://REPO_ID)")
    parser.add_argument("--videos", type=Path, default=VIDEOS, help="folder holding 1001_DFA_<EMO>_XX.flv")
    args = parser.parse_args()

    from mer_utils.demo.predict import predict_clip
    from mer_utils.fusion.rules import DEFAULT_RULE

    rows, fusion = [], ""
    for emotion in EMOTIONS:
        result = predict_clip(video=args.videos / f"1001_DFA_{emotion}_XX.flv", checkpoints=args.checkpoints)
        labels, audio, visual = result.labels, result.audio_probs, result.visual_probs
        top = (lambda p: "-" if p is None else labels[int(np.argmax(p))])
        both = audio is not None and visual is not None
        rows.append({"clip": emotion, "speech": top(audio), "face": top(visual), "fused": result.top_emotion,
                     "product": top(DEFAULT_RULE.fuse(audio, visual)) if both else "-",
                     "average": top((audio + visual) / 2) if both else "-"})
        fusion = result.fusion
    print(f"{'clip':<6}" + "".join(f"{k:>9}" for k in rows[0] if k != "clip"))
    for row in rows:
        print(f"{row['clip']:<6}" + "".join(f"{v:>9}" for k, v in row.items() if k != "clip"))
    print("right of 6: " + ", ".join(f"{k} {sum(r[k] == r['clip'] for r in rows)}" for k in rows[0] if k != "clip"))
    print(f"fusion used: {fusion}")


if __name__ == "__main__":
    main()
