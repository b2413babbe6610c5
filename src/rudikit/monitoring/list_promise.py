"""What a temporal project's production lists were promised and how the realised precision of
one list is judged against it (:mod:`rudikit.monitoring.list_monitor`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from scipy import stats
from sqlalchemy.engine import Engine

from rudikit.monitoring.alerts import Alert
from rudikit.store.queries import evaluations as evaluations_q
from rudikit.store.queries import runs as runs_q


def naive_days(values: Any) -> pd.Series:
    """Naive UTC days (the store gives aware or naive datetimes depending on the backend)."""
    return pd.to_datetime(pd.Series(values), utc=True).dt.tz_convert(None).dt.normalize()


@dataclass
class Promise:
    """What the model group's test as-of dates achieved: test date -> precision@k."""

    model_group_id: int
    k: int
    values: pd.Series

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def sd(self) -> float:
        return float(self.values.std(ddof=1)) if len(self.values) > 1 else float("nan")

    @property
    def low(self) -> float:
        return float(self.values.min())


def promise(engine: Engine, model_group_id: int, k: int) -> Promise | None:
    """Precision@``k`` per test as-of date of the group's fitted models (``<k>_abs@<date>``, or
    ``<k>_abs`` for a model tested on one date, its ``test_start``); the newest fit wins."""
    models = runs_q.models_of_group(engine, model_group_id)
    if models.empty:
        return None
    found = evaluations_q.top_k_precision(engine, models["id"].tolist(), k)
    if found.empty:
        return None
    starts = dict(zip(models["id"], naive_days(models["test_start"]), strict=True))
    dated = found["parameter"].str.contains("@")
    tested_on = found.loc[dated, "parameter"].str.split("@").str[1].to_numpy()
    per_date = found[dated].assign(date=naive_days(tested_on).to_numpy())
    single = found[~dated & ~found["model_id"].isin(per_date["model_id"])]
    single = single.assign(date=[starts.get(m) for m in single["model_id"]])
    both = pd.concat([per_date, single]).dropna(subset=["date", "value"])
    both = both.sort_values("model_id").drop_duplicates("date", keep="last").sort_values("date")
    if both.empty:
        return None
    return Promise(model_group_id, k, pd.Series(both["value"].to_numpy(dtype=float),
                                                index=pd.DatetimeIndex(both["date"])))


def precision(labels: pd.Series) -> tuple[float, int, int]:
    """(precision, labelled, positives) of the listed officers' labels (missing left out)."""
    known = labels.dropna()
    positives = int(known.sum())
    return (positives / len(known) if len(known) else float("nan")), len(known), positives


def precision_drop(row: dict[str, Any], promised: Promise, alpha: float) -> Alert | None:
    """The alert of a matured list whose model top k (by score, cool-off or not, as the test
    dates were measured) has a precision significantly below the lowest test-date precision
    (one-sided exact binomial test); the p-value goes into ``row``.

    Officers given an intervention stay in: leaving them out selects against the top of the
    ranking, which reviewers take first, and lowers precision whatever the intervention did
    (on the CPDB rehearsal, whose data no intervention changed, 0.46 became 0.31). Keeping
    them lowers it only when interventions work, so the alert says how many there were. The
    list supervisors see skips officers in their cool-off and so reaches further down the
    ranking than any test list did: its precision is reported, not tested."""
    n, hits, low = row["model_labelled"], row["model_positives"], promised.low
    if not n or low <= 0:
        return None
    p_value = float(stats.binomtest(hits, n, low, alternative="less").pvalue)
    row["p_value"] = p_value
    if p_value >= alpha:
        return None
    treated = row["model_intervened"]
    return Alert("performance", f"top-{row['k']} list", "precision_at_k", hits / n, low,
                 "critical", row["date"], f"the list of {row['date']}: {hits} of the model's "
                 f"top {n} officers had the outcome ({hits / n:.0%}), below every test date of "
                 f"model group {promised.model_group_id} (lowest {low:.0%}, mean "
                 f"{promised.mean:.0%}; binomial p = {p_value:.2g})"
                 + (f"; {treated} of them were given an intervention, which lowers precision "
                    "when it works" if treated else ""))
