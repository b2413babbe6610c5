"""Disparities of each group against a reference group, with intervals and significance tests.

For every attribute, metric and group ``g`` compared with the reference group ``r``::

    disparity_ratio = m_g / m_r              (NaN when m_r is 0 or undefined)
    difference_pp   = 100 * (m_g - m_r)      (percentage points)
    fair            = lower <= disparity_ratio <= upper   (aequitas's 0.8-1.25 rule, optional)

When the reference's value is 0 the ratio is undefined but the difference is not: an FPR of
0.45 against 0 is as unfair as can be. There ``fair`` is decided by the difference's test,
``p_value >= alpha`` (NA where there is no test, for ``ppr`` and ``roc_auc``).

``prevalence`` (the label base rate) describes the data, not the model's decisions: it gets
ratios and tests but never a ``fair`` verdict.

Significance is a two-proportion z-test on the metric's *own* denominator: FPR compares
``fp / (fp + tn)`` between the groups, precision ``tp / (tp + fp)``, FOR ``fn / (fn + tn)`` and
so on (aequitas's "FPR significance" tests the FDR by mistake; this module does not).

Groups smaller than ``min_group_size`` keep their metric value and interval (descriptive) but are
never compared: their disparity, test and fairness flag are NaN with status
``"insufficient data"``.

Status values: ``"reference"``, ``"ok"``, ``"insufficient data"``, ``"undefined"`` (the metric is
0/0 for the group or the reference), ``"reference insufficient data"`` (a named reference group
is smaller than ``min_group_size``) and ``"no reference"`` (no group is eligible as reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special

from rudikit.evaluation.bootstrap import percentile_interval, resample_counts
from rudikit.fairness.counts import PROPORTIONS, RATE_METRICS
from rudikit.fairness.groups import INTERSECTION_SEP

STATUS_REFERENCE = "reference"
STATUS_OK = "ok"
STATUS_INSUFFICIENT = "insufficient data"
STATUS_UNDEFINED = "undefined"
STATUS_REFERENCE_INSUFFICIENT = "reference insufficient data"
STATUS_NO_REFERENCE = "no reference"

DISPARITY_COLUMNS: tuple[str, ...] = (
    "attribute",
    "group",
    "metric",
    "value",
    "lower",
    "upper",
    "numerator",
    "denominator",
    "n",
    "reference_group",
    "reference_value",
    "disparity_ratio",
    "difference_pp",
    "z",
    "p_value",
    "significant",
    "fair",
    "status",
)

# Metrics of the data rather than of the decisions: compared, never judged fair or unfair.
DESCRIPTIVE_METRICS: tuple[str, ...] = ("prevalence",)

Reference = Literal["majority", "min_metric"] | Mapping[str, str]
IntervalMethod = Literal["wilson", "bootstrap"]


def _z_quantile(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(special.ndtri(1 - (1 - confidence) / 2))


def wilson_interval(
    successes: object, trials: object, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for binomial proportions (NaN where ``trials`` is 0).

    Unlike the normal (Wald) interval it stays inside [0, 1] and behaves at 0 and 1 successes,
    which matters for small groups. With ``p = x / n`` and ``z`` the normal quantile::

        centre = (p + z^2 / (2n)) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
    """
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if np.any(x < 0) or np.any(x > n):
        raise ValueError("successes must lie between 0 and trials")
    z = _z_quantile(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        lower = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
        upper = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return lower, upper


def two_proportion_ztest(
    x1: object, n1: object, x2: object, n2: object
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test, two-sided: returns ``(z, p_value)``.

    ``p1 = x1/n1``, ``p2 = x2/n2``, pooled ``p = (x1 + x2) / (n1 + n2)``,
    ``z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))``, ``p_value = 2 * (1 - Phi(|z|))``.
    NaN when either denominator is 0. When both proportions are 0 (or both 1) there is no
    variation at all: ``z = 0`` and ``p_value = 1``, as an exact test would give.
    """
    a1 = np.asarray(x1, dtype=np.float64)
    b1 = np.asarray(n1, dtype=np.float64)
    a2 = np.asarray(x2, dtype=np.float64)
    b2 = np.asarray(n2, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = a1 / b1
        p2 = a2 / b2
        pooled = (a1 + a2) / (b1 + b2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / b1 + 1 / b2))
        z = np.where(se > 0, (p1 - p2) / se, 0.0)
    valid = (b1 > 0) & (b2 > 0)
    z = np.where(valid, z, np.nan)
    p_value = np.where(valid, 2 * special.ndtr(-np.abs(z)), np.nan)
    return z, p_value


def proportion_counts(groups: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(numerator, denominator)`` of a proportion metric for every row of a group table.

    The denominator is the metric's own (see :data:`rudikit.fairness.group_metrics.PROPORTIONS`);
    for ``ppr`` it is the number of predicted positives over all groups of the attribute.
    """
    if metric not in PROPORTIONS:
        raise ValueError(f"metric {metric!r} is not a proportion; choose from {list(PROPORTIONS)}")
    cells, denom = PROPORTIONS[metric]
    num = sum(groups[c].to_numpy(dtype=np.int64) for c in cells)
    if denom == "pp_total":
        den = groups.groupby("attribute", sort=False)["pp"].transform("sum").to_numpy(np.int64)
    else:
        den = groups[denom].to_numpy(dtype=np.int64)
    return np.asarray(num), den


def bootstrap_intervals(
    groups: pd.DataFrame,
    metrics: Sequence[str],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Percentile bootstrap intervals for proportion metrics, stratified by group.

    Resampling a group's rows with replacement only changes its confusion counts, which are then
    multinomial with the observed cell frequencies; drawing those counts directly is exactly the
    row bootstrap, without touching the rows. Replicates where a metric is 0/0 are ignored.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples!r}")
    _z_quantile(confidence)
    counts = groups[["tn", "fp", "fn", "tp"]].to_numpy(dtype=np.int64)
    n = counts.sum(axis=1)
    draws = resample_counts(counts, n_resamples, np.random.default_rng(random_state))  # (B, G, 4)
    cell = {"tn": draws[..., 0], "fp": draws[..., 1], "fn": draws[..., 2], "tp": draws[..., 3]}
    cell["n"] = n[None, :]
    cell["pos"] = cell["tp"] + cell["fn"]
    cell["neg"] = cell["fp"] + cell["tn"]
    cell["pp"] = cell["tp"] + cell["fp"]
    cell["pn"] = cell["tn"] + cell["fn"]
    attr_codes = pd.factorize(groups["attribute"])[0]
    onehot = np.eye(attr_codes.max() + 1 if len(attr_codes) else 1)[attr_codes]
    cell["pp_total"] = (cell["pp"] @ onehot)[:, attr_codes]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for metric in metrics:
        if metric not in PROPORTIONS:
            continue
        cells, denom = PROPORTIONS[metric]
        num = sum(cell[c] for c in cells).astype(np.float64)
        den = np.broadcast_to(cell[denom], num.shape).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(den > 0, num / den, np.nan)
        ok = ~np.isnan(values).all(axis=0)
        lower = np.full(len(n), np.nan)
        upper = np.full(len(n), np.nan)
        if ok.any():
            lower[ok], upper[ok] = percentile_interval(values[:, ok], confidence, axis=0,
                                                       ignore_nan=True)
        out[metric] = (lower, upper)
    return out


def _check_reference(groups: pd.DataFrame, reference: Reference) -> None:
    if isinstance(reference, str):
        if reference not in ("majority", "min_metric"):
            raise ValueError(
                f"reference must be 'majority', 'min_metric' or a mapping attribute -> group, "
                f"got {reference!r}"
            )
        return
    if not isinstance(reference, Mapping):
        raise ValueError(
            "reference must be 'majority', 'min_metric' or a mapping attribute -> group"
        )
    attributes = list(pd.unique(groups["attribute"]))
    for attr, grp in reference.items():
        if attr not in attributes:
            raise ValueError(
                f"reference names unknown attribute {attr!r}; audited attributes: {attributes}"
            )
        known = groups.loc[groups["attribute"] == attr, "group"].tolist()
        if str(grp) not in known:
            raise ValueError(
                f"reference group {grp!r} not found in attribute {attr!r}; groups: {known}"
            )


def _crossed_reference(name: str, reference: Reference) -> dict[int, str]:
    """For an intersection not named in a ``reference`` mapping, the named groups of its parts.

    ``race:sex`` with ``{"race": "Caucasian", "sex": "Male"}`` gives ``{0: "Caucasian",
    1: "Male"}``: the intersection's reference is then ``Caucasian:Male`` (with only ``race``
    named, the largest ``Caucasian:*`` group), so it follows the user's choice rather than
    falling back to the largest group.
    """
    if not isinstance(reference, Mapping):
        return {}
    parts = name.split(INTERSECTION_SEP)
    if len(parts) < 2:
        return {}
    return {i: str(reference[p]) for i, p in enumerate(parts) if p in reference}


def _matches_parts(label: str, named: Mapping[int, str], size: int) -> bool:
    """Whether an intersection label of ``size`` parts has the ``named`` values (a label whose
    values themselves contain the separator cannot be split safely and never matches)."""
    values = label.split(INTERSECTION_SEP)
    return len(values) == size and all(values[i] == g for i, g in named.items())


def _reference_rows(
    attr_codes: np.ndarray,
    attr_names: Sequence[str],
    group_labels: np.ndarray,
    n: np.ndarray,
    values: np.ndarray,
    reference: Reference,
    eligible: np.ndarray,
) -> np.ndarray:
    """Row index of the reference group for every row (-1: no reference)."""
    ref = np.full(len(n), -1, dtype=np.int64)
    for a, name in enumerate(attr_names):
        rows = np.flatnonzero(attr_codes == a)
        crossed = _crossed_reference(name, reference)
        if isinstance(reference, Mapping) and name in reference:
            pick = rows[group_labels[rows] == str(reference[name])][0]
        elif crossed:
            size = len(name.split(INTERSECTION_SEP))
            matches = rows[np.array([_matches_parts(str(g), crossed, size)
                                     for g in group_labels[rows]], dtype=bool)]
            pick = matches[np.argmax(n[matches])] if len(matches) else rows[np.argmax(n[rows])]
        elif reference == "min_metric":
            ok = rows[eligible[rows] & ~np.isnan(values[rows])]
            if len(ok) == 0:
                continue
            pick = ok[np.argmin(values[ok])]
        else:  # majority: the largest group (first one on ties)
            pick = rows[np.argmax(n[rows])]
        ref[rows] = pick
    return ref


def disparities(
    groups: pd.DataFrame,
    *,
    reference: Reference = "majority",
    metrics: Sequence[str] = RATE_METRICS,
    min_group_size: int = 50,
    fairness_bounds: tuple[float, float] | None = (0.8, 1.25),
    confidence: float = 0.95,
    alpha: float = 0.05,
    interval: IntervalMethod = "wilson",
    n_bootstrap: int = 1000,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Tidy table, one row per (attribute, group, metric): value, interval and disparity.

    ``groups`` is a table from :func:`rudikit.fairness.group_metrics.group_metrics`.

    ``reference``: ``"majority"`` (the largest group of each attribute), ``"min_metric"`` (per
    metric, the eligible group with the lowest value, so every ratio is >= 1), or a mapping
    ``{attribute: group}``; an intersection missing from the mapping crosses the named groups of
    its parts (``race=Caucasian`` and ``sex=Male`` give ``race:sex`` ``Caucasian:Male``; with some
    parts unnamed, the largest group that matches the named ones); other attributes missing from
    the mapping, and intersections with no matching group, use the majority group.

    ``lower``/``upper`` are Wilson intervals (or percentile bootstrap intervals with
    ``interval="bootstrap"``) for the proportion metrics; NaN for ``roc_auc``. ``p_value`` is
    the two-proportion z-test of the group against the reference on the metric's own
    denominator (NaN for ``ppr``, whose shares come from one multinomial, and ``roc_auc``).
    ``significant`` is ``p_value < alpha`` (no multiple-comparison correction). ``fair`` is the
    ``fairness_bounds`` rule on ``disparity_ratio``, or, where the reference's value is 0 and the
    ratio undefined, "no significant difference" (NA when not compared, when there is neither a
    ratio nor a test, for the :data:`DESCRIPTIVE_METRICS` and when ``fairness_bounds`` is None).
    """
    missing = [c for c in ("attribute", "group", "n", "tp", "fp", "tn", "fn", "pp") if
               c not in groups.columns]
    if missing:
        raise ValueError(f"groups is not a group-metrics table: missing columns {missing}")
    unknown = [m for m in metrics if m not in RATE_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(RATE_METRICS)}")
    unavailable = [m for m in metrics if m not in groups.columns]
    if unavailable:
        raise ValueError(f"groups has no column for metric(s) {unavailable}")
    if min_group_size < 0:
        raise ValueError(f"min_group_size must be >= 0, got {min_group_size!r}")
    if fairness_bounds is not None and not 0 < fairness_bounds[0] <= 1 <= fairness_bounds[1]:
        raise ValueError(f"fairness_bounds must satisfy 0 < lower <= 1 <= upper, got "
                         f"{fairness_bounds!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    if interval not in ("wilson", "bootstrap"):
        raise ValueError(f"interval must be 'wilson' or 'bootstrap', got {interval!r}")
    _z_quantile(confidence)
    _check_reference(groups, reference)

    attr_codes, attr_index = pd.factorize(groups["attribute"])
    attr_names = [str(a) for a in attr_index]
    labels = groups["group"].to_numpy(dtype=object)
    n = groups["n"].to_numpy(dtype=np.int64)
    eligible = n >= min_group_size
    boot = (
        bootstrap_intervals(groups, metrics, n_resamples=n_bootstrap, confidence=confidence,
                            random_state=random_state)
        if interval == "bootstrap" else {}
    )
    fixed_ref = None
    if reference != "min_metric":
        fixed_ref = _reference_rows(attr_codes, attr_names, labels, n, np.zeros(len(n)),
                                    reference, eligible)
    rows_idx = np.arange(len(n))
    attr_values = groups["attribute"].to_numpy(dtype=object)
    cols: dict[str, list[np.ndarray]] = {c: [] for c in DISPARITY_COLUMNS}
    nan = np.full(len(n), np.nan)
    for metric in metrics:
        values = groups[metric].to_numpy(dtype=np.float64)
        ref = fixed_ref if fixed_ref is not None else _reference_rows(
            attr_codes, attr_names, labels, n, values, reference, eligible)
        has_ref = ref >= 0
        safe_ref = np.where(has_ref, ref, 0)
        ref_value = np.where(has_ref, values[safe_ref], np.nan)
        lower = upper = numerator = denominator = z = p_value = nan
        if metric in PROPORTIONS:
            num, den = proportion_counts(groups, metric)
            if interval == "bootstrap":
                lower, upper = boot[metric]
            else:
                lower, upper = wilson_interval(num, den, confidence=confidence)
            numerator = num.astype(np.float64)
            denominator = den.astype(np.float64)
            if metric != "ppr":
                z, p_value = two_proportion_ztest(num, den, num[safe_ref], den[safe_ref])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref_value != 0, values / ref_value, np.nan)
        diff = 100 * (values - ref_value)

        status = np.full(len(n), STATUS_OK, dtype=object)
        status[np.isnan(values) | np.isnan(ref_value)] = STATUS_UNDEFINED
        status[has_ref & ~eligible[safe_ref]] = STATUS_REFERENCE_INSUFFICIENT
        status[~has_ref] = STATUS_NO_REFERENCE
        status[~eligible] = STATUS_INSUFFICIENT
        is_ref = rows_idx == ref
        status[is_ref & eligible] = STATUS_REFERENCE
        compared = (status == STATUS_OK) | (status == STATUS_REFERENCE)
        tested = compared & ~is_ref
        for name, arr in (
            ("attribute", attr_values),
            ("group", labels),
            ("metric", np.full(len(n), metric, dtype=object)),
            ("value", values),
            ("lower", lower),
            ("upper", upper),
            ("numerator", numerator),
            ("denominator", denominator),
            ("n", n),
            ("reference_group", np.where(has_ref, labels[safe_ref], None)),
            ("reference_value", ref_value),
            ("disparity_ratio", np.where(compared, ratio, np.nan)),
            ("difference_pp", np.where(compared, diff, np.nan)),
            ("z", np.where(tested, z, np.nan)),
            ("p_value", np.where(tested, p_value, np.nan)),
            ("status", status),
        ):
            cols[name].append(arr)
    if not metrics:
        return pd.DataFrame(columns=list(DISPARITY_COLUMNS))
    data: dict[str, object] = {
        c: np.concatenate(cols[c]) for c in DISPARITY_COLUMNS if c not in ("significant", "fair")
    }
    p_all = data["p_value"]
    ratio_all = data["disparity_ratio"]
    assert isinstance(p_all, np.ndarray) and isinstance(ratio_all, np.ndarray)
    with np.errstate(invalid="ignore"):
        data["significant"] = pd.arrays.BooleanArray(p_all < alpha, np.isnan(p_all))
        if fairness_bounds is not None:
            inside = (ratio_all >= fairness_bounds[0]) & (ratio_all <= fairness_bounds[1])
            diff_all = data["difference_pp"]
            assert isinstance(diff_all, np.ndarray)
            # reference at 0: no ratio, but the difference and its test still decide
            by_diff = np.isnan(ratio_all) & ~np.isnan(diff_all) & ~np.isnan(p_all)
            inside = np.where(by_diff, p_all >= alpha, inside)
            metric_all = data["metric"]
            assert isinstance(metric_all, np.ndarray)
            descriptive = np.isin(metric_all, DESCRIPTIVE_METRICS)
            data["fair"] = pd.arrays.BooleanArray(
                inside, (np.isnan(ratio_all) & ~by_diff) | descriptive)
        else:
            data["fair"] = pd.arrays.BooleanArray(np.zeros(len(p_all), dtype=bool),
                                                  np.ones(len(p_all), dtype=bool))
    out = pd.DataFrame(data, columns=list(DISPARITY_COLUMNS))
    for col in ("attribute", "group", "metric", "reference_group", "status"):
        out[col] = out[col].astype("str")
    return out


def disparity_wide(long: pd.DataFrame) -> pd.DataFrame:
    """Aequitas-style wide table: per (attribute, group) the metric values, ``{metric}_disparity``
    ratios and ``{metric}_status``, in the order of the long table."""
    keys = ["attribute", "group"]
    order = long[keys].drop_duplicates()
    value = long.pivot(index=keys, columns="metric", values="value")
    ratio = long.pivot(index=keys, columns="metric", values="disparity_ratio")
    status = long.pivot(index=keys, columns="metric", values="status")
    metrics = list(pd.unique(long["metric"]))
    ratio.columns = [f"{m}_disparity" for m in ratio.columns]
    status.columns = [f"{m}_status" for m in status.columns]
    wide = pd.concat([value[metrics], ratio[[f"{m}_disparity" for m in metrics]],
                      status[[f"{m}_status" for m in metrics]]], axis=1)
    n = long.drop_duplicates(keys).set_index(keys)["n"]
    wide.insert(0, "n", n)
    wide = wide.reindex(pd.MultiIndex.from_frame(order)).reset_index()
    wide.columns.name = None
    return wide
