"""Stage configs: flat dataclasses (``config.json``'s keys) with a help text per field, built from one group
dataclass per ``--help`` section. Free of transformers: :func:`mer_utils.commands.parse_config` parses them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path


def field(default, help_text: str, **kwargs):
    """A dataclass field with its CLI help (and ``choices``); a tuple default makes a ``list[X]`` option."""
    metadata = {"help": help_text, **kwargs}
    if isinstance(default, tuple):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def group(title: str):
    """A dataclass of one concern: its fields are the ``title`` section of a command's ``--help``."""
    def make(cls):
        cls._argument_group_name = title  # the section title HfArgumentParser reads
        return dataclasses.dataclass(cls)
    return make


def field_names(*groups) -> set[str]:
    """The fields of the group dataclasses ``groups``."""
    return {f.name for group in groups for f in dataclasses.fields(group)}


# Options of a training stage that change where, how fast or how verbosely a run happens, never its
# results: they stay out of the run folder's settings hash. run_folds only says which folds this process
# trains: processes running other folds share the run folder.
NOT_RESULTS = frozenset({"data_root", "outputs", "checkpoints", "progress", "device", "n_jobs", "metadata_dir",
                         "run_folds"})


def run_folds_field():
    """The ``--run-folds`` option every protocol-runner stage has."""
    return field((), "train only these folds (e.g. 0 1), leaving the others to other processes or GPUs writing "
                     "into the same run folder; the last to finish writes the run's metrics ([]: all folds)")


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
    unknown = sorted(set(stored) - field_names(cls))
    if unknown:
        raise ValueError(f"{path}: fields {unknown} are not options of {cls.__name__}; is this the config of "
                         "another stage?")
    return stored


def ignored_options(config, relevant: set[str]) -> list[str]:
    """Fields outside ``relevant`` set away from their default (to be refused, not silently dropped)."""
    out = []
    for f in dataclasses.fields(config):
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        value = getattr(config, f.name)
        if f.name not in relevant and (list(value) if isinstance(value, tuple) else value) != default:
            out.append(f"--{f.name.replace('_', '-')} {value}")
    return out


def one_of(value, choices, what: str):
    """``value`` when it is one of ``choices``, else a ValueError naming them."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of {tuple(choices)}")
    return value


class DictIO:
    """``to_dict`` for JSON and ``from_dict`` for a dataclass (unknown keys dropped: other versions' files load)."""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict):
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields})
