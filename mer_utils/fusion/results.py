"""The fusion results table: every strategy beside the single experts. The bootstrap interval and McNemar's test
pool the test clips of all folds, against the best single expert *on validation* (chosen without test)."""

from __future__ import annotations

import pandas as pd

from mer_utils.core.evaluation import score_predictions
from mer_utils.core.predictions import labels_of
from mer_utils.core.metrics import SCORE_KEYS, SCORE_NAMES
from mer_utils.fusion.significance import bootstrap_ci, mcnemar_test
from mer_utils.fusion.tuning import FusionOutcome
from mer_utils.core.formatting import markdown_table, p_value, percent, percent_mean_std


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
            display[f"{subset} {name}"] = [
                percent_mean_std(m, s, n) for m, s, n in
                zip(table[f"{subset}_{key}_mean"], table[f"{subset}_{key}_std"], table["n_folds"])
            ]
    display["test UA 95% CI"] = [f"[{percent(lo)}, {percent(hi)}]"
                                 for lo, hi in zip(table["test_ua_ci_low"], table["test_ua_ci_high"])]
    display[f"McNemar p vs {reference}"] = [p_value(p) for p in table["mcnemar_p"]]
    header = f"{title}\n\n" if title else ""
    note = (f"\nScores in %. Bold: the strategy chosen on validation. Tuning and selection used validation "
            f"only; the interval is a percentile bootstrap over the {int(table['n_test'].iloc[0])} test rows, "
            f"the p-value an exact McNemar test against {reference}, the best single expert on validation.\n")
    return header + markdown_table(display) + note
