"""``mer predict``: the demo on one clip, from the command line."""

from __future__ import annotations

from pathlib import Path


def _predict(args) -> int:
    from mer_utils.core.runs import safe_name
    from mer_utils.demo.predict import format_result, plot_result, predict_clip

    video = audio = None
    if args.file is not None:
        if args.file.suffix.lower() in (".wav", ".mp3"):
            audio = args.file
        else:
            video = args.file
    result = predict_clip(video=video, audio=args.audio or audio, clip_id=args.clip_id, data_root=args.data_root,
                          checkpoints=args.checkpoints, audio_checkpoint=args.audio_checkpoint,
                          visual_checkpoint=args.visual_checkpoint)
    print(format_result(result))
    figure = plot_result(result, args.out / f"{safe_name(result.inputs.name)}_prediction.png")
    print(f"figure: {figure}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="demo: audio, visual and fused emotion probabilities for one clip")
    p.add_argument("file", nargs="?", type=Path, help="a video (FLV/MP4) or a WAV/MP3")
    p.add_argument("--audio", type=Path, help="a WAV to use with the video (else the video's own audio track)")
    p.add_argument("--clip-id", help="a CREMA-D clip id, e.g. 1001_DFA_HAP_XX (needs --data-root)")
    p.add_argument("--data-root", type=Path, help="CREMA-D folder for --clip-id")
    p.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    p.add_argument("--audio-checkpoint", type=Path, help="default: the best audio checkpoint in --checkpoints")
    p.add_argument("--visual-checkpoint", type=Path, help="default: checkpoints/best_visual_model.safetensors")
    p.add_argument("--out", type=Path, default=Path("outputs/demo"), help="folder for the figure")
    p.set_defaults(handler=_predict)
