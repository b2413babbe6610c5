"""Disparities of each group against a reference group, with intervals and significance tests.

For every attribute, metric and group ``g`` compared with the reference group ``r``::

    disparity_ratio = m_g / m_r              (NaN when m_r is 0 or undefined)
    difference_pp   = 100 * (m_g - m_r)      (percentage points)

A group is compared on a metric only when the metric's *own* denominator reaches
``min_group_size`` for it and for the reference: flagged cases for precision, actual positives
for recall, negatives for the FPR, rows for the selection rate (the smaller of positives and
negatives for the ROC AUC). A group of 1,000 rows with one flagged case has "insufficient data"
for precision, however many rows it has. Its value and interval are still shown (descriptive).

Verdicts (``fairness_bounds``, aequitas's 0.8-1.25 rule by default): a ratio inside the bounds
is fair (status ``"ok"``). A ratio outside them is ``"unfair"`` only when the data support it:
the ratio is tested against the bounds (:func:`rudikit.fairness.significance.ratio_pvalue`) and
the p-values of all the groups of one attribute and metric are corrected together (Holm, or
Benjamini-Hochberg with ``correction="fdr_bh"``); below ``alpha`` after correction the group is
unfair, otherwise ``"inconclusive"`` and never coloured as unfair. When the reference's value is
0 the ratio is undefined but the difference is not (an FPR of 0.45 against 0 is as unfair as can
be): there the difference's test against 0, corrected alike, decides.

``prevalence`` (the label base rate) describes the data, not the model's decisions: it gets
ratios and tests but never a verdict.

``p_value`` is the two-proportion z-test of the group against the reference (equal
proportions), uncorrected, on the metric's own denominator: FPR compares ``fp / (fp + tn)``
between the groups, precision ``tp / (tp + fp)``, and so on (aequitas's "FPR significance" tests
the FDR by mistake; this module does not). ``p_adjusted`` is the corrected p-value of the test
that decided the verdict.

Status values: ``"reference"``, ``"ok"``, ``"unfair"``, ``"inconclusive"``, ``"insufficient
data"`` (also where the metric is 0/0: its denominator is 0), ``"reference insufficient data"``
(the reference group's denominator is under ``min_group_size``) and ``"no reference"`` (no
group is eligible as reference).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from rudikit.evaluation.bootstrap import percentile_interval, resample_counts
from rudikit.fairness.counts import PROPORTIONS, RATE_METRICS
from rudikit.fairness.groups import INTERSECTION_SEP
from rudikit.fairness.significance import (
    Correction,
    adjust,
    auc_ratio_pvalue,
    auc_standard_error,
    check_alpha,
    check_correction,
    proportion_interval,
    ratio_pvalue,
    two_proportion_ztest,
)

STATUS_REFERENCE = "reference"
STATUS_OK = "ok"
STATUS_UNFAIR = "unfair"
STATUS_INCONCLUSIVE = "inconclusive"
STATUS_INSUFFICIENT = "insufficient data"
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
    "p_adjusted",
    "fair",
    "status",
)

# Metrics of the data rather than of the decisions: compared, never judged fair or unfair.
DESCRIPTIVE_METRICS: tuple[str, ...] = ("prevalence",)

Reference = Literal["majority", "min_metric"] | Mapping[str, str]
IntervalMethod = Literal["wilson", "bootstrap"]


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")


def proportion_counts(groups: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(numerator, denominator)`` of a proportion metric for every row of a group table.

    The denominator is the metric's own (see :data:`rudikit.fairness.group_metrics.PROPORTIONS`);
    for ``ppr`` it is the number of predicted positives over all groups of the attribute.
    """
    if metric not in PROPORTIONS:
        raise ValueError(f"metric {metric!r} is not a proportion; choose from {list(PROPORTIONS)}")
    cells, denom = PROPORTIONS[metric]
    num = sum(groups[c].to_numpy(dtype=np.float64) for c in cells)
    if denom == "pp_total":
        den = groups.groupby("attribute", sort=False)["pp"].transform("sum").to_numpy(np.float64)
    else:
        den = groups[denom].to_numpy(dtype=np.float64)
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
    Where the bootstrap interval has zero width (a rate of 0 or 1, as in a 3-of-3 cell), the
    Wilson interval of the observed counts replaces it.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples!r}")
    _check_confidence(confidence)
    counts = groups[["tn", "fp", "fn", "tp"]].to_numpy(dtype=np.float64)
    n = groups["n"].to_numpy(dtype=np.int64)
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
        # A cell whose observed rate is 0 or 1 (3 of 3) resamples to that rate every time: the
        # bootstrap interval has zero width, claiming certainty from three cases. There the
        # Wilson interval of the observed counts is used instead.
        degenerate = upper - lower <= 1e-12
        if degenerate.any():
            wilson = proportion_interval(*proportion_counts(groups, metric),
                                         confidence=confidence)
            lower = np.where(degenerate, wilson[0], lower)
            upper = np.where(degenerate, wilson[1], upper)
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


def metric_basis(groups: pd.DataFrame, metric: str) -> np.ndarray:
    """The count ``min_group_size`` applies to for ``metric``: its own denominator (flagged
    cases for precision and the FDR and for the share of all flagged, positives for recall,
    negatives for the FPR, rows for the selection rate; the smaller of positives and negatives
    for the ROC AUC)."""
    if metric == "roc_auc":
        return np.minimum(groups["pos"].to_numpy(np.float64),
                          groups["neg"].to_numpy(np.float64))
    denom = PROPORTIONS[metric][1]
    return groups["pp" if denom == "pp_total" else denom].to_numpy(dtype=np.float64)


def _verdicts(
    compared: np.ndarray, is_ref: np.ndarray, ratio: np.ndarray, diff: np.ndarray,
    num: np.ndarray, den: np.ndarray, ref: np.ndarray, p_equal: np.ndarray,
    bounds: tuple[float, float], alpha: float, correction: Correction, attr_codes: np.ndarray,
    auc: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fair, unfair, p_adjusted)`` of one metric's rows: inside the bounds is fair; outside
    them unfair when the corrected test says so (per attribute), else neither (inconclusive)."""
    judged = compared & ~is_ref & ~np.isnan(diff)
    by_ratio = judged & ~np.isnan(ratio)
    by_diff = judged & np.isnan(ratio)  # the reference is at 0: the difference decides
    p = np.full(len(ratio), np.nan)
    if by_ratio.any():
        i = np.flatnonzero(by_ratio)
        if auc is not None:  # (values, standard errors) of the ROC AUC
            value, se = auc
            p[i] = auc_ratio_pvalue(value[i], se[i], value[ref[i]], se[ref[i]], *bounds)
        else:
            p[i] = ratio_pvalue(num[i], den[i], num[ref[i]], den[ref[i]], *bounds)
    p[by_diff] = p_equal[by_diff]
    p_adj = np.full(len(ratio), np.nan)
    for a in np.unique(attr_codes[judged]):
        rows = np.flatnonzero(judged & (attr_codes == a))
        p_adj[rows] = adjust(p[rows], correction)
    with np.errstate(invalid="ignore"):
        inside = np.where(by_ratio, (ratio >= bounds[0]) & (ratio <= bounds[1]), diff == 0)
    fair = judged & inside
    unfair = judged & ~inside & (p_adj < alpha)
    return fair, unfair, np.where(judged, p_adj, np.nan)


def disparities(
    groups: pd.DataFrame,
    *,
    reference: Reference = "majority",
    metrics: Sequence[str] = RATE_METRICS,
    min_group_size: int = 50,
    fairness_bounds: tuple[float, float] | None = (0.8, 1.25),
    confidence: float = 0.95,
    alpha: float = 0.05,
    correction: Correction = "holm",
    interval: IntervalMethod = "wilson",
    n_bootstrap: int = 1000,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Tidy table, one row per (attribute, group, metric): value, interval, disparity, verdict.

    ``groups`` is a table from :func:`rudikit.fairness.group_metrics.group_metrics`.

    ``reference``: ``"majority"`` (the largest group of each attribute), ``"min_metric"`` (per
    metric, the eligible group with the lowest value, so every ratio is >= 1), or a mapping
    ``{attribute: group}``; an intersection missing from the mapping crosses the named groups of
    its parts (``race=Caucasian`` and ``sex=Male`` give ``race:sex`` ``Caucasian:Male``; with some
    parts unnamed, the largest group that matches the named ones); other attributes missing from
    the mapping, and intersections with no matching group, use the majority group.

    ``min_group_size`` applies to each metric's own denominator (:func:`metric_basis`).
    ``lower``/``upper`` are Wilson intervals (or percentile bootstrap intervals with
    ``interval="bootstrap"``) for the proportion metrics; NaN for ``roc_auc``. ``p_value`` is
    the two-proportion z-test of the group against the reference (NaN for ``ppr``, whose shares
    come from one multinomial, and ``roc_auc``); ``significant`` is ``p_value < alpha``,
    uncorrected. ``fair`` is True inside ``fairness_bounds``, False when outside them with a
    ``p_adjusted`` (the test against the bounds, ``correction`` over the groups of one attribute
    and metric) under ``alpha``, and NA otherwise: not compared, inconclusive, descriptive
    metrics, no test (``ppr`` with a reference at 0, ``roc_auc``) or no ``fairness_bounds``.
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
    check_alpha(alpha)
    check_correction(correction)
    if interval not in ("wilson", "bootstrap"):
        raise ValueError(f"interval must be 'wilson' or 'bootstrap', got {interval!r}")
    _check_confidence(confidence)
    _check_reference(groups, reference)
    if not metrics:
        return pd.DataFrame(columns=list(DISPARITY_COLUMNS))

    attr_codes, attr_index = pd.factorize(groups["attribute"])
    attr_names = [str(a) for a in attr_index]
    labels = groups["group"].to_numpy(dtype=object)
    n = groups["n"].to_numpy(dtype=np.int64)
    boot = (
        bootstrap_intervals(groups, metrics, n_resamples=n_bootstrap, confidence=confidence,
                            random_state=random_state)
        if interval == "bootstrap" else {}
    )
    fixed_ref = None
    if reference != "min_metric":
        fixed_ref = _reference_rows(attr_codes, attr_names, labels, n, np.zeros(len(n)),
                                    reference, n >= 0)
    rows_idx = np.arange(len(n))
    attr_values = groups["attribute"].to_numpy(dtype=object)
    cols: dict[str, list[np.ndarray]] = {c: [] for c in DISPARITY_COLUMNS}
    nan = np.full(len(n), np.nan)
    for metric in metrics:
        values = groups[metric].to_numpy(dtype=np.float64)
        eligible = metric_basis(groups, metric) >= max(min_group_size, 1)
        ref = fixed_ref if fixed_ref is not None else _reference_rows(
            attr_codes, attr_names, labels, n, values, reference, eligible)
        has_ref = ref >= 0
        safe_ref = np.where(has_ref, ref, 0)
        ref_value = np.where(has_ref, values[safe_ref], np.nan)
        lower = upper = z = p_value = nan
        num = den = np.zeros(len(n), dtype=np.float64)
        if metric in PROPORTIONS:
            num, den = proportion_counts(groups, metric)
            if interval == "bootstrap":
                lower, upper = boot[metric]
            else:
                lower, upper = proportion_interval(num, den, confidence=confidence)
            if metric != "ppr":
                z, p_value = two_proportion_ztest(num, den, num[safe_ref], den[safe_ref])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref_value != 0, values / ref_value, np.nan)
        diff = 100 * (values - ref_value)

        status = np.full(len(n), STATUS_OK, dtype=object)
        status[has_ref & ~eligible[safe_ref]] = STATUS_REFERENCE_INSUFFICIENT
        status[~has_ref] = STATUS_NO_REFERENCE
        status[~eligible] = STATUS_INSUFFICIENT
        is_ref = rows_idx == ref
        status[is_ref & eligible] = STATUS_REFERENCE
        compared = (status == STATUS_OK) | (status == STATUS_REFERENCE)
        tested = compared & ~is_ref
        fair = np.zeros(len(n), dtype=bool)
        fair_na = np.ones(len(n), dtype=bool)
        p_adj = nan
        if fairness_bounds is not None and metric not in DESCRIPTIVE_METRICS:
            diff_known = diff if metric in PROPORTIONS and metric != "ppr" else np.where(
                np.isnan(ratio), np.nan, diff)  # no test of a difference: the ratio decides
            fair, unfair, p_adj = _verdicts(
                compared, is_ref, ratio, np.where(compared, diff_known, np.nan),
                num.astype(np.float64), den.astype(np.float64), safe_ref,
                np.where(tested, p_value, np.nan), fairness_bounds, alpha, correction,
                attr_codes, (values, auc_standard_error(values, groups["pos"], groups["neg"]))
                if metric == "roc_auc" else None)
            fair_na = ~(fair | unfair)
            status[unfair] = STATUS_UNFAIR
            status[tested & fair_na & ~np.isnan(p_adj)] = STATUS_INCONCLUSIVE
        for name, arr in (
            ("attribute", attr_values),
            ("group", labels),
            ("metric", np.full(len(n), metric, dtype=object)),
            ("value", values),
            ("lower", lower),
            ("upper", upper),
            ("numerator", num.astype(np.float64) if metric in PROPORTIONS else nan),
            ("denominator", den.astype(np.float64) if metric in PROPORTIONS else nan),
            ("n", n),
            ("reference_group", np.where(has_ref, labels[safe_ref], None)),
            ("reference_value", ref_value),
            ("disparity_ratio", np.where(compared, ratio, np.nan)),
            ("difference_pp", np.where(compared, diff, np.nan)),
            ("z", np.where(tested, z, np.nan)),
            ("p_value", np.where(tested, p_value, np.nan)),
            ("p_adjusted", p_adj),
            ("fair", fair),
            ("fair_na", fair_na),
            ("status", status),
        ):
            cols.setdefault(name, []).append(arr)
    data: dict[str, object] = {
        c: np.concatenate(cols[c]) for c in DISPARITY_COLUMNS if c not in ("significant", "fair")
    }
    p_all = data["p_value"]
    assert isinstance(p_all, np.ndarray)
    with np.errstate(invalid="ignore"):
        data["significant"] = pd.arrays.BooleanArray(p_all < alpha, np.isnan(p_all))
    data["fair"] = pd.arrays.BooleanArray(np.concatenate(cols["fair"]),
                                          np.concatenate(cols["fair_na"]))
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
