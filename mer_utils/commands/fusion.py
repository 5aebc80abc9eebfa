"""``mer fuse`` and ``mer report``."""

from __future__ import annotations

from pathlib import Path


def _expert_runs(args) -> tuple[Path, Path]:
    from mer_utils.fusion.run import latest_expert_runs

    if args.audio_run is not None and args.visual_run is not None:
        return args.audio_run, args.visual_run
    if not args.protocol:
        raise ValueError("pass --audio-run DIR and --visual-run DIR, or --protocol P to fuse the latest runs of P")
    latest = latest_expert_runs(args.outputs, args.protocol)
    return args.audio_run or latest["audio"], args.visual_run or latest["visual"]


def _fuse(args) -> int:
    from mer_utils.core.atomic_io import read_json
    from mer_utils.fusion.run import fuse_runs

    audio_run, visual_run = _expert_runs(args)
    run_dir = fuse_runs(audio_run, visual_run, outputs=args.outputs, strategies=args.strategies,
                        calibrate=not args.no_calibrate, n_bootstrap=args.n_bootstrap, cv_folds=args.cv_folds,
                        grid_step=args.grid_step, seed=args.seed, on_missing=args.on_missing, name=args.name or "",
                        checkpoints=args.checkpoints)
    print((run_dir / "fusion_results.md").read_text(encoding="utf-8"))
    metrics = read_json(run_dir / "metrics.json")
    print(f"chosen on validation: {metrics['strategy']} {metrics['params']}")
    print(f"fusion run: {run_dir}")
    return 0


def _report(args) -> int:
    from mer_utils.report.build import make_report

    report = make_report(args.outputs, out_dir=args.out, metadata=args.metadata, manifest=args.manifest,
                         figures=not args.no_figures)
    print(report.read_text(encoding="utf-8"))
    print(f"report: {report}")
    return 0


def register(subparsers) -> None:
    from mer_utils.fusion.config import STRATEGY_NAMES
    from mer_utils.fusion.config import field_help as _help

    p = subparsers.add_parser("fuse", help="late fusion of an audio and a visual run (tuned on validation)")
    p.add_argument("--audio-run", type=Path, help=_help("audio_run"))
    p.add_argument("--visual-run", type=Path, help=_help("visual_run"))
    p.add_argument("--protocol", help="use the latest audio and visual runs of this protocol "
                   "(outputs/<modality>/latest_<protocol>.json) for any run folder not given")
    p.add_argument("--outputs", type=Path, default=Path("outputs"), help=_help("outputs"))
    p.add_argument("--strategies", nargs="+", choices=STRATEGY_NAMES, default=list(STRATEGY_NAMES),
                   help=_help("strategies"))
    p.add_argument("--no-calibrate", action="store_true", help="skip the per-expert temperature scaling")
    p.add_argument("--n-bootstrap", type=int, default=1000, help=_help("n_bootstrap"))
    p.add_argument("--cv-folds", type=int, default=5, help=_help("cv_folds"))
    p.add_argument("--grid-step", type=float, default=0.05, help=_help("grid_step"))
    p.add_argument("--seed", type=int, default=0, help=_help("seed"))
    p.add_argument("--on-missing", choices=("raise", "intersect"), default="raise", help=_help("on_missing"))
    p.add_argument("--name", help=_help("name"))
    p.add_argument("--checkpoints", default="checkpoints", help=_help("checkpoints"))
    p.set_defaults(handler=_fuse)

    p = subparsers.add_parser("report", help="tables (Markdown, LaTeX, CSV) and figures from every run in outputs/")
    p.add_argument("--outputs", type=Path, default=Path("outputs"), help="root of the run folders")
    p.add_argument("--out", type=Path, help="report folder (default <outputs>/report)")
    p.add_argument("--metadata", type=Path, help="CREMA-D metadata folder with processedResults/ for the "
                   "human-perception rows, e.g. ../shared/data/crema-d-meta")
    p.add_argument("--manifest", type=Path, help="manifest CSV for the sex/age/intensity breakdown when the "
                   "runs' configs do not lead to one")
    p.add_argument("--no-figures", action="store_true", help="write the tables only")
    p.set_defaults(handler=_report)
