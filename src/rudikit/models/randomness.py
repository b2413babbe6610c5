"""Which sources of randomness a model has: what its random seed can change.

A model without any (a logistic regression with a deterministic solver, LightGBM without
bagging or feature sampling, a single-feature baseline) gives every seed the same list, so a
Jaccard of 1 between two seeds says nothing about how stable its list is. The report states
the sources so a reader knows whether the seed comparison measured anything.

Read from the estimator's parameters, defaults included (a random forest bootstraps unless
told not to). No library answers this question, hence the rules below; the tests check each
against two fits with different seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.pipeline import Pipeline

#: LightGBM's parameters that scikit-learn-style names alias (``subsample`` is
#: ``bagging_fraction``): LightGBM uses the main name when given, else an alias.
_LIGHTGBM_SKLEARN = {"bagging_fraction": "subsample", "bagging_freq": "subsample_freq",
                     "feature_fraction": "colsample_bytree", "boosting": "boosting_type"}


def final_estimator(model: Any) -> Any:
    """The estimator at the end of (nested) pipelines."""
    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def _lightgbm_value(params: Mapping[str, Any], main: str, default: Any) -> Any:
    """The value LightGBM uses for ``main``: the main name when set, else a LightGBM alias,
    else the scikit-learn-style argument (always present, so checked last)."""
    from lightgbm.basic import _ConfigAliases

    sklearn_name = _LIGHTGBM_SKLEARN.get(main)
    for name in [main, *sorted(_ConfigAliases.get(main) - {main, sklearn_name}), sklearn_name]:
        if name is not None and params.get(name) is not None:
            return params[name]
    return default


def _lightgbm(params: Mapping[str, Any]) -> list[str]:
    out = []
    freq = int(_lightgbm_value(params, "bagging_freq", 0))
    boosting = str(_lightgbm_value(params, "boosting", "gbdt"))
    if freq > 0 or boosting == "rf":
        for name, rows in (("bagging_fraction", "rows"), ("pos_bagging_fraction",
                                                          "positive rows"),
                           ("neg_bagging_fraction", "negative rows")):
            value = float(_lightgbm_value(params, name, 1.0))
            if value < 1:
                out.append(f"row bagging: each tree sees a random {value:g} of the {rows} "
                           f"({name}={value:g}, bagging_freq={freq})")
    for name, where in (("feature_fraction", "each tree"), ("feature_fraction_bynode",
                                                             "each split")):
        value = float(_lightgbm_value(params, name, 1.0))
        if value < 1:
            out.append(f"feature sampling: {where} sees a random {value:g} of the features "
                       f"({name}={value:g})")
    if _lightgbm_value(params, "extra_trees", False):
        out.append("extremely randomised trees: random split thresholds (extra_trees)")
    if boosting == "goss" or _lightgbm_value(params, "data_sample_strategy", "bagging") == "goss":
        out.append("gradient-based one-side sampling draws rows at random (goss)")
    if boosting == "dart":
        out.append("dart drops random trees at each iteration (boosting=dart)")
    return out


def _forest(params: Mapping[str, Any], extra_trees: bool) -> list[str]:
    out = []
    if extra_trees:
        out.append("extremely randomised trees: random split thresholds")
    if params.get("bootstrap"):
        share = params.get("max_samples")
        out.append("bootstrap sample of the rows for each tree"
                   + (f" (max_samples={share})" if share is not None else ""))
    features = params.get("max_features")
    if features is not None and not (isinstance(features, float) and features >= 1.0):
        out.append(f"random features considered at each split (max_features={features})")
    # scikit-learn shuffles the features at every split, so equally good splits (common in
    # small nodes) are chosen at random even with every row and every feature
    return out or ["ties between equally good splits are broken at random"]


def randomness_sources(model: Any) -> list[str]:
    """What the random seed changes in ``model`` (an estimator or pipeline, fitted or not), in
    words; empty when two seeds give the same model."""
    from lightgbm import LGBMModel
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    estimator = final_estimator(model)
    params = estimator.get_params(deep=False)
    if isinstance(estimator, LGBMModel):
        return _lightgbm(params)
    if isinstance(estimator, RandomForestClassifier | ExtraTreesClassifier):
        return _forest(params, isinstance(estimator, ExtraTreesClassifier))
    if isinstance(estimator, LogisticRegression):
        solver = params.get("solver")
        if solver in ("sag", "saga", "liblinear"):
            return [f"the {solver} solver visits the rows in a random order"]
        return []
    if "random_state" in params:  # an estimator these rules do not know: assume the worst
        return [f"{type(estimator).__name__} takes a random_state (its use is not known here)"]
    return []
