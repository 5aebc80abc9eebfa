"""``mer fuse``: fuse two expert runs into a run folder of their own, with its results table (docs/fusion.md); the
bootstrap and McNemar's test pool the test clips of all folds, against the best single expert *on validation*."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import pandas as pd

from mer_utils.core import runs
from mer_utils.core.adaptation import DEFAULT_ADAPTATION, adaptation_of, pointer_key
from mer_utils.core.atomic_io import read_json, write_csv, write_json, write_text
from mer_utils.core.checkpoint_index import register_checkpoint
from mer_utils.core.evaluation import save_run_outputs, score_predictions
from mer_utils.core.formatting import markdown_table, p_value, percent, percent_mean_std
from mer_utils.core.metrics import SCORE_KEYS, SCORE_NAMES
from mer_utils.core.predictions import labels_of, write_predictions
from mer_utils.core.run_lock import releasing_run_locks
from mer_utils.fusion.config import STRATEGY_NAMES, FusionConfig
from mer_utils.fusion.join import ExpertRun, build_master_table, load_expert_run, master_labels
from mer_utils.fusion.rules import FusionRule, rule_from_outcome
from mer_utils.fusion.significance import bootstrap_ci, mcnemar_test
from mer_utils.fusion.tuning import FUSED_MODALITY, FusionOutcome, fuse_master
from mer_utils.protocols.splits import SPEAKER_INDEPENDENT, protocol_kind

log = logging.getLogger(__name__)
STAGE = "fusion"


# What makes the expert runs of a protocol, named when they are missing.
_MAKERS = {("audio", "random"): "AUDIO_03_modeling_SER_random_split_v01.ipynb",
           ("audio", "speaker"): "AUDIO_03_modeling_SER_speaker_independent_v01.ipynb",
           "audio": "the AUDIO_03 notebooks", "visual": "VISUAL_01_modeling_FER_CREMA-D_video_v01.ipynb"}


def latest_expert_runs(outputs: str | os.PathLike, protocol: str, *, corpus_key: str | None = None,
                       adapt: str = DEFAULT_ADAPTATION) -> dict[str, Path]:
    """The newest audio (scored as ``adapt`` says) and visual run folders of ``protocol`` on one corpus
    (``corpus_key``, else the newest audio run's): fusion never pairs experts of two corpora."""
    found, missing = {}, []
    for modality in ("audio", "visual"):
        try:
            key = pointer_key(protocol, adapt) if modality == "audio" else protocol  # faces: always one clip
            found[modality] = runs.resolve_latest(outputs, modality, key, corpus_key=corpus_key)
            if corpus_key is None:
                corpus_key = read_json(found[modality] / "metrics.json").get("corpus_key")
        except FileNotFoundError:
            maker = _MAKERS.get((modality, protocol), _MAKERS[modality])
            adapt_option = f" --adapt {adapt}" if modality == "audio" and adapt != DEFAULT_ADAPTATION else ""
            missing.append(f"{modality}: run {maker} with PROTOCOL = {protocol!r}, or "
                           f"`mer {modality} train --protocol {protocol}{adapt_option} --outputs {outputs}`")
    if missing:
        raise FileNotFoundError(
            f"no {' and no '.join(m.split(':')[0] for m in missing)} run of protocol {protocol!r} under "
            f"{outputs}. Make it first — " + "; ".join(missing) + " (`mer run-all` makes both).")
    return found


def _expert_record(expert: ExpertRun, outputs: Path) -> dict:
    env_path = expert.run_dir / "env.json"
    env = read_json(env_path) if env_path.exists() else {}
    return {"run_dir": Path(os.path.relpath(expert.run_dir.resolve(), outputs.resolve())).as_posix(),
            "backbone": expert.info.get("backbone"), "git_commit": env.get("git_commit")}


def _check_same_protocol(audio: ExpertRun, visual: ExpertRun) -> str:
    for key in ("corpus_key", "protocol", "split"):
        if audio.info.get(key) != visual.info.get(key):
            raise ValueError(f"the audio run {audio.run_dir} has {key} {audio.info.get(key)!r} but the visual "
                             f"run {visual.run_dir} has {visual.info.get(key)!r}; fuse runs of the same protocol "
                             "and split.")
    return str(audio.info["protocol"])


def _deployed_fold(outcome, audio: ExpertRun, visual: ExpertRun) -> int:
    """Index of the fold whose rule is exported: the one the audio (else visual) checkpoint came from."""
    folds = [t["fold"] for t in outcome.temperatures]
    chosen = (e.info.get("checkpoint_fold") for e in (audio, visual))
    return next((folds.index(fold) for fold in chosen if fold in folds), 0)


def export_rule(rule: FusionRule, checkpoints: str | os.PathLike, audio_info: dict, metrics: dict,
                run_dir: Path) -> Path:
    """Write ``best_fusion_<protocol>.json`` (under ``<corpus>/`` except for CREMA-D) and index it; a
    speaker-independent rule (or any, while it holds none) also replaces ``best_fusion.json``, the demo's."""
    checkpoints = Path(checkpoints)
    corpus_name = audio_info.get("corpus", "cremad")
    folder = checkpoints if corpus_name == "cremad" else checkpoints / runs.safe_name(corpus_name)
    path = write_json(folder / f"best_fusion_{runs.safe_name(rule.protocol)}.json", rule.to_dict())
    corpus = {"name": corpus_name, "labels": list(rule.labels), "synthetic": audio_info.get("synthetic", False)}
    summary = metrics["summary"]
    register_checkpoint(checkpoints, modality="fusion", protocol=rule.protocol, path=path, corpus=corpus,
                        corpus_key=str(audio_info.get("corpus_key", "")), split=rule.split, strategy=rule.strategy,
                        speaker_independent=SPEAKER_INDEPENDENT.get(rule.protocol, False),
                        run_dir=str(Path(run_dir).resolve()), val_ua=summary.get("val", {}).get("ua", {}).get("mean"),
                        test_ua=summary.get("test", {}).get("ua", {}).get("mean"))
    if corpus_name == "cremad":
        current = checkpoints / "best_fusion.json"
        existing = read_json(current).get("protocol", "") if current.exists() else ""
        if not (protocol_kind(existing) == "speaker" and protocol_kind(rule.protocol) != "speaker"):
            write_json(current, rule.to_dict())
    return path


def format_params(per_fold: list[dict]) -> str:
    """Tuned parameters as text, folds separated by ``|`` (repeats shown once).

    >>> format_params([{"fold": 0, "weights": [0.4, 0.6]}])
    'weights=0.4/0.6'
    """
    parts = [", ".join(f"{k}={'/'.join(f'{v:g}' for v in value) if isinstance(value, list) else value}"
                       for k, value in params.items() if k != "fold") for params in per_fold]
    # The same values in every fold (an untuned rule) are shown once.
    return " | ".join(dict.fromkeys(parts)) if any(parts) else ""


def results_table(outcome: FusionOutcome, *, n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per method with val/test scores, test CIs and McNemar vs the best single expert."""
    selection = outcome.selection.groupby("method", sort=False)["selection_ua"].mean()
    reference = outcome.predictions[outcome.best_single]
    reference_test = reference[reference["subset"] == "test"]
    rows = []
    for method in [*outcome.experts, *outcome.strategies]:
        frame = outcome.predictions[method]
        _, summary = score_predictions(frame)
        test = frame[frame["subset"] == "test"]
        row = {"method": method, "kind": "single" if method in outcome.experts else "fusion",
               "params": format_params(outcome.params.get(method, [])), "selection_ua": selection[method],
               "n_folds": summary["test"]["ua"]["n"], "n_test": len(test)}
        row.update({f"{subset}_{key}_{stat}": summary[subset][key][stat]
                    for subset in ("val", "test") for key in SCORE_KEYS for stat in ("mean", "std")})
        ci = bootstrap_ci(test["y_true"], test["y_pred"], labels=labels_of(frame), n_bootstrap=n_bootstrap, seed=seed)
        row.update({f"test_{key}_ci_{end}": value
                    for key in SCORE_KEYS for end, value in zip(("low", "high"), ci[key])})
        if method == outcome.best_single:
            row.update(mcnemar_method_only=pd.NA, mcnemar_reference_only=pd.NA, mcnemar_p=float("nan"))
        else:
            # Every method's frame is built from the same master rows, in the same order.
            if not (test["clip_id"].to_numpy() == reference_test["clip_id"].to_numpy()).all():
                raise ValueError(f"{method} and {outcome.best_single} test rows are not aligned")
            paired = mcnemar_test(test["y_true"], test["y_pred"], reference_test["y_pred"])
            row.update(mcnemar_method_only=paired["a_only"], mcnemar_reference_only=paired["b_only"],
                       mcnemar_p=paired["p_value"])
        rows.append({**row, "chosen": method == outcome.chosen, "best_single": method == outcome.best_single})
    return pd.DataFrame(rows)


def results_markdown(table: pd.DataFrame, *, title: str = "") -> str:
    """Percent scores, test UA with its interval, McNemar p against the best single expert."""
    reference = table.loc[table["best_single"], "method"].iloc[0]
    display = pd.DataFrame({
        "method": [f"**{m}**" if chosen else m for m, chosen in zip(table["method"], table["chosen"])],
        "tuned on val": table["params"],
        "val UA (selection)": [percent(v) for v in table["selection_ua"]],
    })
    for subset in ("val", "test"):
        for key, name in SCORE_NAMES.items():
            display[f"{subset} {name}"] = [percent_mean_std(m, s, n) for m, s, n in zip(
                table[f"{subset}_{key}_mean"], table[f"{subset}_{key}_std"], table["n_folds"])]
    display["test UA 95% CI"] = [f"[{percent(lo)}, {percent(hi)}]"
                                 for lo, hi in zip(table["test_ua_ci_low"], table["test_ua_ci_high"])]
    display[f"McNemar p vs {reference}"] = [p_value(p) for p in table["mcnemar_p"]]
    header = f"{title}\n\n" if title else ""
    note = (f"\nScores in %. Bold: the strategy chosen on validation. Tuning and selection used validation "
            f"only; the interval is a percentile bootstrap over the {int(table['n_test'].iloc[0])} test rows, "
            f"the p-value an exact McNemar test against {reference}, the best single expert on validation.\n")
    return header + markdown_table(display) + note


@releasing_run_locks
def fuse_runs(audio_run_dir: str | os.PathLike, visual_run_dir: str | os.PathLike, *,
              outputs: str | os.PathLike = "outputs", strategies=STRATEGY_NAMES, calibrate: bool = True,
              n_bootstrap: int = 1000, cv_folds: int = 5, grid_step: float = 0.05, seed: int = 0,
              on_missing: str = "raise", name: str = "",
              checkpoints: str | os.PathLike | None = "checkpoints") -> Path:
    """Fuse an audio and a visual expert run; return the new fusion run folder (its files: docs/fusion.md)."""
    config = FusionConfig(audio_run=str(audio_run_dir), visual_run=str(visual_run_dir), outputs=str(outputs),
                          strategies=tuple(strategies), calibrate=calibrate, n_bootstrap=n_bootstrap,
                          cv_folds=cv_folds, grid_step=grid_step, seed=seed, on_missing=on_missing,
                          checkpoints=str(checkpoints or ""))
    outputs = Path(outputs)
    audio = load_expert_run(audio_run_dir, modality="audio")
    visual = load_expert_run(visual_run_dir, modality="visual")
    protocol = _check_same_protocol(audio, visual)
    master, dropped = build_master_table({"audio": audio.predictions, "visual": visual.predictions},
                                         sources={"audio": str(audio.run_dir), "visual": str(visual.run_dir)},
                                         on_missing=on_missing)
    if len(dropped):
        log.warning("%d clip rows predicted by one expert only were left out (listed in dropped_clips.csv)",
                    len(dropped))
    outcome = fuse_master(master, strategies=strategies, calibrate=calibrate, cv_folds=cv_folds,
                          grid_step=grid_step, seed=seed)
    table = results_table(outcome, n_bootstrap=n_bootstrap, seed=seed)

    split = str(audio.info["split"])
    adaptation = adaptation_of(audio.info)  # the face expert scores each clip alone
    suffix = "" if adaptation == DEFAULT_ADAPTATION else f"_adapt-{adaptation}"
    default_name = f"{split}_{audio.info.get('backbone')}+{visual.info.get('backbone')}{suffix}"
    config.name = name or re.sub(r"[^A-Za-z0-9._+-]+", "-", default_name).strip("-")
    # Addressed by the two expert runs it fuses and the fusion settings: another pair never lands here.
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("outputs", "checkpoints")}
    settings.update(audio_run=str(audio.run_dir.resolve()), visual_run=str(visual.run_dir.resolve()))
    run_dir = runs.new_run_dir(outputs, STAGE, config.name, config, corpus_key=audio.info.get("corpus_key"),
                               settings=settings)
    write_csv(run_dir / "master.csv", master, float_format="%.6f")
    write_csv(run_dir / "dropped_clips.csv", dropped)
    write_csv(run_dir / "selection.csv", outcome.selection, float_format="%.6f")
    # A re-run with fewer strategies must not leave the old ones' files looking current.
    for stale in sorted((run_dir / "strategies").glob("*.csv")):
        if stale.stem.rsplit("_", 1)[0] not in outcome.strategies:
            stale.unlink()
    for strategy in outcome.strategies:
        for subset, part in outcome.predictions[strategy].groupby("subset"):
            write_predictions(run_dir / "strategies" / f"{strategy}_{subset}.csv", part)
    write_csv(run_dir / "fusion_results.csv", table, float_format="%.6f")
    write_text(run_dir / "fusion_results.md",
               results_markdown(table, title=f"Fusion of audio and visual experts — {protocol} ({split})"))
    info = {
        "modality": FUSED_MODALITY, "protocol": protocol, "split": split, "adaptation": adaptation,
        "backbone": f"fusion:{outcome.chosen}", "strategy": outcome.chosen, "calibrate": calibrate,
        "params": outcome.params[outcome.chosen], "temperatures": outcome.temperatures,
        "best_single": outcome.best_single, "n_dropped_clip_rows": len(dropped),
        "experts": {"audio": _expert_record(audio, outputs), "visual": _expert_record(visual, outputs)},
        **{k: audio.info[k] for k in ("corpus", "corpus_key", "synthetic") if k in audio.info},
    }
    metrics = save_run_outputs(run_dir, outcome.predictions[outcome.chosen], info=info)
    rule = rule_from_outcome(outcome, fold_index=_deployed_fold(outcome, audio, visual), protocol=protocol,
                             split=split, source=Path(os.path.relpath(run_dir, outputs)).as_posix(),
                             labels=tuple(master_labels(master)), corpus=str(audio.info.get("corpus", "")),
                             corpus_key=str(audio.info.get("corpus_key", "")))
    write_json(run_dir / "fusion_rule.json", rule.to_dict())
    if checkpoints and adaptation == DEFAULT_ADAPTATION:
        # The demo scores one clip alone: a rule tuned on adapted speech scores would not fit its answers.
        export_rule(rule, checkpoints, audio.info, metrics, run_dir)
    runs.point_latest(outputs, STAGE, pointer_key(protocol, adaptation), run_dir,
                      corpus_key=audio.info.get("corpus_key"))
    log.info("fusion run %s: chose %s (%s)", run_dir, outcome.chosen, info["params"])
    return run_dir
