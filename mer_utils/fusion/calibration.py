"""Temperature scaling (Guo et al., 2017) of an expert's probabilities.

Fine-tuned networks are usually over-confident and two experts are rarely
over-confident by the same amount; averaging their raw probabilities then lets
the louder expert dominate. One temperature per expert, fitted on validation
by minimising the negative log-likelihood, puts them on a common scale. It
never changes an expert's own arg-max, hence its accuracy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from mer_utils.fusion.rules import FLOOR

_LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probabilities as ``softmax(log(p) / T)``.

    >>> p = np.array([[0.7, 0.1, 0.1, 0.05, 0.03, 0.02]])
    >>> bool(apply_temperature(p, 2.0)[0, 0] < 0.7)
    True
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = np.log(np.clip(np.asarray(proba, dtype=float), FLOOR, None))
    return np.exp(log_softmax(logits / temperature, axis=1))


def fit_temperature(
    proba: np.ndarray, y_true: Sequence[str], *, labels: Sequence[str]
) -> float:
    """The temperature in [0.05, 20] minimising validation log-loss.

    Parameters
    ----------
    proba : ``(n, len(labels))`` validation probabilities of one expert.
    y_true : validation labels (strings from ``labels``).
    """
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
