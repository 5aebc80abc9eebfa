"""The ``mer`` command line: each group of subcommands is a module of :mod:`mer_utils.commands` with a
``register(subparsers)`` function; handlers import their heavy libraries inside, so ``mer --help`` is instant."""

from __future__ import annotations

import argparse
import importlib
import sys

# Top-level command -> the module that registers it. A command line that names one registers that module alone:
# every command's options would import pandas (the split protocols), costing `mer predict` a third of a second.
COMMAND_MODULES = {command: f"mer_utils.commands.{module}" for module, commands in (
    ("data", ("manifest", "splits", "synth", "human-baseline")), ("download", ("download",)), ("audio", ("audio",)),
    ("fusion", ("fuse", "report", "run-all")), ("visual", ("visual",)), ("demo", ("predict", "app")),
    ("hub", ("hub", "export"))) for command in commands}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``mer`` parser; with ``argv``, only the module of the command it names (all when it names none)."""
    from mer_utils import __version__
    parser = argparse.ArgumentParser(
        prog="mer",
        description="Multimodal emotion recognition on CREMA-D: data, audio and visual experts, fusion, demo.",
    )
    parser.add_argument("--version", action="version", version=f"mer_utils {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    named = next((arg for arg in argv or () if not arg.startswith("-")), None)
    modules = [COMMAND_MODULES[named]] if named in COMMAND_MODULES else dict.fromkeys(COMMAND_MODULES.values())
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``mer`` command line; returns its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "config_command", None):
        parser.parse_args(argv)  # argparse's error for an option the command does not have
    args.options = rest  # a stage command's options, parsed by its handler (commands.parse_config)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        # Every output is written atomically and every stage resumes from its files: no traceback to read.
        print(f"\nmer {args.command}: interrupted; what was finished is kept, re-run the same command to resume",
              file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError) as err:
        # The package's errors already name the file and the fix (a failed write: atomic_io.WriteError).
        print(f"mer {args.command}: error: {err}", file=sys.stderr)
        return 1
    return int(result or 0)


def entry() -> int:
    """The ``mer`` console script (and ``python -m mer_utils``)."""
    return main()
