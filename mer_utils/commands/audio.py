"""``mer audio train``, ``mer audio compare``, ``mer audio predict``, ``mer audio cross-corpus``."""

from __future__ import annotations

from pathlib import Path

from mer_utils.commands import add_config_command, parse_config, report_run
from mer_utils.core.adaptation import ADAPTATIONS
from mer_utils.core.atomic_io import read_json, write_csv


def _train(args) -> int:
    from mer_utils.experts.audio.config import GROUPS, AudioTrainConfig
    from mer_utils.experts.audio.train import train_audio
    return report_run(train_audio(parse_config(args, AudioTrainConfig, GROUPS)[0]))


def _compare(args) -> int:
    from mer_utils.experts.audio.compare import compare_protocols, save_protocol_comparison
    table = compare_protocols(args.outputs, protocols=tuple(args.protocols), adapt=args.adapt)
    print(table.to_string(index=False))
    if args.out:
        paths = save_protocol_comparison(table, args.out)
        print("written: " + ", ".join(str(p) for p in paths))
    return 0


def _predict(args) -> int:
    from mer_utils.experts.audio.checkpoint import load_audio_expert
    from mer_utils.core.predictions import make_predictions_frame
    files = sorted(p for p in args.inputs if p.is_file()) + sorted(
        f for d in args.inputs if d.is_dir() for f in d.iterdir() if f.suffix.lower() in (".wav", ".mp3", ".flac"))
    if not files:
        raise FileNotFoundError(f"no .wav/.mp3/.flac files in {[str(p) for p in args.inputs]}")
    expert = load_audio_expert(args.checkpoint, device=args.device)
    proba = expert.predict_proba(files)
    frame = make_predictions_frame(clip_ids=[f.stem for f in files], y_true=None, proba=proba, labels=expert.labels,
                                   split="inference", fold=0, subset="test", modality="audio")
    if args.out:
        write_csv(args.out, frame, float_format="%.6f")
        print(f"predictions: {args.out}")
    print(frame[["clip_id", "y_pred", *[c for c in frame.columns if c.startswith("p_")]]].to_string(index=False))
    return 0


def _cross_corpus(args) -> int:
    from mer_utils.experts.audio.cross_corpus import CrossCorpusConfig, run_cross_corpus
    config, options = parse_config(args, CrossCorpusConfig, options={
        "--quiet": dict(action="store_true", help="no progress bars")})
    run_dir = run_cross_corpus(config, progress=not options.quiet)
    test = read_json(run_dir / "metrics.json")["summary"]["test"]
    print(f"{config.source_name} -> {config.target_name}: test UA {test['ua']['mean']:.3f}, WA {test['wa']['mean']:.3f}")
    print(f"run folder: {run_dir}")
    return 0


def register(subparsers) -> None:
    audio = subparsers.add_parser("audio", help="speech emotion recognition: train, compare protocols, predict")
    commands = audio.add_subparsers(dest="audio_command", metavar="SUBCOMMAND")
    audio.set_defaults(handler=lambda args: audio.print_help() or 2)

    add_config_command(commands, "train", help="train and evaluate the audio expert under one protocol",
                       handler=_train)

    p = commands.add_parser("compare", help="WA/UA/macro-F1 of the latest runs under each protocol, and the gap")
    p.add_argument("--outputs", default="outputs", help="outputs folder holding audio/latest_<protocol>.json")
    p.add_argument("--protocols", nargs="+", default=["random", "speaker"], help="protocols to compare")
    p.add_argument("--adapt", default="none", choices=ADAPTATIONS,
                   help="compare the runs scored this way (default none: each clip alone); runs scored "
                        "differently are never compared")
    p.add_argument("--out", type=Path, help="folder for protocol_comparison.csv and .png")
    p.set_defaults(handler=_compare)

    p = commands.add_parser("predict", help="emotion probabilities for audio files with a saved checkpoint")
    p.add_argument("checkpoint", type=Path, help="checkpoints/best_*.pt or best_audio_*.safetensors")
    p.add_argument("inputs", type=Path, nargs="+", help="audio files and/or folders")
    p.add_argument("--out", type=Path, help="CSV to write (predictions contract, split 'inference')")
    p.add_argument("--device", default=None, help="torch device for speech models")
    p.set_defaults(handler=_predict)

    add_config_command(commands, "cross-corpus", help="train on one corpus, test on another over their shared "
                       "emotions", handler=_cross_corpus)
