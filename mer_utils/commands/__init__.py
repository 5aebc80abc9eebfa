"""Subcommand groups of the ``mer`` command line. A stage command's options are the fields of its config
dataclass, parsed in its handler by :func:`parse_config` (listing the commands loads neither)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mer_utils.core.config import field_names, load_config
from mer_utils.experts import distributed


def add_config_command(subparsers, name: str, *, help: str, handler) -> None:
    """``mer ... <name>``, whose options :func:`parse_config` reads in ``handler``."""
    parser = subparsers.add_parser(name, help=help, description=help, add_help=False)  # --help: parse_config's
    parser.set_defaults(handler=handler, config_command=parser)


def parse_config(args: argparse.Namespace, cls, groups=None, options: dict | None = None):
    """The ``cls`` config of a command's options (one ``--help`` section per ``groups`` dataclass) and a namespace
    of its other ``options``; ``--config RUN``: that run's config.json gives the defaults, typed options win."""
    from transformers import HfArgumentParser
    command = args.config_command
    parser = HfArgumentParser(groups or [cls], prog=command.prog, description=command.description)
    parser.add_argument("--config", type=Path, help="replay a run: its folder or config.json; options typed here "
                                                    "override it")
    for flag, keywords in (options or {}).items():
        parser.add_argument(flag, **keywords)
    replay = parser.parse_known_args(args.options)[0].config  # --help and argparse's errors exit here
    stored = load_config(replay, cls) if replay else {}
    parser.set_defaults(**stored)
    namespace = vars(parser.parse_args(args.options))
    values = {k: v for group in parser.parse_dict(namespace, allow_extra_keys=True) for k, v in vars(group).items()}
    fields = field_names(cls)
    return cls(**{**stored, **values}), argparse.Namespace(**{k: v for k, v in namespace.items() if k not in fields})


def report_run(result) -> int:
    """Print a training run's validation and test scores, or why this process has none (another process reports,
    or folds are still to run), and where the run and its checkpoint are. The command's exit status."""
    from mer_utils.core.metrics import SCORE_NAMES, format_mean_std  # pandas: not on `mer predict`'s path

    if not distributed.is_main_process():
        return 0  # rank 0 reports for all processes
    if result.pending:
        print(f"run folder: {result.run_dir}\nfolds {list(result.pending)} are still to run (other --run-folds); "
              "the process that finishes the last fold writes metrics.json")
        return 0
    summary = result.metrics["summary"]
    for subset, s in ((k, summary[k]) for k in ("val", "test") if k in summary):
        scores = "  ".join(f"{name} {format_mean_std(s[key]['mean'], s[key]['std'])}"
                           for key, name in SCORE_NAMES.items())
        print(f"{subset:>4}: {scores}  (n folds {s['ua']['n']})")
    if result.metrics["n_skipped"]:
        print(f"skipped {result.metrics['n_skipped']} clips (see {result.run_dir / 'skipped_clips.csv'})")
    print(f"run: {result.run_dir}\ncheckpoint: {result.checkpoint}")
    return 0
