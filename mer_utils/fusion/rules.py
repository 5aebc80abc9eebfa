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


def max_confidence(experts: list[np.ndarray]) -> np.ndarray:
    """Per row, the probabilities of the expert whose top probability is highest."""
    stacked = np.stack(experts)  # (k, n, c)
    winner = stacked.max(axis=2).argmax(axis=0)
    return stacked[winner, np.arange(stacked.shape[1])]
