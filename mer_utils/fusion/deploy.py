"""The fusion rule chosen on validation, applied to new clips (the demo).

``mer fuse`` exports the chosen strategy with everything it learned — the
experts' temperatures, the weights, or the stacking regression's
coefficients — as plain JSON: ``fusion_rule.json`` in the run folder and
``checkpoints/best_fusion.json``. Loading it runs no code and needs neither
the training data nor scikit-learn objects.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import expit, softmax

from mer_utils.core.atomic_io import read_json, write_json
from mer_utils.core.checkpoint_gate import CheckpointError, opening_checkpoint
from mer_utils.fusion.calibration import apply_temperature
from mer_utils.fusion.rules import FLOOR, WEIGHTED_RULES, max_confidence

log = logging.getLogger(__name__)
RULE_FORMAT = 1


def apply_rule(rule: dict, experts: list[np.ndarray], labels: tuple[str, ...] = ()) -> np.ndarray:
    """Fused ``(n, K)`` probabilities from calibrated ``(n, K)`` expert probabilities (``labels``: the K
    classes, needed by the stacking rule to place its classes)."""
    kind = rule["rule"]
    if kind in WEIGHTED_RULES:
        return WEIGHTED_RULES[kind](experts, rule["weights"])
    if kind == "max_confidence":
        return max_confidence(experts)
    if kind == "stacking":
        features = np.log(np.clip(np.hstack(experts), FLOOR, None))
        z = (features - np.asarray(rule["scaler_mean"])) / np.asarray(rule["scaler_scale"])
        scores = z @ np.asarray(rule["coef"]).T + np.asarray(rule["intercept"])
        # scikit-learn stores a two-class regression as one row of coefficients.
        partial = np.hstack([1 - expit(scores), expit(scores)]) if scores.shape[1] == 1 else softmax(scores, axis=1)
        full = np.zeros((len(partial), experts[0].shape[1]))
        for j, cls in enumerate(rule["classes"]):
            full[:, list(labels).index(cls)] = partial[:, j]
        return full
    raise ValueError(f"unknown fusion rule {kind!r}; re-export it with a current `mer fuse`")


@dataclass(frozen=True)
class FusionRule:
    """A fitted late-fusion rule over the audio and visual experts."""

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
        temps = ", ".join(f"{e} T={t:.2f}" for e, t in self.temperatures.items())
        where = f"tuned on validation of {self.split} ({self.source})" if self.split else self.source
        return ", ".join(p for p in (f"{self.strategy} fusion", f"temperatures {temps}", where) if p)

    def fuse(self, audio_probs, visual_probs) -> np.ndarray:
        """Fused probabilities; accepts one clip ``(K,)`` or a batch ``(n, K)``."""
        audio, visual = (np.atleast_2d(np.asarray(p, dtype=float)) for p in (audio_probs, visual_probs))
        k = len(self.labels) or audio.shape[1]
        if audio.shape != visual.shape or audio.shape[1] != k:
            raise ValueError(f"expected two (n, {k}) probability arrays, got {audio.shape} and {visual.shape}")
        calibrated = [apply_temperature(audio, self.temperatures["audio"]),
                      apply_temperature(visual, self.temperatures["visual"])]
        fused = apply_rule(self.rule, calibrated, tuple(self.labels))
        fused = fused / fused.sum(axis=1, keepdims=True)
        return fused[0] if np.ndim(audio_probs) == 1 else fused


def rule_from_outcome(outcome, *, fold_index: int = 0, **where) -> FusionRule:
    """The chosen strategy of one fold of a :class:`~mer_utils.fusion.tuning.FusionOutcome`."""
    temps = outcome.temperatures[fold_index]
    return FusionRule(strategy=outcome.chosen, rule=outcome.fitted[fold_index][outcome.chosen].export(),
                      temperatures={e: float(temps[e]) for e in outcome.experts},
                      fold=int(temps["fold"]), **where)


def save_fusion_rule(rule: FusionRule, path: str | os.PathLike) -> Path:
    write_json(path, asdict(rule))
    return Path(path)


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
        problem = rule_problem(data)
        if problem:
            raise CheckpointError(f"{path}: not a usable fusion rule: {problem}; it was not used. Fix: {fix}.")
        return FusionRule(**{**data, "labels": tuple(data.get("labels", ()))})


_EXPERTS = ("audio", "visual")
_STACKING_FIELDS = ("scaler_mean", "scaler_scale", "coef", "intercept", "classes")


def rule_problem(data: dict) -> str:
    """What makes an exported rule unusable (``""`` when nothing): weights and temperatures must
    cover both experts with finite numbers, a stacking rule must carry its fitted arrays."""
    rule, temps = data.get("rule") or {}, data.get("temperatures", {"audio": 1.0, "visual": 1.0})
    kind = rule.get("rule")
    if kind not in (*WEIGHTED_RULES, "max_confidence", "stacking"):
        return f"unknown rule {kind!r}"
    if kind in WEIGHTED_RULES:
        weights = rule.get("weights")
        if not isinstance(weights, list) or len(weights) != len(_EXPERTS) or not all(
                isinstance(w, (int, float)) and np.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
            return f"weights {weights!r}: expected {len(_EXPERTS)} finite non-negative numbers (audio, visual)"
    if kind == "stacking":
        missing = [k for k in _STACKING_FIELDS if k not in rule]
        if missing:
            return f"the stacking rule lacks {missing}"
    if not isinstance(temps, dict) or sorted(temps) != sorted(_EXPERTS) or not all(
            isinstance(t, (int, float)) and np.isfinite(t) and t > 0 for t in temps.values()):
        return f"temperatures {temps!r}: expected a positive number for each of {list(_EXPERTS)}"
    return ""
