"""The figures of a monitor window's cases with an outcome, computed by the database
(:func:`rudikit.monitoring.window_outcomes.window_outcomes` over
:mod:`rudikit.store.queries.monitor_counts`), against scikit-learn and the old computation
on the cases' rows, on SQLite and PostgreSQL: a store with tied scores, missing segment
values, a segment of one class and periods crossing week and month boundaries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import deployed_parents
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from rudikit.config.fairness import Fairness, FairnessRequirement
from rudikit.monitoring.performance import Realised
from rudikit.monitoring.window_outcomes import window_outcomes
from rudikit.store import production_tables as pt
from rudikit.store.engine import open_store
from rudikit.store.production_inputs import PREFIX, InputSpec, ensure_inputs_table
from rudikit.store.queries import monitor_counts as mc
from tests.test_monitor_counts import assert_same_outcomes, outcomes_of_rows

THRESHOLD, K = 0.6, 25
START = datetime(2020, 1, 20, tzinfo=UTC)  # a Monday; the rows run to 12 February
LO, HI = datetime(2020, 1, 22, 7, tzinfo=UTC), datetime(2020, 2, 11, 9, tzinfo=UTC)
SPEC = InputSpec((("grp", "text"), ("seg", "text"), ("when", "time"), ("x", "number")), "when")
REQUIREMENTS = [
    FairnessRequirement(name="precision by grp per seg", metric="precision", unit="seg",
                        compare="grp", max_gap_pp=1, min_size=5),
    FairnessRequirement(name="recall across seg", metric="recall", unit="seg", max_gap_pp=1,
                        min_size=5),
    FairnessRequirement(name="selection rate across grp:x", metric="selection_rate",
                        unit=["grp", "x"], max_gap_pp=1, min_size=5)]


def _cases(n: int = 2400, seed: int = 7) -> pd.DataFrame:
    """Cases over three weeks and a half: half the scores on a grid of 0.02 (ties, some at
    the threshold), half nearly distinct (an ROC curve of more than 200 corners), those over
    0.8 on a grid of 0.1 (ties at the k-th place); a tenth
    without a segment, segment ``one`` all positive; an outcome for 70%."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.35
    score = np.clip(0.25 * y + rng.beta(2, 3, n), 0, 1)
    score = np.where(rng.random(n) < 0.5, np.round(score * 50) / 50, np.round(score, 5))
    score = np.where(score > 0.8, np.round(score, 1), score)  # the top k is in ties
    seg = rng.choice(["a", "b", "c", "one"], n, p=[0.4, 0.3, 0.25, 0.05]).astype(object)
    seg[rng.random(n) < 0.1] = None
    y[seg == "one"] = True
    x = rng.integers(0, 3, n).astype(float)
    x[rng.random(n) < 0.05] = np.nan
    seconds = np.sort(rng.choice(24 * 86_400, n, replace=False))
    return pd.DataFrame({"when": [START + timedelta(seconds=int(s)) for s in seconds],
                         "seg": seg, "grp": rng.choice(["p", "q"], n), "x": x,
                         "score": score, "outcome": y.astype(int),
                         "known": rng.random(n) < 0.7})


#: Inputs named as the aggregate queries' own columns and labels.
RENAMED = {"grp": "flagged", "seg": "n", "x": "key", "when": "when"}


def _window(store: tuple[str, str | None], names: dict[str, str]
            ) -> Iterator[tuple[Engine, object, pd.DataFrame]]:
    """The store with a deployed model whose production cases are :func:`_cases` (written
    as the service writes them: its side table filled by the trigger), the side table; the
    inputs named ``names[...]``."""
    url, schema = store
    engine = open_store(url, schema=schema)
    cases = _cases()
    parents = deployed_parents(engine, START, THRESHOLD, len(cases))
    model, deployment, token = parents["model"], parents["deployment"], parents["token"]
    spec = InputSpec(tuple((names[name], kind) for name, kind in SPEC.inputs), names["when"])
    with engine.begin() as conn:
        table = ensure_inputs_table(conn, model, spec)
        rows = [{"observation_id": f"o{i}", "request_id": "r1", "deployment_id": deployment,
                 "model_id": model, "payload_hash": "h", "score": float(c.score),
                 "threshold": THRESHOLD, "decision": bool(c.score >= THRESHOLD),
                 "created_at": c.when + timedelta(hours=1),
                 "features": {names["when"]: c.when.isoformat(), names["grp"]: c.grp,
                              names["seg"]: None if pd.isna(c.seg) else c.seg,
                              names["x"]: None if np.isnan(c.x) else c.x}}
                for i, c in enumerate(cases.itertuples())]
        conn.execute(insert(pt.production_predictions), rows)
        ids = dict(conn.execute(select(pt.production_predictions.c.observation_id,
                                       pt.production_predictions.c.id)).all())
        conn.execute(insert(pt.outcomes), [
            {"prediction_id": ids[f"o{i}"], "observation_id": f"o{i}", "outcome": int(c.outcome),
             "token_id": token, "recorded_at": c.when + timedelta(days=1)}
            for i, c in enumerate(cases.itertuples()) if c.known])
    yield engine, table, cases
    engine.dispose()


@pytest.fixture
def window(store) -> Iterator[tuple[Engine, object, pd.DataFrame]]:
    yield from _window(store, {name: name for name in RENAMED})


@pytest.fixture
def renamed_window(store) -> Iterator[tuple[Engine, object, pd.DataFrame]]:
    yield from _window(store, RENAMED)


def _project(period: str, requirements: list[FairnessRequirement]) -> SimpleNamespace:
    """What :func:`window_outcomes` reads of a project."""
    return SimpleNamespace(
        monitoring=SimpleNamespace(segments=["seg", "x", "grp"], performance_period=period,
                                   stability=SimpleNamespace(k=K), min_outcomes=1),
        fairness=Fairness(requirements=requirements))


def _sklearn(frame: pd.DataFrame) -> Realised:
    """The independent oracle of one set of cases' figures."""
    y, score = frame["outcome"].to_numpy(), frame["score"].to_numpy()
    flagged = (score >= THRESHOLD).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, flagged, labels=[0, 1]).ravel()
    both = len(np.unique(y)) == 2
    return Realised(len(y), int(y.sum()), tp, fp, fn, tn,
                    precision_score(y, flagged, zero_division=np.nan),
                    recall_score(y, flagged, zero_division=np.nan),
                    f1_score(y, flagged, zero_division=np.nan),
                    roc_auc_score(y, score) if both else np.nan,
                    average_precision_score(y, score) if y.any() else np.nan)


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_the_databases_figures_are_the_rows_figures(window) -> None:
    """Overall and per segment (scikit-learn), the 200-point ROC curve, precision@k per day,
    ISO week and month (ties at the cut) and the fairness requirements (the rows' old
    computation, a roc_auc requirement read per score) to 1e-9, for the whole window (over
    200 corners: the curve is thinned; four weeks, two months) and for 40 hours of it."""
    engine, table, cases = window
    known = cases[cases["known"]]
    columns = ["seg", "x", "grp"]
    auc = FairnessRequirement(name="auc across seg", metric="roc_auc", unit="seg",
                              max_gap_pp=1, min_size=5)
    short = LO + timedelta(hours=40)
    for period, requirements, periods in (("day", REQUIREMENTS, (21, 2)),
                                          ("week", [*REQUIREMENTS, auc], (4, 1)),
                                          ("month", REQUIREMENTS, (2, 1))):
        project = _project(period, requirements)
        for hi, n_periods in zip((HI, short), periods, strict=True):
            rows = known[(known["when"] > LO) & (known["when"] <= hi)]
            with engine.connect() as conn, mc.labelled_cases(
                    conn, table, columns, mc.epoch_us(LO), mc.epoch_us(hi)) as labelled_cases:
                got = window_outcomes(conn, labelled_cases, project, THRESHOLD, columns)
            labelled = rows.rename(columns={"when": "event_time"})[
                ["event_time", *columns, "score", "outcome"]].reset_index(drop=True)
            assert_same_outcomes(got, outcomes_of_rows(project, THRESHOLD, labelled))
            assert got.n == len(rows) > 0 and len(got.over_time) == n_periods
            assert got.fairness is not None and len(got.fairness) == len(requirements)
            assert len(got.roc["fpr"]) == 200 if hi == HI else 0 < len(got.roc["fpr"]) < 200
            # the figures themselves from scikit-learn
            keys = rows["seg"].astype("string").fillna("(missing)")
            expected = [_sklearn(rows), *(_sklearn(part) for _, part in
                                          rows.groupby(keys, sort=True))]
            for a, b in zip([got.realised, *got.segments["seg"].values()], expected,
                            strict=True):
                for (name, x), y in zip(a.as_dict().items(), b.as_dict().values(),
                                        strict=True):
                    assert x == pytest.approx(y, abs=1e-9, nan_ok=True), name
            if hi == HI:
                assert "(missing)" in got.segments["seg"] and "1.0" in got.segments["x"]
                assert np.isnan(got.segments["seg"]["one"].roc_auc)  # one class
                # ties straddle the k-th place: an expected value, no whole share of k
                assert any(round(p * K) != p * K for p in got.over_time["precision_at_k"])
    with engine.connect() as conn, mc.labelled_cases(  # the cases the figures are built on
            conn, table, ["seg"], mc.epoch_us(LO), mc.epoch_us(HI)) as labelled_cases:
        stored = conn.execute(select(labelled_cases.c[PREFIX + "seg"])).all()
    assert len(stored) == len(known[(known["when"] > LO) & (known["when"] <= HI)])


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_inputs_named_as_the_queries_columns_give_the_same_figures(renamed_window) -> None:
    """Inputs named ``n``, ``flagged`` and ``key`` (names the queries and their frames use
    themselves) as segments and fairness columns: the same figures as the rows give."""
    engine, table, cases = renamed_window
    auc = FairnessRequirement(name="auc across seg", metric="roc_auc", unit="seg",
                              max_gap_pp=1, min_size=5)
    known = cases[cases["known"] & (cases["when"] > LO) & (cases["when"] <= HI)]
    labelled = known.rename(columns={**RENAMED, "when": "event_time"})[
        ["event_time", "n", "key", "flagged", "score", "outcome"]].reset_index(drop=True)
    for requirements in (REQUIREMENTS, [*REQUIREMENTS, auc]):
        project = _project("week", [r.model_copy(update={
            "unit": [RENAMED[c] for c in r.unit] if isinstance(r.unit, list) else RENAMED[r.unit],
            "compare": r.compare and RENAMED[r.compare]}) for r in requirements])
        project.monitoring.segments = ["n", "key", "flagged"]
        columns = ["n", "key", "flagged"]
        with engine.connect() as conn, mc.labelled_cases(
                conn, table, columns, mc.epoch_us(LO), mc.epoch_us(HI)) as labelled_cases:
            got = window_outcomes(conn, labelled_cases, project, THRESHOLD, columns)
        assert got.fairness is not None and len(got.segments) == 3
        assert_same_outcomes(got, outcomes_of_rows(project, THRESHOLD, labelled))
