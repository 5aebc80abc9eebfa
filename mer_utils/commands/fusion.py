"""``mer fuse``, ``mer report`` and ``mer run-all``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mer_utils.commands import add_config_command, parse_config
from mer_utils.core.adaptation import ADAPTATIONS
from mer_utils.core.atomic_io import read_json
from mer_utils.fusion.config import FusionConfig
from mer_utils.pipeline import PipelineConfig, run_all


def _fuse(args) -> int:
    from mer_utils.fusion.run import fuse_runs, latest_expert_runs
    config, options = parse_config(args, FusionConfig, options={
        "--protocol": dict(help="use the latest audio and visual runs of this protocol (one corpus: that of the "
                                "newest audio run) for any run folder not given"),
        "--adapt": dict(default="none", choices=ADAPTATIONS,
                        help="with --protocol: the audio run scored this way (default none: each clip alone)")})
    audio_run, visual_run = config.audio_run, config.visual_run
    if not (audio_run and visual_run):
        if not options.protocol:
            raise ValueError("pass --audio-run DIR and --visual-run DIR, or --protocol P to fuse the latest runs of P")
        latest = latest_expert_runs(config.outputs, options.protocol, adapt=options.adapt)
        audio_run, visual_run = audio_run or latest["audio"], visual_run or latest["visual"]
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("audio_run", "visual_run")}
    run_dir = fuse_runs(audio_run, visual_run, **settings)  # checkpoints "": nothing exported
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


def _run_all(args) -> int:
    config, options = parse_config(args, PipelineConfig, options={
        "--quiet": dict(action="store_true", help="no progress bars (same as --no-progress)")})
    run_all(config, **({"progress": False} if options.quiet else {}))
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "fuse", help="late fusion of an audio and a visual run (tuned on validation)",
                       handler=_fuse)

    p = subparsers.add_parser("report", help="tables (Markdown, LaTeX, CSV) and figures from every run in outputs/")
    p.add_argument("--outputs", type=Path, default=Path("outputs"), help="root of the run folders")
    p.add_argument("--out", type=Path, help="report folder (default <outputs>/report)")
    p.add_argument("--metadata", type=Path, help="CREMA-D metadata folder with processedResults/ for the "
                   "human-perception rows, e.g. ../shared/data/crema-d-meta")
    p.add_argument("--manifest", type=Path, help="manifest CSV for the sex/age/intensity breakdown when the "
                   "runs' configs do not lead to one")
    p.add_argument("--no-figures", action="store_true", help="write the tables only")
    p.set_defaults(handler=_report)

    add_config_command(subparsers, "run-all", help="manifest, splits, both experts under both protocols, fusion, "
                       "report and a demo prediction (default: the embedded synthetic corpus)", handler=_run_all)
