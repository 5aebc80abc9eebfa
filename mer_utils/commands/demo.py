"""``mer predict`` (the demo on one input) and ``mer app`` (in a browser; the ``app`` extra)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from mer_utils.demo import DEFAULT_HOP_S, DEFAULT_WINDOW_S
from mer_utils.demo.app import launch_app


def _predict(args) -> int:
    from mer_utils.demo.predict import format_result, predict_clip, save_outputs
    # The file's kind (video, audio-only container, still image) is read from its content, not its suffix.
    result = predict_clip(video=args.file, audio=args.audio, clip_id=args.clip_id, data_root=args.data_root,
                          checkpoints=args.checkpoints, audio_checkpoint=args.audio_checkpoint,
                          visual_checkpoint=args.visual_checkpoint, window=args.window, hop=args.hop,
                          allow_synthetic=args.allow_synthetic)
    print(format_result(result))
    # A figure costs matplotlib's import and a render (~1 s): drawn when asked, or for a timeline.
    figure = args.figure if args.figure is not None else result.timeline is not None
    for what, path in save_outputs(result, args.out, figure=figure).items():
        print(f"{what.replace('_', ' ')}: {path}")
    if not figure:
        print("(add --figure for the PNG with the probabilities, the frames and the face boxes)")
    return 0


def _app(args) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise RuntimeError("`mer app` needs Gradio: pip install -e .[app] (or pip install gradio)")
    launch_app(args.checkpoints, host=args.host, port=args.port, share=args.share,
               allow_synthetic=args.allow_synthetic)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="demo: audio, visual and fused emotion probabilities for one input")
    p.add_argument("file", nargs="?", help="a video (FLV/MP4), a recording (WAV/MP3/M4A) or a face image (PNG/JPEG)")
    p.add_argument("--audio", type=Path, help="a recording to use with the video (else the video's own audio track)")
    p.add_argument("--clip-id", help="a CREMA-D clip id, e.g. 1001_DFA_HAP_XX (needs --data-root)")
    p.add_argument("--data-root", type=Path, help="CREMA-D folder for --clip-id")
    p.add_argument("--checkpoints", default="checkpoints",
                   help="checkpoint folder, or hf://REPO_ID for a set shared on the Hugging Face Hub")
    p.add_argument("--audio-checkpoint", type=Path, help="default: the best audio checkpoint in --checkpoints")
    p.add_argument("--visual-checkpoint", type=Path,
                   help="default: the best visual checkpoint in --checkpoints, else FER2013 zero-shot")
    p.add_argument("--allow-synthetic", action="store_true",
                   help="use checkpoints trained on the synthetic corpus on a real input too (default: left out, "
                        "with how to get a real one; they always answer clips of the synthetic corpus)")
    p.add_argument("--window", type=float, default=DEFAULT_WINDOW_S,
                   help="seconds per window for inputs longer than one window (an emotion timeline)")
    p.add_argument("--hop", type=float, default=DEFAULT_HOP_S, help="seconds between window starts")
    p.add_argument("--figure", action=argparse.BooleanOptionalAction, default=None,
                   help="write the figure(s); default: only for a timeline (long inputs)")
    p.add_argument("--out", type=Path, default=Path("outputs/demo"), help="folder for the figure and timeline")
    p.set_defaults(handler=_predict)

    p = subparsers.add_parser("app", help="demo in a browser: upload or record a video, a recording or a face image",
                              description="Serve the demo as a web page (Gradio) and print its URL.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0: reachable from other machines on the network)")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--share", action="store_true", help="also open a temporary public link (gradio.live)")
    p.add_argument("--checkpoints", default="checkpoints",
                   help="checkpoint folder, or hf://REPO_ID for a set shared on the Hugging Face Hub")
    p.add_argument("--allow-synthetic", action="store_true",
                   help="start with synthetic-trained checkpoints allowed on real inputs (a checkbox on the page)")
    p.set_defaults(handler=_app)
