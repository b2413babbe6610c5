"""Confusion-matrix metrics per group, for protected attributes and their intersections.

Everything is computed from integer group codes (:mod:`rudikit.fairness.groups`) and
``np.bincount`` of the four confusion cells (:mod:`rudikit.fairness.counts`), not from a pandas
groupby per metric. Usually one bincount over the joint cells of all attribute columns serves
every attribute and intersection (the others are summed out), and one histogram of (cell, score
value, label) gives every ROC AUC (:mod:`rudikit.fairness.auc`): an audit of a million rows over
hundreds of intersectional cells takes well under a second.

Conventions
-----------
* A row is predicted positive when ``score >= threshold``, when it is in the top-k list, or when
  its already-binary prediction is 1 (:mod:`rudikit.fairness.selection`). Rows tied at the
  k-th score count by their expected share of the list by default, so counts may be fractional.
* Groups are labelled by the one convention of :mod:`rudikit.fairness.groups` (missing values
  ``"(missing)"``, intersections ``"race:sex"`` / ``"African-American:Male"``).
* Only observed groups appear (an intersection nobody falls into has no row).
* Undefined ratios (0/0) are NaN, never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from rudikit.fairness.auc import ScoreIndex, auc_from_histogram
from rudikit.fairness.counts import COUNT_COLUMNS, RATE_METRICS, metrics_from_counts
from rudikit.fairness.groups import (
    DENSE_CELLS_LIMIT,
    MISSING_GROUP,
    AttributeSpec,
    as_frame,
    attribute_columns,
    attribute_name,
    compact,
    labels_for,
    raw_codes,
)
from rudikit.fairness.inputs import validate_fairness_inputs
from rudikit.fairness.selection import TieBreak, binarize


def group_metrics(
    y_true: object,
    y_pred: object | None = None,
    *,
    y_score: object | None = None,
    sensitive_features: object,
    attributes: Sequence[AttributeSpec] | None = None,
    threshold: float | None = None,
    top_k: int | None = None,
    top_pct: float | None = None,
    tie_break: TieBreak = "expected",
    random_state: int | None = 0,
    roc_auc: bool = True,
    missing_label: str = MISSING_GROUP,
) -> pd.DataFrame:
    """One row per (attribute, group) with counts and all rate metrics.

    Give either binary predictions ``y_pred``, or scores ``y_score`` with exactly one of
    ``threshold``, ``top_k`` or ``top_pct`` (see :func:`binarize`). ``y_score`` alone with
    ``y_pred`` is used only for the ROC AUC. Without scores the AUC is that of the binary
    predictions, ``(tpr + tnr) / 2``, as scikit-learn would compute it.

    ``attributes`` lists column names of ``sensitive_features``; a list of names is an
    intersection (``["station", "race", "sex"]``). Default: every column on its own.

    Columns: ``attribute, group`` then :data:`COUNT_COLUMNS` then :data:`RATE_METRICS`.
    """
    inputs = validate_fairness_inputs(y_true, y_pred, y_score)
    y, scores = inputs.y_true, inputs.y_score
    assert y is not None
    n = len(y)
    selection = [v is not None for v in (threshold, top_k, top_pct)]
    if y_pred is not None:
        if any(selection):
            raise ValueError(
                "give either y_pred or a selection rule (threshold/top_k/top_pct), not both"
            )
        pred = inputs.y_pred
    else:
        if scores is None:
            raise ValueError("give y_pred, or y_score with threshold, top_k or top_pct")
        if not any(selection):
            raise ValueError("y_score needs one of threshold, top_k or top_pct to make predictions")
        pred = binarize(
            scores,
            threshold=threshold,
            top_k=top_k,
            top_pct=top_pct,
            tie_break=tie_break,
            random_state=random_state,
        )
    frame = as_frame(sensitive_features, n)
    specs = list(frame.columns) if attributes is None else list(attributes)
    if not specs:
        raise ValueError("attributes is empty; name at least one attribute column")
    return group_table(y, pred, scores, frame, specs, roc_auc=roc_auc, missing_label=missing_label)


def cell_counts(key: np.ndarray, pred: np.ndarray, size: int,
                cases: np.ndarray | None = None) -> np.ndarray:
    """Confusion cells (size, 4) from ``key = 4 * code + 2 * y``: one ``bincount``, weighted
    when ``pred`` holds fractional (expected) predictions. ``cases``: how many cases each row
    stands for (rows counted by the database), with 0/1 predictions."""
    if cases is not None:
        if not np.issubdtype(pred.dtype, np.integer):
            raise ValueError("rows standing for several cases need 0/1 predictions")
        return np.bincount(key + pred, weights=cases, minlength=4 * size).astype(
            np.int64).reshape(size, 4)
    if np.issubdtype(pred.dtype, np.integer):
        return np.bincount(key + pred, minlength=4 * size).reshape(size, 4)
    hit = np.bincount(key + 1, weights=pred, minlength=4 * size)
    miss = np.bincount(key, weights=1.0 - pred, minlength=4 * size)
    return (hit + miss).reshape(size, 4)


def _marginal(table: np.ndarray, keep: list[int], n_lead: int) -> np.ndarray:
    """Sum a table over the leading axes not in ``keep``, put the kept ones in ``keep`` order
    and flatten them: (product of kept sizes, *trailing axes)."""
    drop = tuple(i for i in range(n_lead) if i not in keep)
    t = table.sum(axis=drop) if drop else table
    remaining = [i for i in range(n_lead) if i in keep]
    t = t.transpose([remaining.index(k) for k in keep] + list(range(len(keep), t.ndim)))
    return t.reshape(-1, *t.shape[len(keep):])


def group_table(
    y: np.ndarray,
    pred: np.ndarray,
    scores: np.ndarray | None,
    frame: pd.DataFrame,
    specs: Sequence[AttributeSpec],
    *,
    roc_auc: bool,
    missing_label: str,
) -> pd.DataFrame:
    """Group table from validated arrays (shared by :func:`group_metrics` and the audit).

    When all attribute columns together have few value combinations (the usual case), one
    ``bincount`` over their joint cells gives the confusion counts of every attribute and
    intersection by summing out the other columns; likewise one histogram of (cell, score value,
    label) gives every ROC AUC. Otherwise each attribute gets its own bincount.
    """
    n = len(y)
    cache: dict[str, tuple[np.ndarray, list[str]]] = {}
    spec_cols = [attribute_columns(spec) for spec in specs]
    for cols in spec_cols:
        if len(set(cols)) != len(cols):
            raise ValueError(f"attribute {cols} names a column more than once")
    names = [attribute_name(spec) for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"attributes {names} list the same attribute more than once")
    all_cols = list(dict.fromkeys(c for cols in spec_cols for c in cols))
    for col in all_cols:
        raw_codes(frame, [col], missing_label, cache)  # validates and factorizes once
    sizes = [len(cache[c][1]) for c in all_cols]
    joint_size = float(np.prod(sizes, dtype=np.float64))
    cell = 2 * y.astype(np.int64)
    pp_total = float(pred.sum())
    index = None
    if roc_auc and n:
        index = ScoreIndex(y, scores if scores is not None else pred.astype(np.float64))

    joint_counts = joint_hist = None
    if 4 * joint_size <= max(n, 1 << 18):
        joint, _ = raw_codes(frame, all_cols, missing_label, cache)
        key = joint.astype(np.int64) * 4
        key += cell
        joint_counts = cell_counts(key, pred, int(joint_size)).reshape(*sizes, 4)
        if index is not None and index.histogram_fits(joint_size):
            joint_hist = index.histogram(joint, int(joint_size))
            joint_hist = joint_hist.reshape(*sizes, index.n_values, 2)

    pieces: list[dict[str, object]] = []
    for spec, cols in zip(specs, spec_cols, strict=True):
        part_labels = [cache[c][1] for c in cols]
        observed = None
        auc = None
        if joint_counts is not None:
            keep = [all_cols.index(c) for c in cols]
            counts = _marginal(joint_counts, keep, len(all_cols))
            size = counts.shape[0]
            if joint_hist is not None:
                auc = auc_from_histogram(_marginal(joint_hist, keep, len(all_cols)))
            elif index is not None:
                codes, _ = raw_codes(frame, cols, missing_label, cache)
                auc = index.auc(codes, size)
        else:
            codes, _ = raw_codes(frame, cols, missing_label, cache)
            size = int(np.prod([len(labels) for labels in part_labels]))
            if size > DENSE_CELLS_LIMIT:  # sparse intersections: renumber the observed cells
                codes, observed = compact(codes, size)
                size = len(observed)
            key = codes.astype(np.int64) * 4
            key += cell
            counts = cell_counts(key, pred, size)
            if index is not None:
                auc = index.auc(codes, size)
        present = np.flatnonzero(counts.any(axis=1))
        counts = counts[present]
        labels = labels_for(present if observed is None else observed[present], part_labels)
        g = len(labels)
        cols_out: dict[str, object] = {
            "attribute": [attribute_name(spec)] * g,
            "group": labels,
        }
        cols_out |= metrics_from_counts(counts, pp_total)
        cols_out["roc_auc"] = auc[present] if auc is not None else np.full(g, np.nan)
        pieces.append(cols_out)
    columns = ["attribute", "group", *COUNT_COLUMNS, *RATE_METRICS]
    data = {c: np.concatenate([np.asarray(p[c]) for p in pieces]) for c in columns}
    table = pd.DataFrame(data, columns=columns)
    table["attribute"] = table["attribute"].astype(str)
    table["group"] = table["group"].astype(str)
    return table
