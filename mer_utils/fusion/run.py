"""``mer fuse``: fuse two expert runs into a run folder of their own.

``outputs/fusion/<split>_<audio backbone>+<visual backbone>/`` holds
config.json and env.json, the master table, the predictions of the strategy
chosen on validation (``predictions_{val,test}.csv``, modality
``audio_visual``) and of every strategy (``strategies/``), the results table
(``fusion_results.csv``/``.md``) and metrics.json in the experts' schema.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

from mer_utils.core import runs
from mer_utils.core.atomic_io import read_json, write_csv, write_text
from mer_utils.experts.evaluation import save_run_outputs
from mer_utils.fusion.config import STRATEGY_NAMES, FusionConfig
from mer_utils.fusion.deploy import FusionRule, rule_from_outcome, save_fusion_rule
from mer_utils.fusion.join import ExpertRun, build_master_table, load_expert_run
from mer_utils.fusion.results import results_markdown, results_table
from mer_utils.fusion.tuning import FUSED_MODALITY, fuse_master
from mer_utils.core.predictions import write_predictions
from mer_utils.report.collect import protocol_kind

log = logging.getLogger(__name__)
STAGE = "fusion"


# What makes the expert runs of a protocol, named when they are missing.
_MAKERS = {
    "audio": {"random": "AUDIO_03_modeling_SER_random_split_v01.ipynb",
              "speaker": "AUDIO_03_modeling_SER_speaker_independent_v01.ipynb"},
    "visual": {},
}
_DEFAULT_MAKER = {"audio": "the AUDIO_03 notebooks", "visual": "VISUAL_01_modeling_FER_CREMA-D_video_v01.ipynb"}


def latest_expert_runs(outputs: str | os.PathLike, protocol: str) -> dict[str, Path]:
    """The newest audio and visual run folders of ``protocol`` (``outputs/<stage>/latest_<protocol>.json``).

    Raises
    ------
    FileNotFoundError
        Naming the notebook and the command that make each missing run.
    """
    found, missing = {}, []
    for modality in ("audio", "visual"):
        try:
            found[modality] = runs.resolve_latest(outputs, modality, protocol)
        except FileNotFoundError:
            maker = _MAKERS[modality].get(protocol, _DEFAULT_MAKER[modality])
            missing.append(f"{modality}: run {maker} with PROTOCOL = {protocol!r}, or "
                           f"`mer {modality} train --protocol {protocol} --outputs {outputs}`")
    if missing:
        raise FileNotFoundError(
            f"no {' and no '.join(m.split(':')[0] for m in missing)} run of protocol {protocol!r} under "
            f"{outputs}. Make it first — " + "; ".join(missing) + " (`mer run-all` makes both).")
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", str(text)).strip("-")


def _expert_record(expert: ExpertRun, outputs: Path) -> dict:
    env_path = expert.run_dir / "env.json"
    env = read_json(env_path) if env_path.exists() else {}
    return {"run_dir": Path(os.path.relpath(expert.run_dir.resolve(), outputs.resolve())).as_posix(),
            "backbone": expert.info.get("backbone"), "git_commit": env.get("git_commit")}


def _check_same_protocol(audio: ExpertRun, visual: ExpertRun) -> str:
    for key in ("protocol", "split"):
        if audio.info.get(key) != visual.info.get(key):
            raise ValueError(
                f"the audio run {audio.run_dir} has {key} {audio.info.get(key)!r} but the visual run "
                f"{visual.run_dir} has {visual.info.get(key)!r}; fuse runs of the same protocol and split."
            )
    return str(audio.info["protocol"])


def _deployed_fold(outcome, audio: ExpertRun, visual: ExpertRun) -> int:
    """Index of the fold whose rule is exported: the one the audio (else visual) checkpoint came from."""
    folds = [t["fold"] for t in outcome.temperatures]
    for expert in (audio, visual):
        if expert.info.get("checkpoint_fold") in folds:
            return folds.index(expert.info["checkpoint_fold"])
    return 0


def export_rule(rule: FusionRule, checkpoints: str | os.PathLike) -> Path:
    """Write ``best_fusion_<protocol>.json`` and, unless it would replace a speaker-independent
    rule by a random-split one, ``best_fusion.json`` (the demo's, which prefers speaker-independent
    experts too)."""
    checkpoints = Path(checkpoints)
    save_fusion_rule(rule, checkpoints / f"best_fusion_{rule.protocol}.json")
    current = checkpoints / "best_fusion.json"
    if current.exists():
        existing = read_json(current).get("protocol", "")
        if protocol_kind(existing) == "speaker" and protocol_kind(rule.protocol) != "speaker":
            log.info("keeping %s (protocol %s) as the demo's fusion rule", current, existing)
            return current
    return save_fusion_rule(rule, current)


def fuse_runs(
    audio_run_dir: str | os.PathLike,
    visual_run_dir: str | os.PathLike,
    *,
    outputs: str | os.PathLike = "outputs",
    strategies=STRATEGY_NAMES,
    calibrate: bool = True,
    n_bootstrap: int = 1000,
    cv_folds: int = 5,
    grid_step: float = 0.05,
    seed: int = 0,
    on_missing: str = "raise",
    name: str = "",
    checkpoints: str | os.PathLike | None = "checkpoints",
) -> Path:
    """Fuse an audio and a visual expert run; return the new fusion run folder.

    Every parameter is tuned on each fold's validation predictions only; the
    strategy with the best out-of-fold validation UA becomes the run's
    ``predictions_{val,test}.csv``. ``outputs/fusion/latest_<protocol>.json``
    then points at the run, and the chosen rule is exported for the demo to
    ``fusion_rule.json`` and ``<checkpoints>/best_fusion.json`` (see
    :func:`export_rule`; ``checkpoints=None`` skips the latter).
    """
    config = FusionConfig(audio_run=str(audio_run_dir), visual_run=str(visual_run_dir), outputs=str(outputs),
                          strategies=tuple(strategies), calibrate=calibrate, n_bootstrap=n_bootstrap,
                          cv_folds=cv_folds, grid_step=grid_step, seed=seed, on_missing=on_missing, name=name,
                          checkpoints=str(checkpoints or ""))
    outputs = Path(outputs)
    audio = load_expert_run(audio_run_dir, modality="audio")
    visual = load_expert_run(visual_run_dir, modality="visual")
    protocol = _check_same_protocol(audio, visual)
    master, dropped = build_master_table(
        {"audio": audio.predictions, "visual": visual.predictions},
        sources={"audio": str(audio.run_dir), "visual": str(visual.run_dir)}, on_missing=on_missing,
    )
    if len(dropped):
        log.warning("%d clip rows predicted by one expert only were left out (listed in dropped_clips.csv)",
                    len(dropped))
    outcome = fuse_master(master, strategies=strategies, calibrate=calibrate, cv_folds=cv_folds,
                          grid_step=grid_step, seed=seed)
    table = results_table(outcome, n_bootstrap=n_bootstrap, seed=seed)

    split = str(audio.info["split"])
    name = name or _slug(f"{split}_{audio.info.get('backbone')}+{visual.info.get('backbone')}")
    run_dir = runs.new_run_dir(outputs, STAGE, name, dataclasses.replace(config, name=name))
    write_csv(run_dir / "master.csv", master, float_format="%.6f")
    write_csv(run_dir / "dropped_clips.csv", dropped)
    write_csv(run_dir / "selection.csv", outcome.selection, float_format="%.6f")
    # A re-run with fewer strategies must not leave the old ones' files looking current.
    for stale in sorted((run_dir / "strategies").glob("*.csv")):
        if stale.stem.rsplit("_", 1)[0] not in outcome.strategies:
            stale.unlink()
    for strategy in outcome.strategies:
        frame = outcome.predictions[strategy]
        for subset in ("val", "test"):
            part = frame[frame["subset"] == subset].reset_index(drop=True)
            write_predictions(run_dir / "strategies" / f"{strategy}_{subset}.csv", part)
    write_csv(run_dir / "fusion_results.csv", table, float_format="%.6f")
    write_text(run_dir / "fusion_results.md",
               results_markdown(table, title=f"Fusion of audio and visual experts — {protocol} ({split})"))
    info = {
        "modality": FUSED_MODALITY, "protocol": protocol, "split": split,
        "backbone": f"fusion:{outcome.chosen}", "strategy": outcome.chosen,
        "params": outcome.params[outcome.chosen], "temperatures": outcome.temperatures,
        "calibrate": calibrate, "best_single": outcome.best_single, "n_dropped_clip_rows": len(dropped),
        "experts": {"audio": _expert_record(audio, outputs), "visual": _expert_record(visual, outputs)},
    }
    save_run_outputs(run_dir, outcome.predictions[outcome.chosen], info=info)
    rule = rule_from_outcome(outcome, fold_index=_deployed_fold(outcome, audio, visual), protocol=protocol,
                             split=split, source=Path(os.path.relpath(run_dir, outputs)).as_posix())
    save_fusion_rule(rule, run_dir / "fusion_rule.json")
    if checkpoints:
        export_rule(rule, checkpoints)
    runs.point_latest(outputs, STAGE, protocol, run_dir)
    log.info("fusion run %s: chose %s (%s)", run_dir, outcome.chosen, info["params"])
    return run_dir
