"""Subcommand groups of the ``mer`` command line (see :mod:`mer_utils.cli`).

A stage command (``mer audio train``, ``mer fuse`` ...) takes the fields of its config dataclass as options,
parsed in its handler by ``transformers.HfArgumentParser`` (:func:`parse_config`), one ``--help`` section per
group dataclass of the config: listing the commands loads neither the configs nor transformers.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_config_command(subparsers, name: str, *, help: str, handler) -> None:
    """``mer ... <name>``, whose options :func:`parse_config` reads in ``handler``."""
    parser = subparsers.add_parser(name, help=help, description=help, add_help=False)  # --help: parse_config's
    parser.set_defaults(handler=handler, config_command=parser)


def parse_config(args: argparse.Namespace, cls, groups=None, options: dict | None = None):
    """The ``cls`` config given by the options of a command of :func:`add_config_command`, and a namespace
    of its other ``options`` (``{"--flag": add_argument keywords}``).

    ``groups``: the group dataclasses whose fields are options (default: ``cls`` itself, ungrouped); the
    other fields keep their defaults. ``--config RUN`` replays a run: the fields of its config.json become
    the defaults (of the other fields too), so options typed beside it win.
    """
    from transformers import HfArgumentParser

    from mer_utils.core.config import field_names, load_config

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


def report_unfinished(result) -> bool:
    """Print why a training command has no scores to show, and return True, when this process does not
    report (not the main process of a launch) or the run waits for folds other processes train."""
    from mer_utils.experts import distributed

    if not distributed.is_main_process():
        return True  # rank 0 reports for all processes
    if result.pending:
        print(f"run folder: {result.run_dir}\nfolds {list(result.pending)} are still to run (other --run-folds); "
              "the process that finishes the last fold writes metrics.json")
        return True
    return False
