"""The fusion rules themselves: probability matrices in, fused probabilities out.

Plain numpy (and scipy's ``log_softmax``), so that applying a tuned rule
(:mod:`mer_utils.fusion.deploy`, the demo) needs no scikit-learn; the
estimators that tune them are in :mod:`mer_utils.fusion.strategies`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

# Probabilities of exactly 0 would give -inf logits; the floor is far below
# anything a softmax in float32 produces for a plausible class.
FLOOR = 1e-12


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
    """Each expert's ``(n, c)`` scores rescaled per row to [0, 1] (its top class 1, its last 0), averaged and
    renormalised: score-level fusion for experts whose confidence scales are not comparable (min-max
    normalisation and the sum rule; Jain, Nandakumar & Ross, Pattern Recognition 38, 2005). An expert with no
    preference (all scores equal) adds nothing; when no expert has one, the answer is uniform. A 0.96 from
    one expert does not veto the other's first choice, which the first expert ranks second:

    >>> min_max_mean([np.array([[0.96, 0.03, 0.01]]), np.array([[0.1, 0.6, 0.3]])]).round(3).tolist()
    [[0.413, 0.422, 0.165]]
    """
    scaled = []
    for p in experts:
        p = np.asarray(p, dtype=float)
        low, span = p.min(axis=1, keepdims=True), np.ptp(p, axis=1, keepdims=True)
        scaled.append(np.divide(p - low, span, out=np.zeros_like(p), where=span > 0))
    total = sum(scaled) / len(scaled)
    sums = total.sum(axis=1, keepdims=True)
    return np.divide(total, sums, out=np.full_like(total, 1.0 / total.shape[1]), where=sums > 0)
