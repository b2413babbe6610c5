"""Per-prediction contributions of each input column, in the model's margin (log-odds) units.

* LightGBM: exact TreeSHAP from LightGBM itself (``pred_contrib=True``); a row's contributions
  plus the expected value add up to its raw margin.
* Logistic regression: coefficient x (prepared value - its mean over the background rows, the
  training rows in ``rudi run``); contributions plus the mean decision function add up to the
  row's decision function. ``rudi run`` keeps that mean on the fitted model
  (:func:`remember_reference`), so the service explains one row exactly as the run did.

* Ensembles (:class:`rudikit.models.ensemble.AveragedMembers`): each member explained as
  above on its own columns, then combined (:func:`ensemble_weights`). The contributions add up
  to the weighted mean of the members' margins, not to the ensemble's own score: for
  ``probability_average`` the score is the mean of the members' probabilities, which ranks
  rows nearly as the mean margin does; for ``rank_average`` each member's percentile rises
  with its margin; for ``stack`` the meta-model's weight on each member's score sets its
  share. They say which inputs moved the members, in log-odds, as a reviewer reads any reason.

All are computed in the model's own encoded space and summed back to the input columns a
person can read (a one-hot category, a missing-value indicator, the parts of a datetime all
return to their column), so a reason names ``priors_count``, never ``numeric__x7``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from rudikit.features.encoding import TabularEncoder
from rudikit.models.ensemble import AveragedMembers


class ExplainError(ValueError):
    pass


@dataclass(frozen=True)
class Explanation:
    """``contributions``: rows x input columns; ``base``: the value every row starts from
    (expected margin, or mean decision function); ``values``: the rows' raw input values."""

    method: str  # "shap", "coefficient" or "ensemble:<members' methods>", as stored
    contributions: pd.DataFrame
    base: float
    values: pd.DataFrame

    @property
    def margin(self) -> np.ndarray:
        """The model output the contributions explain (log-odds)."""
        return self.base + self.contributions.to_numpy().sum(axis=1)


def _steps(pipeline: Pipeline) -> tuple[TabularEncoder, Any]:
    steps = getattr(pipeline, "named_steps", {})
    if not isinstance(steps.get("encode"), TabularEncoder) or "model" not in steps:
        raise ExplainError("expected a rudikit pipeline (encode -> model)")
    return steps["encode"], steps["model"]


def _logistic(model: Any) -> tuple[ColumnTransformer, LogisticRegression] | None:
    steps = getattr(model, "named_steps", {})
    prepare, classifier = steps.get("prepare"), steps.get("classifier")
    if isinstance(prepare, ColumnTransformer) and isinstance(classifier, LogisticRegression):
        return prepare, classifier
    return None


#: Attribute of a fitted LogisticRegression holding its reference point (mean prepared row).
REFERENCE = "rudikit_reference_"


def remember_reference(pipeline: Pipeline, X_train: pd.DataFrame) -> None:
    """Store a logistic regression's mean prepared training row on the model itself: a single
    row (one API request) has no background of its own to centre on. Other models are left
    as they are (their explanations need no reference)."""
    encoder, model = _steps(pipeline)
    if (parts := _logistic(model)) is not None:
        prepare, classifier = parts
        setattr(classifier, REFERENCE, mean_prepared_row(prepare, encoder, X_train))


#: Rows prepared (one-hot) at a time: a logistic regression's prepared rows are dense over
#: every category (0.8 GB more at a million-row run when the rows were prepared at once).
CHUNK = 20_000


def mean_prepared_row(prepare: ColumnTransformer, encoder: TabularEncoder, X: pd.DataFrame,
                      chunk: int = CHUNK) -> np.ndarray:
    """The mean of ``X``'s prepared (one-hot, scaled) rows, prepared ``chunk`` rows at a time:
    the whole dense matrix is rows x every category (it added 0.54 GB at 200k training rows
    with the location cells)."""
    if not len(X):
        raise ExplainError("no training rows to take the reference point from")
    return _mean_row(_dense(prepare.transform(encoder.transform(X.iloc[start:start + chunk])))
                     for start in range(0, len(X), chunk)) / len(X)


def _mean_row(parts: Iterable[np.ndarray]) -> np.ndarray:
    """The column sums of the row blocks ``parts``, each block's rows added on to the running
    sum one after another, as ``sum(axis=0)`` adds a dense matrix's rows: the same to the last
    bit as the sum of the stacked blocks."""
    total = None
    for part in parts:
        total = (part.sum(axis=0) if total is None
                 else np.add.reduce(np.vstack([total[None, :], part]), axis=0))
    if total is None:
        raise ExplainError("no rows to take the mean of")
    return total


def explanation_method(pipeline: Pipeline) -> str | None:
    """"shap", "coefficient", or None when the model has no explanation method here (an
    ensemble's reasons come from :func:`explain`, stored by runs and lists; the service does
    not explain one answer of an ensemble)."""
    _, model = _steps(pipeline)
    if isinstance(model, LGBMClassifier):
        return "shap"
    return "coefficient" if _logistic(model) is not None else None


def _to_inputs(encoder: TabularEncoder) -> tuple[sparse.csr_matrix, list[str]]:
    """(encoded columns x input columns 0/1 matrix, input column names). Sparse: every encoded
    column has one input column, so summing contributions back costs rows x columns, where a
    dense matrix would cost rows x columns x columns (minutes on a 2,000-column source)."""
    positions = encoder.output_positions()
    names = list(positions)
    encoded = [p for name in names for p in positions[name]]
    inputs = [j for j, name in enumerate(names) for _ in positions[name]]
    matrix = sparse.csr_matrix((np.ones(len(encoded)), (encoded, inputs)),
                               shape=(encoder.n_features_out_, len(names)))
    return matrix, names


def _prepared_sources(prepare: ColumnTransformer, n_prepared: int) -> np.ndarray:
    """For each column ``prepare`` outputs, the encoded column it was made from. Every
    transformer here works column by column, and names its outputs after their input
    (``3_1.0`` for a category, ``missingindicator_5`` for an indicator)."""
    source = np.full(n_prepared, -1)
    for name, transformer, columns in prepare.transformers_:
        if name == "remainder" or not len(columns):
            continue
        outputs = transformer.get_feature_names_out([str(c) for c in columns])
        where = prepare.output_indices_[name]
        source[where] = [int(o.removeprefix("missingindicator_").split("_")[0])
                         for o in outputs]
    if (source < 0).any():
        raise ExplainError("some prepared columns could not be traced to an input column")
    return source


def _dense(matrix: Any) -> np.ndarray:
    return matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix, dtype=float)


def _margin_contributions(model: Any, encoded: np.ndarray, to_inputs: sparse.csr_matrix,
                          background: np.ndarray | None) -> tuple[np.ndarray, float, str]:
    """(rows x input columns contributions, base, method) of one LightGBM or logistic model
    reading ``encoded``; ``to_inputs`` maps its encoded columns to the input columns."""
    if isinstance(model, LGBMClassifier):
        raw = np.asarray(model.predict(encoded, pred_contrib=True), dtype=float)
        return np.asarray(raw[:, :-1] @ to_inputs), float(raw[0, -1]), "shap"
    if (parts := _logistic(model)) is not None:
        prepare, classifier = parts

        def prepared(rows: np.ndarray) -> Iterator[np.ndarray]:
            # chunks of rows: each row's contributions are its own, so they are the same
            # to the last bit as from the whole dense matrix at once, which costs far more
            for start in range(0, len(rows), CHUNK):
                yield _dense(prepare.transform(rows[start:start + CHUNK]))

        if background is not None:
            mean = _mean_row(prepared(background)) / len(background)
        else:
            mean = getattr(classifier, REFERENCE, None)
            mean = _mean_row(prepared(encoded)) / len(encoded) if mean is None else mean
        weights = classifier.coef_[0]
        by_input = to_inputs[_prepared_sources(prepare, len(weights))]
        contributions = np.empty((len(encoded), to_inputs.shape[1]))
        for start, part in zip(range(0, len(encoded), CHUNK), prepared(encoded), strict=True):
            contributions[start:start + len(part)] = ((part - mean) * weights) @ by_input
        return (contributions, float(classifier.intercept_[0] + mean @ weights),
                "coefficient")
    raise ExplainError(f"no explanation method for {type(model).__name__}")


def ensemble_weights(model: AveragedMembers) -> np.ndarray:
    """Each member's share of an ensemble's reasons: equal for the averages; for a stack its
    meta-model coefficient over the sum of them (a member the stack leans on counts for more;
    equal when they sum to 0)."""
    n = len(model.members)
    if model.method != "stack":
        return np.full(n, 1.0 / n)
    coef = np.asarray(model.meta.coef_[0], dtype=float)
    return coef / coef.sum() if coef.sum() != 0 else np.full(n, 1.0 / n)


def explain(pipeline: Pipeline, X: pd.DataFrame, background: pd.DataFrame | None = None
            ) -> Explanation:
    """Contributions of each input column to each row's score. ``background`` (the training
    rows) sets the logistic regression's reference point; by default the one kept by
    :func:`remember_reference`, else ``X`` itself."""
    encoder, model = _steps(pipeline)
    to_inputs, names = _to_inputs(encoder)
    encoded = np.asarray(encoder.transform(X))
    reference = None if background is None else np.asarray(encoder.transform(background))
    values = encoder.readable_values(X)  # a location category as its text ("town": Leeds)
    if not isinstance(model, AveragedMembers):
        contributions, base, method = _margin_contributions(model, encoded, to_inputs,
                                                            reference)
        return Explanation(method, pd.DataFrame(contributions, columns=names), base, values)
    contributions, base, methods = np.zeros((len(X), len(names))), 0.0, set()
    for member, columns, weight in zip(model.members, model.columns, ensemble_weights(model),
                                       strict=True):
        cols = list(columns)
        part, part_base, method = _margin_contributions(
            member, encoded[:, cols], to_inputs[cols],
            None if reference is None else reference[:, cols])
        contributions += weight * part
        base += weight * part_base
        methods.add(method)
    return Explanation(f"ensemble:{'+'.join(sorted(methods))}",
                       pd.DataFrame(contributions, columns=names), base, values)


def global_importance(explanation: Explanation) -> pd.Series:
    """Mean absolute contribution per input column, largest first."""
    return explanation.contributions.abs().mean().sort_values(ascending=False)


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)[:200]


def top_reasons(explanation: Explanation, n: int = 5) -> pd.DataFrame:
    """The ``n`` largest contributions (by absolute value) of each row: ``row`` (position in
    the explained rows), ``feature``, ``contribution``, ``value`` (the row's value, as text)
    and ``rank`` (1 = largest). A column that did not move the score (contribution 0) is never
    a reason. Only the reasons' cells become Python values, a column at a time, not every
    cell of the explained rows (a Python object per cell, in the driver, at once)."""
    values = explanation.contributions.to_numpy()
    n = min(n, values.shape[1])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :n]
    rows = np.repeat(np.arange(len(values)), n)
    columns = order.ravel()
    contribution = values[rows, columns]
    keep = contribution != 0
    names = np.asarray(explanation.contributions.columns, dtype=object)
    rows, columns = rows[keep], columns[keep]
    text = np.empty(len(rows), dtype=object)
    for column in np.unique(columns):
        at = np.flatnonzero(columns == column)
        cells = explanation.values.iloc[rows[at], column].to_numpy(dtype=object)
        text[at] = [_text(v) for v in cells]
    return pd.DataFrame({
        "row": rows, "feature": names[columns],
        "contribution": contribution[keep], "value": text.tolist(),
        "rank": np.tile(np.arange(1, n + 1), len(values))[keep],
    })
