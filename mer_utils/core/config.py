"""One way to configure every stage: a dataclass with a help text per field.

:func:`add_dataclass_arguments` turns any stage's dataclass into ``argparse``
options (``--field-name``, its type, default and help), :func:`from_args`
builds the dataclass back, and ``--config path/config.json`` (added to
every stage command) replays a run: the saved fields are the defaults,
options given on the command line override them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path


def field(default, help_text: str, **kwargs):
    """A dataclass field with its CLI help (and optional ``choices``, ``nargs``, ``type``)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple (immutable) default for a sequence field")
    return dataclasses.field(default=default, metadata={"help": help_text, **kwargs})


# Options of a training stage that change where, how fast or how verbosely a run happens, never its
# results: they stay out of the run folder's settings hash. run_folds only says which folds this process
# trains: processes running other folds share the run folder.
NOT_RESULTS = frozenset({"data_root", "outputs", "checkpoints", "progress", "device", "n_jobs", "metadata_dir",
                         "run_folds"})


def run_folds_field():
    """The ``--run-folds`` option every protocol-runner stage has."""
    return field((), "train only these folds (e.g. 0 1), leaving the others to other processes or GPUs writing "
                     "into the same run folder; the last to finish writes the run's metrics (empty: all folds)",
                 nargs="*", type=int)


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "null", "") else kind(text)
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, *, choices: dict | None = None,
                            skip: tuple = ()) -> None:
    """One option per field of ``cls``; ``choices`` adds choice lists by field name."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        meta = dict(f.metadata)
        if choices and f.name in choices:
            meta["choices"] = choices[f.name]
        required = f.default is dataclasses.MISSING
        help_text = meta.pop("help", "") + ("" if required else f" (default: {f.default})")
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
            continue
        args = typing.get_args(hint)
        base = next((t for t in args if t is not type(None)), hint)
        kind = meta.pop("type", base if base in (int, float, str) else str)
        if type(None) in args:
            kind = _none_or(kind)
        if typing.get_origin(hint) is tuple or hint is tuple or (args and typing.get_origin(base) is tuple):
            meta.setdefault("nargs", "+")
        if required:
            meta["required"] = True
        else:
            meta["default"] = f.default
        parser.add_argument(flag, type=kind, help=help_text, **meta)
    parser.add_argument("--config", type=Path, default=None,
                        help="replay a run: read its config.json; options given here override it")


def from_args(cls, args: argparse.Namespace, argv: list[str] | None = None):
    """The dataclass of ``args``; with ``--config`` the file's values are the defaults.

    ``argv`` (default: the command line the ``mer`` entry point parsed, else
    ``sys.argv``) tells which options the user typed, so they win over the
    replayed file.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    replay = getattr(args, "config", None)
    if replay is not None:
        stored = load_config(replay, cls)
        argv = argv if argv is not None else getattr(args, "typed_argv", sys.argv[1:])
        typed = _typed_options(argv)
        values = {**values, **{k: v for k, v in stored.items() if k not in typed}}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_config(path: str | Path, cls) -> dict:
    """The fields of ``cls`` stored in a run's ``config.json``, with a clear error."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; --config takes a run folder or its config.json")
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); pass the config.json a run wrote") from None
    if hasattr(cls, "upgrade_config"):  # a stage whose options changed reads its older files
        stored = cls.upgrade_config(stored)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(stored) - names)
    if unknown:
        raise ValueError(f"{path}: fields {unknown} are not options of {cls.__name__}; is this the config of "
                         "another stage?")
    return stored


def _typed_options(argv: list[str]) -> set[str]:
    return {a[2:].split("=", 1)[0].replace("-", "_").removeprefix("no_") for a in argv if a.startswith("--")}


def ignored_options(config, relevant: set[str]) -> list[str]:
    """Fields outside ``relevant`` set away from their default (to be refused, not silently dropped)."""
    out = []
    for f in dataclasses.fields(config):
        if f.name in relevant:
            continue
        value = getattr(config, f.name)
        if value != f.default and not (isinstance(f.default, tuple) and tuple(value) == f.default):
            out.append(f"--{f.name.replace('_', '-')} {value}")
    return out
