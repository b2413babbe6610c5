"""Confusion-matrix metrics per group, for protected attributes and their intersections.

Everything is computed from integer group codes and ``np.bincount`` of the four confusion cells,
not from a pandas groupby per metric. Usually one bincount over the joint cells of all attribute
columns serves every attribute and intersection (the others are summed out), and one histogram
of (cell, score value, label) gives every ROC AUC: an audit of a million rows over hundreds of
intersectional cells takes well under a second.

Conventions
-----------
* A row is predicted positive when ``score >= threshold``, when it is in the top-k list, or when
  its already-binary prediction is 1.
* Top-k lists (``top_k`` rows, or ``top_pct`` percent of rows, ``k = floor(top_pct * n / 100)``)
  rank by descending score. Ties at the k-th score are broken explicitly:
  ``tie_break="stable"`` (default) keeps the earlier rows in input order, so the list is
  reproducible from the data alone; ``tie_break="random"`` draws the tied rows uniformly at
  random with the given ``random_state``.
* Missing attribute values form their own group, labelled ``"(missing)"``; they are never dropped.
* Intersections are named with ``":"`` (Wilkinson's interaction notation): attribute
  ``"race:sex"``, group ``"African-American:Male"``.
* Only observed groups appear (an intersection nobody falls into has no row).
* Undefined ratios (0/0) are NaN, never 0.

Metrics (aequitas names; ``pos = tp + fn``, ``neg = fp + tn``, ``pp = tp + fp``,
``pn = tn + fn``, ``n = pos + neg``)::

    prevalence = pos / n            pprev     = pp / n  (selection rate)
    ppr        = pp / sum(pp)       precision = tp / pp    fdr = fp / pp
    for        = fn / pn            npv       = tn / pn
    tpr        = tp / pos           fnr       = fn / pos
    fpr        = fp / neg           tnr       = tn / neg
    accuracy   = (tp + tn) / n      roc_auc   = Mann-Whitney U / (pos * neg)

``ppr`` is the group's share of all predicted positives (``sum(pp)`` over all rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from rudikit.evaluation.metrics import k_for_percent

MISSING_GROUP = "(missing)"
INTERSECTION_SEP = ":"

COUNT_COLUMNS: tuple[str, ...] = ("n", "pos", "neg", "tp", "fp", "tn", "fn", "pp", "pn")
RATE_METRICS: tuple[str, ...] = (
    "prevalence",
    "pprev",
    "ppr",
    "precision",
    "fdr",
    "for",
    "npv",
    "tpr",
    "fnr",
    "fpr",
    "tnr",
    "accuracy",
    "roc_auc",
)

# Proportion metrics as (numerator cells, denominator column). ``ppr`` divides by the total
# number of predicted positives; ``roc_auc`` is not a proportion.
PROPORTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "prevalence": (("tp", "fn"), "n"),
    "pprev": (("tp", "fp"), "n"),
    "ppr": (("tp", "fp"), "pp_total"),
    "precision": (("tp",), "pp"),
    "fdr": (("fp",), "pp"),
    "for": (("fn",), "pn"),
    "npv": (("tn",), "pn"),
    "tpr": (("tp",), "pos"),
    "fnr": (("fn",), "pos"),
    "fpr": (("fp",), "neg"),
    "tnr": (("tn",), "neg"),
    "accuracy": (("tp", "tn"), "n"),
}

TieBreak = Literal["stable", "random"]
AttributeSpec = str | Sequence[str]

# Largest number of possible intersection cells handled with a dense lookup table; beyond this
# the observed cells are found by sorting (np.unique), which is slower but needs no big table.
_DENSE_CELLS_LIMIT = 1 << 22


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------


def _one_dimensional(values: object, name: str) -> np.ndarray:
    if isinstance(values, pd.DataFrame):
        raise ValueError(f"{name} must be one-dimensional, got a DataFrame")
    if isinstance(values, pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        dtype = values.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return np.asarray(values)
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            return np.asarray(values.to_numpy(dtype="float64", na_value=np.nan))
        arr = np.asarray(values, dtype=object)
    else:
        arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def check_binary(values: object, name: str = "y_true") -> np.ndarray:
    """Return ``values`` as an int8 array of 0/1, or raise a ValueError naming ``name``.

    Accepts booleans, integers and floats equal to 0 or 1. Missing values are an error: a case
    with unknown outcome (or prediction) cannot be placed in a confusion matrix.
    """
    arr = _one_dimensional(values, name)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if arr.dtype.kind in "iu" and (len(arr) == 0 or (arr.min() >= 0 and arr.max() <= 1)):
        return arr.astype(np.int8, copy=False)
    if arr.dtype.kind not in "iuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            examples = pd.unique(pd.Series(arr[:1000], dtype=object))[:5]
            raise ValueError(
                f"{name} must be binary (0/1); found non-numeric values such as "
                f"{[str(v) for v in examples]}"
            ) from None
    if arr.dtype.kind == "f":
        missing = int(np.isnan(arr).sum())
        if missing:
            raise ValueError(f"{name} has {missing} missing value(s); it must be 0/1 for every row")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        examples = np.unique(arr[bad])[:5].tolist()
        raise ValueError(f"{name} must be binary (0/1); found value(s) {examples}")
    return arr.astype(np.int8)


def check_scores(values: object, name: str = "y_score") -> np.ndarray:
    """Return ``values`` as a finite float64 array, or raise a ValueError naming ``name``."""
    arr = _one_dimensional(values, name)
    if arr.dtype.kind not in "iufb":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numeric") from None
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int((~finite).sum())
        raise ValueError(f"{name} has {bad} missing or infinite value(s)")
    return arr


def available_columns(columns: Sequence[object], limit: int = 25) -> str:
    """Column names for an error message (the first ``limit`` of them)."""
    names = [str(c) for c in columns]
    more = f" ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _check_length(n: int, values: np.ndarray, name: str) -> None:
    if len(values) != n:
        raise ValueError(f"length mismatch: {name} has {len(values)} rows, y_true has {n}")


# --------------------------------------------------------------------------------------------
# predictions
# --------------------------------------------------------------------------------------------


def top_k_size(n: int, *, top_k: int | None = None, top_pct: float | None = None) -> int:
    """Number of rows in the list: ``top_k``, or
    :func:`rudikit.evaluation.metrics.k_for_percent` (at most ``top_pct`` percent of rows)."""
    if (top_k is None) == (top_pct is None):
        raise ValueError("give exactly one of top_k and top_pct")
    if top_k is not None:
        if isinstance(top_k, bool) or int(top_k) != top_k or top_k < 0:
            raise ValueError(f"top_k must be a non-negative integer, got {top_k!r}")
        if top_k > n:
            raise ValueError(f"top_k={top_k} is larger than the number of rows ({n})")
        return int(top_k)
    assert top_pct is not None
    if not 0 <= top_pct <= 100:
        raise ValueError(f"top_pct must be between 0 and 100, got {top_pct!r}")
    return k_for_percent(n, top_pct)


def binarize(
    y_score: object,
    *,
    threshold: float | None = None,
    top_k: int | None = None,
    top_pct: float | None = None,
    tie_break: TieBreak = "stable",
    random_state: int | None = 0,
) -> np.ndarray:
    """Turn scores into 0/1 predictions with exactly one selection rule.

    ``threshold``: positive when ``score >= threshold``.
    ``top_k`` / ``top_pct``: the k highest scores are positive. Rows with a score strictly above
    the k-th highest are always in; among the rows tied at the k-th score, ``"stable"`` takes the
    earliest rows (input order) and ``"random"`` a uniform random subset drawn with
    ``random_state``. Runs in O(n) (``np.partition``), no full sort.
    """
    scores = check_scores(y_score, "y_score")
    chosen = [v is not None for v in (threshold, top_k, top_pct)]
    if sum(chosen) != 1:
        raise ValueError("give exactly one of threshold, top_k and top_pct")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number) \
                or not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        return (scores >= threshold).astype(np.int8)
    if tie_break not in ("stable", "random"):
        raise ValueError(f"tie_break must be 'stable' or 'random', got {tie_break!r}")
    n = len(scores)
    k = top_k_size(n, top_k=top_k, top_pct=top_pct)
    pred = np.zeros(n, dtype=np.int8)
    if k == 0:
        return pred
    kth = np.partition(scores, n - k)[n - k]
    above = scores > kth
    pred[above] = 1
    missing = k - int(above.sum())
    tied = np.flatnonzero(scores == kth)
    if tie_break == "stable":
        pred[tied[:missing]] = 1
    else:
        rng = np.random.default_rng(random_state)
        pred[rng.choice(tied, size=missing, replace=False)] = 1
    return pred


# --------------------------------------------------------------------------------------------
# group codes
# --------------------------------------------------------------------------------------------


def _factorize(series: pd.Series, name: str, missing_label: str) -> tuple[np.ndarray, list[str]]:
    """Codes 0..k-1 (missing values get code k-1 labelled ``missing_label``) and labels."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        labels = [str(c) for c in series.cat.categories]
    else:
        # hash once, then sort the few distinct values (pandas' sort=True hashes twice for
        # Arrow-backed strings)
        codes, uniques = pd.factorize(series, sort=False)
        values = np.asarray(uniques, dtype=object)
        try:
            order = np.argsort(values, kind="stable")
        except TypeError:  # mixed types that do not sort; keep order of appearance
            order = np.arange(len(values))
        rank = np.empty(len(values) + 1, dtype=np.int32)
        rank[order] = np.arange(len(values), dtype=np.int32)
        rank[-1] = -1  # missing values (code -1) stay missing
        codes = rank[codes]
        labels = [str(values[i]) for i in order]
    if len(set(labels)) != len(labels):
        raise ValueError(f"attribute {name!r} has distinct values that print the same "
                         "(e.g. 1 and '1'); convert the column to one type first")
    codes = codes.astype(np.int32)
    missing = codes < 0
    if missing.any():
        if missing_label in labels:
            raise ValueError(
                f"attribute {name!r} has a value equal to the missing-value label "
                f"{missing_label!r}; choose another missing_label"
            )
        codes[missing] = len(labels)
        labels.append(missing_label)
    return codes, labels


def _compact(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber codes to the observed ones: (new codes, old code of each new code)."""
    if size <= _DENSE_CELLS_LIMIT:
        present = np.bincount(codes, minlength=size) > 0
        observed = np.flatnonzero(present)
        if len(observed) == size:
            return codes, observed
        remap = np.cumsum(present) - 1
        return remap[codes], observed
    observed, inverse = np.unique(codes, return_inverse=True)
    return inverse.reshape(-1), observed


def _raw_codes(
    frame: pd.DataFrame,
    columns: Sequence[str],
    missing_label: str,
    cache: dict[str, tuple[np.ndarray, list[str]]] | None,
) -> tuple[np.ndarray, list[list[str]]]:
    """Code per row over *all* combinations of the columns' values (mixed radix, not compacted),
    and each column's value labels."""
    columns = list(columns)
    if not columns:
        raise ValueError("an attribute must name at least one column")
    for col in columns:
        if col not in frame.columns:
            raise ValueError(
                f"unknown attribute column {col!r}; available columns: "
                f"{available_columns(frame.columns)}"
            )
    parts = []
    for col in columns:
        if cache is not None and col in cache:
            parts.append(cache[col])
            continue
        part = _factorize(frame[col], col, missing_label)
        if cache is not None:
            cache[col] = part
        parts.append(part)
    size = float(np.prod([len(labels) for _, labels in parts], dtype=np.float64))
    if size > np.iinfo(np.int64).max // 8:
        raise ValueError(f"too many possible intersection cells for {columns}")
    combined = parts[0][0].astype(np.int32 if size < 2**31 else np.int64)
    for codes, labels in parts[1:]:
        combined *= len(labels)
        combined += codes
    return combined, [labels for _, labels in parts]


def _labels_for(observed: np.ndarray, part_labels: list[list[str]]) -> list[str]:
    if len(part_labels) == 1:
        return [part_labels[0][i] for i in observed]
    idx = np.unravel_index(observed, [len(labels) for labels in part_labels])
    return [
        INTERSECTION_SEP.join(part_labels[j][idx[j][i]] for j in range(len(part_labels)))
        for i in range(len(observed))
    ]


def encode_groups(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    missing_label: str = MISSING_GROUP,
    _cache: dict[str, tuple[np.ndarray, list[str]]] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Integer group code per row for one attribute or the intersection of several.

    Returns ``(codes, labels)`` with ``codes`` in ``0..len(labels)-1``; only observed groups
    get a code. Groups are ordered by the attribute values (category order for categoricals,
    sorted otherwise; missing last), lexicographically for intersections. Intersection labels
    join the values with ``":"``.
    """
    combined, part_labels = _raw_codes(frame, columns, missing_label, _cache)
    size = int(np.prod([len(labels) for labels in part_labels]))
    codes, observed = _compact(combined, max(size, 1))
    return codes, _labels_for(observed, part_labels)


def _columns(spec: AttributeSpec) -> list[str]:
    return [spec] if isinstance(spec, str) or not isinstance(spec, Sequence) else list(spec)


def attribute_name(spec: AttributeSpec) -> str:
    """Display name of an attribute spec: ``"race"`` or ``"race:sex"`` for an intersection."""
    return INTERSECTION_SEP.join(str(c) for c in _columns(spec))


# --------------------------------------------------------------------------------------------
# counts and metrics
# --------------------------------------------------------------------------------------------


def confusion_counts(
    y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray, n_groups: int
) -> np.ndarray:
    """Confusion cells per group in one ``np.bincount``: array (n_groups, 4) of tn, fp, fn, tp.

    Each row falls in cell ``4 * group + 2 * y_true + y_pred``.
    """
    key = np.asarray(codes).astype(np.int64) * 4 + (2 * np.asarray(y_true, dtype=np.int64)
                                                    + np.asarray(y_pred, dtype=np.int64))
    return np.bincount(key, minlength=4 * n_groups).reshape(n_groups, 4)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def metrics_from_counts(counts: np.ndarray, pp_total: int | None = None) -> dict[str, np.ndarray]:
    """All count columns and rate metrics (except ``roc_auc``) from (n_groups, 4) cells.

    ``pp_total`` is the number of predicted positives the ``ppr`` shares refer to (all rows);
    it defaults to the sum over the given groups, right when they partition the rows.
    """
    counts = np.asarray(counts, dtype=np.int64)
    tn, fp, fn, tp = counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3]
    pos, neg, pp, pn = tp + fn, fp + tn, tp + fp, tn + fn
    n = pos + neg
    total = int(pp.sum()) if pp_total is None else int(pp_total)
    out = {"n": n, "pos": pos, "neg": neg, "tp": tp, "fp": fp, "tn": tn, "fn": fn}
    out |= {"pp": pp, "pn": pn}
    out["prevalence"] = _ratio(pos, n)
    out["pprev"] = _ratio(pp, n)
    out["ppr"] = _ratio(pp, np.full(len(pp), total))
    out["precision"] = _ratio(tp, pp)
    out["fdr"] = _ratio(fp, pp)
    out["for"] = _ratio(fn, pn)
    out["npv"] = _ratio(tn, pn)
    out["tpr"] = _ratio(tp, pos)
    out["fnr"] = _ratio(fn, pos)
    out["fpr"] = _ratio(fp, neg)
    out["tnr"] = _ratio(tn, neg)
    out["accuracy"] = _ratio(tp + tn, n)
    return out


def auc_from_histogram(table: np.ndarray) -> np.ndarray:
    """ROC AUC per group from counts per (group, score value in ascending order, label 0/1).

    ``U_g = sum_v pos[g, v] * (neg[g, < v] + neg[g, v] / 2)``: each positive beats the group's
    negatives with a lower score and ties with those with the same score (Mann-Whitney);
    ``AUC_g = U_g / (P_g N_g)``.
    """
    neg = table[:, :, 0]
    pos = table[:, :, 1]
    below = np.cumsum(neg, axis=1) - neg
    u = (pos * (2 * below + neg)).sum(axis=1) / 2
    return _ratio(u, pos.sum(axis=1) * neg.sum(axis=1))


def _few_distinct(scores: np.ndarray) -> bool:
    """Whether scores repeat a lot (e.g. rounded or integer scores), judged on a sample."""
    sample = scores[:: max(1, len(scores) // 20_000)]
    return len(np.unique(sample)) <= len(sample) // 2


class _ScoreIndex:
    """What the ROC AUC of every grouping needs from the scores, computed once.

    Scores with many repeats are numbered by rank of their distinct values (a hash
    factorization, O(n)); otherwise the rows are sorted by score once (lazily).
    """

    def __init__(self, y_true: np.ndarray, y_score: np.ndarray) -> None:
        self.y = y_true
        self.scores = y_score
        self.n_values = 0
        self.value: np.ndarray | None = None  # rank of each row's score among distinct values
        if len(y_score) and _few_distinct(y_score):
            codes, uniques = pd.factorize(y_score)
            rank = np.empty(len(uniques), dtype=np.int64)
            rank[np.argsort(uniques)] = np.arange(len(uniques))
            self.n_values = len(uniques)
            self.value = rank[codes]
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None

    def auc(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """ROC AUC per group code ``0..n_groups-1`` (NaN without positives or negatives)."""
        if len(self.y) == 0:
            return np.full(n_groups, np.nan)
        if self.value is not None and self.histogram_fits(n_groups):
            return self._auc_counts(codes, n_groups)
        return self._auc_sorted(codes, n_groups)

    def histogram_fits(self, n_groups: float) -> bool:
        """Whether a (group, score value, label) histogram is small enough to build."""
        cells = n_groups * self.n_values * 2
        return self.value is not None and cells <= max(4 * len(self.y), 1 << 22)

    def histogram(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """Counts per (group, score value, label): array (n_groups, n_values, 2), one bincount."""
        assert self.value is not None
        m = self.n_values
        key = codes.astype(np.int64)
        key *= m
        key += self.value
        key *= 2
        key += self.y
        return np.bincount(key, minlength=n_groups * m * 2).reshape(n_groups, m, 2)

    def _auc_counts(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        return auc_from_histogram(self.histogram(codes, n_groups))

    def _auc_sorted(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """Rank-sum form: ``AUC_g = (R_g - P_g (P_g + 1) / 2) / (P_g N_g)``.

        ``R_g`` sums the mid-ranks of the group's positives among the group's scores (ties get
        the average rank). Rows are sorted by score once; each grouping then needs only a
        stable radix sort of its small integer codes, which keeps score order within groups.
        """
        if self._sorted is None:
            order = np.argsort(self.scores)
            s = self.scores[order]
            same = s[1:] == s[:-1]
            block = None
            if same.any():  # tie block of every sorted row
                block = np.empty(len(s), dtype=np.int64)
                block[0] = 0
                np.cumsum(~same, out=block[1:])
            self._sorted = (order, self.y[order], block)
        order, y_sorted, block = self._sorted
        n = len(order)
        if n_groups <= 1 << 8:
            small = codes.astype(np.uint8)
        elif n_groups <= 1 << 16:
            small = codes.astype(np.uint16)
        else:
            small = codes
        c = small[order]
        perm = np.argsort(c, kind="stable")
        counts = np.bincount(c, minlength=n_groups)
        ends = np.cumsum(counts)
        starts = ends - counts
        y_p = y_sorted[perm]
        if block is None:
            # the k-th row in perm order has rank k - start + 1 within its group
            at = np.flatnonzero(y_p)
            split = np.searchsorted(at, ends)
            n_pos = np.diff(split, prepend=0).astype(np.float64)
            csum = np.concatenate(([0.0], np.cumsum(at, dtype=np.float64)))
            rank_sum = np.diff(csum[split], prepend=0.0) + n_pos * (1 - starts)
        else:
            b_p = block[perm]
            new_run = np.empty(n, dtype=bool)
            new_run[0] = True
            np.not_equal(b_p[1:], b_p[:-1], out=new_run[1:])
            new_run[starts[counts > 0]] = True
            run_first = np.flatnonzero(new_run)
            run_end = np.append(run_first[1:], n)
            cum_y = np.concatenate(([0], np.cumsum(y_p, dtype=np.int64)))
            run_pos = cum_y[run_end] - cum_y[run_first]
            keep = run_pos > 0
            run_first, run_end, run_pos = run_first[keep], run_end[keep], run_pos[keep]
            run_group = np.searchsorted(ends, run_first, side="right")
            mid_rank = run_first - starts[run_group] + (run_end - run_first + 1) / 2
            rank_sum = np.bincount(run_group, weights=run_pos * mid_rank, minlength=n_groups)
            n_pos = np.bincount(run_group, weights=run_pos, minlength=n_groups)
        u = rank_sum - n_pos * (n_pos + 1) / 2
        return _ratio(u, n_pos * (counts - n_pos))


def roc_auc_by_group(
    y_true: object, y_score: object, codes: np.ndarray, n_groups: int
) -> np.ndarray:
    """ROC AUC per group (NaN where a group lacks positives or negatives).

    Exact Mann-Whitney statistic with ties counted one half, as ``roc_auc_score``; computed from
    a (group, score value) histogram when scores repeat, otherwise from one sort of the scores
    and a radix sort of the group codes.
    """
    y = check_binary(y_true, "y_true")
    s = check_scores(y_score, "y_score")
    _check_length(len(y), s, "y_score")
    _check_length(len(y), np.asarray(codes), "codes")
    codes = np.asarray(codes)
    out_of_range = len(codes) > 0 and (codes.min() < 0 or codes.max() >= n_groups)
    if codes.dtype.kind not in "iu" or out_of_range:
        raise ValueError(f"codes must be integers in 0..{n_groups - 1}")
    return _ScoreIndex(y, s).auc(codes.astype(np.int64), n_groups)


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------


def _as_frame(sensitive_features: object, n: int) -> pd.DataFrame:
    if isinstance(sensitive_features, pd.DataFrame):
        frame = sensitive_features
    elif isinstance(sensitive_features, pd.Series):
        frame = sensitive_features.to_frame(
            name=sensitive_features.name if sensitive_features.name is not None else "group"
        )
    elif isinstance(sensitive_features, Mapping):
        frame = pd.DataFrame(dict(sensitive_features))
    else:
        arr = np.asarray(sensitive_features, dtype=object)
        if arr.ndim != 1:
            raise ValueError(
                "sensitive_features must be a DataFrame, a Series, a mapping of columns or a 1-d "
                "array"
            )
        frame = pd.DataFrame({"group": arr})
    if len(frame) != n:
        raise ValueError(
            f"length mismatch: sensitive_features has {len(frame)} rows, y_true has {n}"
        )
    return frame


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
    tie_break: TieBreak = "stable",
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
    y = check_binary(y_true, "y_true")
    n = len(y)
    selection = [v is not None for v in (threshold, top_k, top_pct)]
    scores = None
    if y_score is not None:
        scores = check_scores(y_score, "y_score")
        _check_length(n, scores, "y_score")
    if y_pred is not None:
        if any(selection):
            raise ValueError(
                "give either y_pred or a selection rule (threshold/top_k/top_pct), not both"
            )
        pred = check_binary(y_pred, "y_pred")
        _check_length(n, pred, "y_pred")
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
    frame = _as_frame(sensitive_features, n)
    specs = list(frame.columns) if attributes is None else list(attributes)
    if not specs:
        raise ValueError("attributes is empty; name at least one attribute column")
    return _group_table(y, pred, scores, frame, specs, roc_auc=roc_auc, missing_label=missing_label)


def _marginal(table: np.ndarray, keep: list[int], n_lead: int) -> np.ndarray:
    """Sum a table over the leading axes not in ``keep``, put the kept ones in ``keep`` order
    and flatten them: (product of kept sizes, *trailing axes)."""
    drop = tuple(i for i in range(n_lead) if i not in keep)
    t = table.sum(axis=drop) if drop else table
    remaining = [i for i in range(n_lead) if i in keep]
    t = t.transpose([remaining.index(k) for k in keep] + list(range(len(keep), t.ndim)))
    return t.reshape(-1, *t.shape[len(keep):])


def _group_table(
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
    spec_cols = [_columns(spec) for spec in specs]
    for cols in spec_cols:
        if len(set(cols)) != len(cols):
            raise ValueError(f"attribute {cols} names a column more than once")
    names = [attribute_name(spec) for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"attributes {names} list the same attribute more than once")
    all_cols = list(dict.fromkeys(c for cols in spec_cols for c in cols))
    for col in all_cols:
        _raw_codes(frame, [col], missing_label, cache)  # validates and factorizes once
    sizes = [len(cache[c][1]) for c in all_cols]
    joint_size = float(np.prod(sizes, dtype=np.float64))
    cell = 2 * y + pred
    pp_total = int(pred.sum())
    index = None
    if roc_auc and n:
        index = _ScoreIndex(y, scores if scores is not None else pred.astype(np.float64))

    joint_counts = joint_hist = None
    if 4 * joint_size <= max(n, 1 << 18):
        joint, _ = _raw_codes(frame, all_cols, missing_label, cache)
        key = joint.astype(np.int64) * 4
        key += cell
        joint_counts = np.bincount(key, minlength=4 * int(joint_size)).reshape(*sizes, 4)
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
                codes, _ = _raw_codes(frame, cols, missing_label, cache)
                auc = index.auc(codes, size)
        else:
            codes, _ = _raw_codes(frame, cols, missing_label, cache)
            size = int(np.prod([len(labels) for labels in part_labels]))
            if size > _DENSE_CELLS_LIMIT:  # sparse intersections: renumber the observed cells
                codes, observed = _compact(codes, size)
                size = len(observed)
            key = codes.astype(np.int64) * 4
            key += cell
            counts = np.bincount(key, minlength=4 * size).reshape(size, 4)
            if index is not None:
                auc = index.auc(codes, size)
        present = np.flatnonzero(counts.any(axis=1))
        counts = counts[present]
        labels = _labels_for(present if observed is None else observed[present], part_labels)
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
