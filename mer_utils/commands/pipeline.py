"""``mer run-all``: the main job, end to end."""

from __future__ import annotations


def _run_all(args) -> int:
    from mer_utils.core.config import from_args
    from mer_utils.pipeline import PipelineConfig, run_all

    config = from_args(PipelineConfig, args)
    run_all(config, **({"progress": False} if args.quiet else {}))
    return 0


def register(subparsers) -> None:
    from mer_utils.core.config import add_dataclass_arguments
    from mer_utils.pipeline import PipelineConfig

    p = subparsers.add_parser("run-all", help="manifest, splits, both experts under both protocols, fusion, "
                              "report and a demo prediction (default: the embedded synthetic corpus)")
    from mer_utils.core.adaptation import ADAPTATIONS

    add_dataclass_arguments(p, PipelineConfig, choices={"audio_adapt": ADAPTATIONS})
    p.add_argument("--quiet", action="store_true", help="no progress bars (same as --no-progress)")
    p.set_defaults(handler=_run_all)
