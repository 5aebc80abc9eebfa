"""Late-fusion strategies as scikit-learn classifiers, fitted on validation only; ``X`` is the experts'
probability matrices side by side, ``(n, K * n_experts)``."""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mer_utils.core.config import one_of
from mer_utils.fusion.rules import FLOOR, WEIGHTED_RULES, max_confidence
from mer_utils.fusion.significance import label_indices, vectorised_scores


def split_experts(X: np.ndarray, n_labels: int) -> list[np.ndarray]:
    """Cut ``X`` back into one ``(n, n_labels)`` probability matrix per expert."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] % n_labels or X.shape[1] < 2 * n_labels:
        raise ValueError(f"X must have shape (n, {n_labels} * n_experts) with at least two experts, got {X.shape}")
    return [X[:, i:i + n_labels] for i in range(0, X.shape[1], n_labels)]


def simplex_grid(n_experts: int, step: float) -> np.ndarray:
    """All weight vectors on a grid of ``step`` that sum to one.

    >>> simplex_grid(2, 0.5).tolist()
    [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]
    """
    ticks = int(round(1 / step))
    if ticks < 1 or not np.isclose(ticks * step, 1.0):
        raise ValueError(f"grid_step must divide 1 (e.g. 0.05, 0.1), got {step}")
    rows = [c for c in itertools.product(range(ticks + 1), repeat=n_experts - 1) if sum(c) <= ticks]
    return np.array([[*c, ticks - sum(c)] for c in rows], dtype=float) / ticks


class _FusionBase(ClassifierMixin, BaseEstimator):
    """Shared ``fit`` and ``predict``; subclasses define the rule, ``fitted_params()`` (for metrics.json) and
    ``export()`` (all :func:`~mer_utils.fusion.rules.apply_rule` needs, as JSON)."""

    def __init__(self, *, labels: tuple):
        self.labels = labels

    def fit(self, X, y):
        self._start_fit(X, y)
        return self

    def _start_fit(self, X, y) -> list[np.ndarray]:
        experts = split_experts(X, len(self.labels))
        if len(y) != len(experts[0]):
            raise ValueError(f"{type(self).__name__}.fit: X has {len(experts[0])} rows but y has {len(y)}")
        self.classes_ = np.asarray(self.labels)
        return experts

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def fitted_params(self) -> dict:
        """What was learned on validation, for metrics.json (JSON-safe)."""
        return {}


class WeightedRuleFusion(_FusionBase):
    """One weight per expert, combined by ``rule`` (of ``WEIGHTED_RULES``), chosen on validation UA on a grid
    (``search``), else equal (with ``"log_linear"``: the product rule)."""

    def __init__(self, *, labels: tuple, rule: str = "weighted_average", search: bool = True,
                 grid_step: float = 0.05):
        self.grid_step = grid_step
        self.labels = labels
        self.rule = rule
        self.search = search

    def fit(self, X, y):
        combine = WEIGHTED_RULES[one_of(self.rule, WEIGHTED_RULES, "weighted rule")]
        experts = self._start_fit(X, y)
        equal = np.full(len(experts), 1 / len(experts))
        if not self.search:
            self.weights_ = equal
            return self
        grid = simplex_grid(len(experts), self.grid_step)
        predicted = np.stack([combine(experts, w).argmax(axis=1) for w in grid])
        # All grid points scored at once (same UA as mer_utils.core.metrics.ua_score).
        y_index = label_indices(np.asarray(y, dtype=str), self.labels)
        scores = vectorised_scores(y_index[None, :], predicted, len(self.labels))["ua"]
        # Ties (frequent on a small validation set) go to the weights nearest equal weighting, the least committal.
        best = np.flatnonzero(np.isclose(scores, scores.max()))
        self.weights_ = grid[best[np.abs(grid[best] - equal).sum(axis=1).argmin()]]
        return self

    def predict_proba(self, X) -> np.ndarray:
        return WEIGHTED_RULES[self.rule](split_experts(X, len(self.labels)), self.weights_)

    def fitted_params(self) -> dict:
        return {"weights": [round(float(w), 6) for w in self.weights_]}

    def export(self) -> dict:
        return {"rule": self.rule, "weights": [float(w) for w in self.weights_]}


class MaxConfidenceFusion(_FusionBase):
    """Per clip, trust the expert whose top probability is highest (nothing to tune)."""

    def predict_proba(self, X) -> np.ndarray:
        return max_confidence(split_experts(X, len(self.labels)))

    def export(self) -> dict:
        return {"rule": "max_confidence"}


class StackingFusion(_FusionBase):
    """A multinomial logistic regression on the experts' log-probabilities (a learned log-linear pool)."""

    def __init__(self, *, labels: tuple, random_state: int = 0):
        self.labels = labels
        self.random_state = random_state

    def fit(self, X, y):
        self._start_fit(X, y)
        # Standardised: an over-confident expert's logs span tens of units, which slows L-BFGS and skews L2.
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(
            C=1.0, max_iter=2000, random_state=self.random_state))
        self.model_.fit(np.log(np.clip(X, FLOOR, None)), np.asarray(y, dtype=str))
        return self

    def predict_proba(self, X) -> np.ndarray:
        partial = self.model_.predict_proba(np.log(np.clip(np.asarray(X, dtype=float), FLOOR, None)))
        # A class absent from validation gets probability 0, keeping the label order.
        full = np.zeros((len(partial), len(self.labels)))
        full[:, [list(self.labels).index(cls) for cls in self.model_.classes_]] = partial
        return full

    def fitted_params(self) -> dict:
        return {"C": self.model_[-1].C, "n_coefficients": int(self.model_[-1].coef_.size)}

    def export(self) -> dict:
        scaler, regression = self.model_[0], self.model_[-1]
        return {"rule": "stacking", "classes": [str(c) for c in regression.classes_],
                "scaler_mean": scaler.mean_.tolist(), "scaler_scale": scaler.scale_.tolist(),
                "coef": regression.coef_.tolist(), "intercept": regression.intercept_.tolist()}


def make_strategy(name: str, *, labels: tuple, grid_step: float = 0.05, seed: int = 0) -> _FusionBase:
    """A fresh, unfitted strategy by name (one of :data:`~mer_utils.fusion.config.STRATEGY_NAMES`) over ``labels``."""
    labels = tuple(labels)
    factories = {
        "weighted_average": lambda: WeightedRuleFusion(labels=labels, rule="weighted_average", grid_step=grid_step),
        "product": lambda: WeightedRuleFusion(labels=labels, rule="log_linear", search=False),
        "log_linear": lambda: WeightedRuleFusion(labels=labels, rule="log_linear", grid_step=grid_step),
        "max_confidence": lambda: MaxConfidenceFusion(labels=labels),
        "stacking": lambda: StackingFusion(labels=labels, random_state=seed),
    }
    return factories[one_of(name, factories, "fusion strategy")]()
