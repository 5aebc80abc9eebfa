"""``mer run-all``: the main job, end to end."""

from __future__ import annotations

from mer_utils.commands import add_config_command, parse_config


def _run_all(args) -> int:
    from mer_utils.pipeline import PipelineConfig, run_all

    config, options = parse_config(args, PipelineConfig, options={
        "--quiet": dict(action="store_true", help="no progress bars (same as --no-progress)")})
    run_all(config, **({"progress": False} if options.quiet else {}))
    return 0


def register(subparsers) -> None:
    add_config_command(subparsers, "run-all", help="manifest, splits, both experts under both protocols, fusion, "
                       "report and a demo prediction (default: the embedded synthetic corpus)", handler=_run_all)
