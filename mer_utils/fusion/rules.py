"""The fusion rules (probabilities in, fused probabilities out), temperature scaling, and the exported rule.
Plain numpy and scipy: the demo applies a rule without scikit-learn. The untuned rule: docs/demo.md."""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax

from mer_utils.core.atomic_io import read_json
from mer_utils.core.checkpoint_gate import CheckpointError, opening_checkpoint
from mer_utils.core.config import DictIO

log = logging.getLogger(__name__)
# Keeps log(0) finite; far below anything a float32 softmax gives a plausible class.
FLOOR = 1e-12
RULE_FORMAT = 1
UNTUNED_STRATEGY = "untuned min-max average"
_LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))
_EXPERTS = ("audio", "visual")
_STACKING_FIELDS = ("scaler_mean", "scaler_scale", "coef", "intercept", "classes")


def weighted_mean(experts: list[np.ndarray], weights) -> np.ndarray:
    """``sum_k w_k p_k`` of ``(n, c)`` probability matrices."""
    return sum(w * p for w, p in zip(weights, experts))


def log_linear(experts: list[np.ndarray], weights) -> np.ndarray:
    """``softmax(sum_k w_k log p_k)``: a weighted geometric mean, renormalised."""
    score = sum(w * np.log(np.clip(p, FLOOR, None)) for w, p in zip(weights, experts))
    return np.exp(log_softmax(score, axis=1))


# The rules that combine the experts with one weight each, by the name an exported rule carries.
WEIGHTED_RULES = {"weighted_average": weighted_mean, "log_linear": log_linear}


def max_confidence(experts: list[np.ndarray]) -> np.ndarray:
    """Per row, the probabilities of the expert whose top probability is highest."""
    stacked = np.stack(experts)  # (k, n, c)
    winner = stacked.max(axis=2).argmax(axis=0)
    return stacked[winner, np.arange(stacked.shape[1])]


def min_max_mean(experts: list[np.ndarray]) -> np.ndarray:
    """Each expert's scores rescaled per row to [0, 1] (its top class 1, its last 0), averaged and renormalised
    (min-max normalisation and the sum rule; Jain, Nandakumar & Ross 2005). An expert with no preference adds
    nothing; when no expert has one, the answer is uniform. A 0.96 from one expert does not veto the other's
    first choice, which the first expert ranks second:

    >>> min_max_mean([np.array([[0.96, 0.03, 0.01]]), np.array([[0.1, 0.6, 0.3]])]).round(3).tolist()
    [[0.413, 0.422, 0.165]]
    """
    stacked = np.stack([np.asarray(p, dtype=float) for p in experts])  # (k, n, c)
    low, span = stacked.min(axis=2, keepdims=True), np.ptp(stacked, axis=2, keepdims=True)
    total = np.divide(stacked - low, span, out=np.zeros_like(stacked), where=span > 0).sum(axis=0) / len(experts)
    sums = total.sum(axis=1, keepdims=True)
    return np.divide(total, sums, out=np.full_like(total, 1.0 / total.shape[1]), where=sums > 0)


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling (Guo et al., 2017): ``softmax(log(p) / T)``; it never changes the arg-max.

    >>> p = np.array([[0.7, 0.1, 0.1, 0.05, 0.03, 0.02]])
    >>> bool(apply_temperature(p, 2.0)[0, 0] < 0.7)
    True
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = np.log(np.clip(np.asarray(proba, dtype=float), FLOOR, None))
    return np.exp(log_softmax(logits / temperature, axis=1))


def fit_temperature(proba: np.ndarray, y_true: Sequence[str], *, labels: Sequence[str]) -> float:
    """The temperature in [0.05, 20] minimising the validation log-loss of one expert's ``(n, K)`` ``proba``."""
    proba = np.asarray(proba, dtype=float)
    y_true = np.asarray(y_true, dtype=str)
    if proba.ndim != 2 or proba.shape[1] != len(labels) or len(proba) != len(y_true):
        raise ValueError(f"fit_temperature: proba {proba.shape} does not match {len(y_true)} labels "
                         f"over {len(labels)} classes")
    if len(y_true) == 0:
        raise ValueError("fit_temperature needs at least one validation clip")
    # Imported here: the demo applies fitted temperatures and should not pay scikit-learn's import for it.
    from sklearn.metrics import log_loss

    def nll(log_t: float) -> float:
        return log_loss(y_true, apply_temperature(proba, float(np.exp(log_t))), labels=list(labels))

    result = minimize_scalar(nll, bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def apply_rule(rule: dict, experts: list[np.ndarray], labels: tuple[str, ...] = ()) -> np.ndarray:
    """Fused ``(n, K)`` from calibrated ``(n, K)`` expert probabilities (``labels``: the K classes, for stacking)."""
    kind = rule["rule"]
    if kind in WEIGHTED_RULES:
        return WEIGHTED_RULES[kind](experts, rule["weights"])
    if kind == "max_confidence":
        return max_confidence(experts)
    if kind == "min_max_mean":
        return min_max_mean(experts)
    if kind == "stacking":
        features = np.log(np.clip(np.hstack(experts), FLOOR, None))
        z = (features - np.asarray(rule["scaler_mean"])) / np.asarray(rule["scaler_scale"])
        scores = z @ np.asarray(rule["coef"]).T + np.asarray(rule["intercept"])
        # scikit-learn stores a two-class regression as one row of coefficients.
        partial = np.hstack([1 - expit(scores), expit(scores)]) if scores.shape[1] == 1 else softmax(scores, axis=1)
        full = np.zeros((len(partial), experts[0].shape[1]))
        full[:, [list(labels).index(cls) for cls in rule["classes"]]] = partial
        return full
    raise ValueError(f"unknown fusion rule {kind!r}; re-export it with a current `mer fuse`")


@dataclass(frozen=True)
class FusionRule(DictIO):
    """A late-fusion rule over the audio and visual experts: exported by ``mer fuse`` as plain JSON (it runs
    no code when loaded), or the untuned ``min_max_mean`` rule."""

    strategy: str
    rule: dict
    temperatures: dict = field(default_factory=lambda: {"audio": 1.0, "visual": 1.0})
    protocol: str = ""
    split: str = ""
    fold: int = 0
    source: str = ""
    format: int = RULE_FORMAT
    labels: tuple = ()  # the label set it was tuned on (empty: the untuned default, any label set)
    corpus: str = ""
    corpus_key: str = ""

    @property
    def description(self) -> str:
        if self.rule["rule"] == "min_max_mean":
            return (f"{self.strategy} fusion, UNTUNED: no fusion rule was tuned with these two experts together, "
                    f"so each expert's probabilities (own temperature: {self.source}) are rescaled to [0, 1] per "
                    "input and averaged; the fused numbers are shares, not calibrated probabilities")
        temps = ", ".join(f"{e} T={t:.2f}" for e, t in self.temperatures.items())
        where = f"tuned on validation of {self.split} ({self.source})" if self.split else self.source
        return ", ".join(p for p in (f"{self.strategy} fusion", f"temperatures {temps}", where) if p)

    def fuse(self, audio_probs, visual_probs) -> np.ndarray:
        """Fused probabilities; accepts one clip ``(K,)`` or a batch ``(n, K)``."""
        audio, visual = (np.atleast_2d(np.asarray(p, dtype=float)) for p in (audio_probs, visual_probs))
        k = len(self.labels) or audio.shape[1]
        if audio.shape != visual.shape or audio.shape[1] != k:
            raise ValueError(f"expected two (n, {k}) probability arrays, got {audio.shape} and {visual.shape}")
        calibrated = [apply_temperature(p, self.temperatures[e]) for e, p in zip(_EXPERTS, (audio, visual))]
        fused = apply_rule(self.rule, calibrated, tuple(self.labels))
        if self.rule["rule"] != "min_max_mean":  # its shares are normalised already
            fused = fused / fused.sum(axis=1, keepdims=True)
        return fused[0] if np.ndim(audio_probs) == 1 else fused


def rule_from_outcome(outcome, *, fold_index: int = 0, **where) -> FusionRule:
    """The chosen strategy of one fold of a :class:`~mer_utils.fusion.tuning.FusionOutcome`."""
    temps = outcome.temperatures[fold_index]
    return FusionRule(strategy=outcome.chosen, rule=outcome.fitted[fold_index][outcome.chosen].export(),
                      temperatures={e: float(temps[e]) for e in outcome.experts}, fold=int(temps["fold"]), **where)


# Used when no fusion run has been exported yet: the product rule needs no tuning.
DEFAULT_RULE = FusionRule(strategy="product", rule={"rule": "log_linear", "weights": [0.5, 0.5]},
                          source="default: no fusion run exported yet — run `mer fuse` or the FUSION notebook")


def load_fusion_rule(path: str | os.PathLike) -> FusionRule:
    """Read an exported rule; without one, fall back to :data:`DEFAULT_RULE` (and say so)."""
    path = Path(path)
    if not path.exists():
        log.warning("%s not found; fusing with the untuned product rule. Run `mer fuse` (or the FUSION "
                    "notebook) to export the rule chosen on validation.", path)
        return DEFAULT_RULE
    fix = "re-export it with `mer fuse` (or the FUSION notebook), or delete it to fuse with the untuned product rule"
    with opening_checkpoint(path, kind="fusion rule", fix=fix):
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != RULE_FORMAT or "rule" not in data:
            raise CheckpointError(f"{path}: not a fusion rule of format {RULE_FORMAT}; it was not used. Fix: {fix}.")
        if problem := rule_problem(data):
            raise CheckpointError(f"{path}: not a usable fusion rule: {problem}; it was not used. Fix: {fix}.")
        return FusionRule.from_dict(data)


def rule_problem(data: dict) -> str:
    """What makes an exported rule unusable (``""`` when nothing)."""
    rule, temps = data.get("rule") or {}, data.get("temperatures", {"audio": 1.0, "visual": 1.0})
    kind = rule.get("rule")
    if kind not in (*WEIGHTED_RULES, "max_confidence", "stacking"):
        return f"unknown rule {kind!r}"
    if kind in WEIGHTED_RULES:
        weights = rule.get("weights")
        if not isinstance(weights, list) or len(weights) != len(_EXPERTS) or not all(
                isinstance(w, (int, float)) and np.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
            return f"weights {weights!r}: expected {len(_EXPERTS)} finite non-negative numbers (audio, visual)"
    missing = [k for k in _STACKING_FIELDS if k not in rule]
    if kind == "stacking" and missing:
        return f"the stacking rule lacks {missing}"
    if not isinstance(temps, dict) or sorted(temps) != sorted(_EXPERTS) or not all(
            isinstance(t, (int, float)) and np.isfinite(t) and t > 0 for t in temps.values()):
        return f"temperatures {temps!r}: expected a positive number for each of {list(_EXPERTS)}"
    return ""


def expert_temperature(entry: dict) -> tuple[float, str]:
    """``(temperature, where from)`` of one expert's index entry: fitted on its validation predictions, else 1."""
    run_dir = entry.get("run_dir")
    path = Path(run_dir) / "predictions_val.csv" if run_dir else None
    if path is None or not path.is_file():
        why = "zero-shot, no validation predictions" if entry.get("zero_shot") else "no validation predictions here"
        return 1.0, why
    try:
        temperature, n = _fitted(str(path), path.stat().st_mtime_ns, tuple(entry.get("labels") or ()))
    except (ValueError, KeyError) as err:  # a damaged file must not stop the answer: say so and use T=1
        log.warning("could not fit a temperature on %s (%s); using 1", path, err)
        return 1.0, f"{path.name} unreadable"
    return temperature, f"fitted on its {n} validation clips"


@functools.lru_cache(maxsize=16)
def _fitted(path: str, _mtime: int, labels: tuple) -> tuple[float, int]:
    from mer_utils.core.predictions import labels_of, read_predictions
    frame = read_predictions(path)
    labels = labels or labels_of(frame)
    proba = frame[[f"p_{label}" for label in labels]].to_numpy()
    return fit_temperature(proba, frame["y_true"].to_numpy(), labels=labels), len(frame)


def untuned_rule(audio_entry: dict, visual_entry: dict) -> FusionRule:
    """The min-max rule, each expert at its own temperature, for two experts (index entries) never tuned together."""
    (t_audio, why_audio), (t_visual, why_visual) = expert_temperature(audio_entry), expert_temperature(visual_entry)
    return FusionRule(strategy=UNTUNED_STRATEGY, rule={"rule": "min_max_mean"},
                      temperatures={"audio": t_audio, "visual": t_visual},
                      source=f"audio T={t_audio:.2f} ({why_audio}); visual T={t_visual:.2f} ({why_visual})")
