"""``mer run-all``: the main job, end to end."""

from __future__ import annotations


def _run_all(args) -> int:
    from mer_utils.pipeline import PipelineConfig, run_all

    run_all(PipelineConfig(data_root=args.data_root, outputs=args.outputs, checkpoints=args.checkpoints,
                           metadata_dir=args.metadata_dir, audio_backbone=args.audio_backbone,
                           visual_backbone=args.visual_backbone, seed=args.seed, progress=not args.quiet))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("run-all", help="manifest, splits, both experts under both protocols, fusion, "
                              "report and a demo prediction (default: the embedded synthetic corpus)")
    p.add_argument("--data-root", help="CREMA-D folder (default: the embedded synthetic corpus)")
    p.add_argument("--outputs", default="outputs")
    p.add_argument("--checkpoints", default="checkpoints")
    p.add_argument("--metadata-dir", help="CREMA-D metadata with processedResults/ (human-baseline rows)")
    p.add_argument("--audio-backbone", help="audio backbone (default: the offline acoustic baseline)")
    p.add_argument("--visual-backbone", default="fer2013")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_run_all)
