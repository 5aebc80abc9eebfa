"""The ``mer`` command line.

Each group of subcommands lives in ``mer_utils/commands/<group>.py`` with a
``register(subparsers)`` function; handlers import their heavy libraries
inside, so ``mer --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "mer_utils.commands.data",
    "mer_utils.commands.download",
    "mer_utils.commands.audio",
    "mer_utils.commands.fusion",
    "mer_utils.commands.visual",
    "mer_utils.commands.demo",
    "mer_utils.commands.hub",
    "mer_utils.commands.pipeline",
)


def build_parser() -> argparse.ArgumentParser:
    from mer_utils import __version__

    parser = argparse.ArgumentParser(
        prog="mer",
        description="Multimodal emotion recognition on CREMA-D: data, audio and visual experts, fusion, demo.",
    )
    parser.add_argument("--version", action="version", version=f"mer_utils {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.typed_argv = argv  # which options the user typed: they win over a replayed --config
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        result = args.handler(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        # Errors raised by the package already name the file and the fix.
        print(f"mer {args.command}: error: {err}", file=sys.stderr)
        return 1
    return int(result or 0)
