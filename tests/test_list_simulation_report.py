"""The RUDI guide's list simulation (k of 100 drawn cases, 100 repeats) stored by ``rudi run``
for the chosen model and its mitigated group, and shown in the run report with the top of the
ranked list and each person's reasons. Checked on a hand-computable case and against a
loop-by-loop recomputation from the stored predictions and the data's attributes."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sqlalchemy import select

from rudikit.config import Fairness, load_project
from rudikit.data.sources import unify
from rudikit.fairness.list_simulation import list_simulation_metrics, list_size
from rudikit.features.labels import make_label
from rudikit.reports.run_report import write_run_report_and_cards
from rudikit.run.develop import run_project
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from rudikit.store.queries.evaluations import REFIT_OF
from tests.conftest import example_config, write_project

ATTRIBUTE = "officer_defined_ethnicity"
EXTRA = "self_defined_ethnicity"  # not an input of the example


def test_list_size_follows_the_operating_point() -> None:
    def size(at: dict, rows: int = 1000) -> int | None:
        return list_size(Fairness(at=at), rows)

    assert size({"top_pct": 10}) == 10
    assert size({"top_pct": 0.1}) == 1  # never an empty list
    assert size({"top_k": 50}) == 5  # 50 of 1000 rows: 5 of every 100
    assert size({"top_k": 5000}) == 100
    assert size({"threshold": 0.5}) is None


def test_a_group_scored_above_the_other_fills_every_list() -> None:
    """Group A (half the rows, all positive) scores above every B row: with 100 draws there
    are (all but surely, p < 1e-16) at least 10 A cases, so every list of 10 is all A."""
    rng = np.random.default_rng(1)
    groups = np.repeat(["A", "B"], 500)
    score = np.r_[rng.uniform(0.6, 1.0, 500), rng.uniform(0.0, 0.5, 500)]
    y = (groups == "A").astype(int)
    metrics = list_simulation_metrics(Fairness(attributes=["g"], at={"top_pct": 10}),
                                      pd.DataFrame({"g": groups}), y, score, seed=0)
    got = {(m.metric, m.parameter): m for m in metrics}
    precision = got[("list_precision", "10_of_100")]
    assert (precision.value, precision.lower, precision.upper, precision.n) == (1, 1, 1, 100)
    a, b = got[("list_share", "g=A")], got[("list_share", "g=B")]
    assert (a.value, a.lower, a.upper) == (1, 1, 1) and (b.value, b.lower, b.upper) == (0, 0, 0)
    pool_a, pool_b = got[("list_pool_share", "g=A")].value, got[("list_pool_share", "g=B")].value
    assert pool_a + pool_b == pytest.approx(1)
    assert abs(pool_a - 0.5) < 0.03  # 10,000 draws: standard error 0.005
    # a threshold is not a list: nothing to simulate
    assert list_simulation_metrics(Fairness(attributes=["g"]), pd.DataFrame({"g": groups}),
                                   y, score, seed=0) == []


def loop_simulation(score: np.ndarray, groups: np.ndarray, y: np.ndarray, k: int, seed: int
                    ) -> tuple[float, dict[str, float], dict[str, float]]:
    """One list at a time with Python's sort (ties in draw order), from the seeded draws
    documented by ``simulate_lists``: (mean precision, mean share of the list, of the pool)."""
    draws = np.random.default_rng(seed).integers(0, len(score), size=(100, 100))
    precision, listed, pooled = [], [], []
    for draw in draws:
        top = sorted(range(len(draw)), key=lambda j: (-score[draw[j]], j))[:k]
        precision.append(sum(y[draw[j]] for j in top) / k)
        listed += [groups[draw[j]] for j in top]
        pooled += [groups[i] for i in draw]
    share = {g: listed.count(g) / len(listed) for g in set(groups)}
    pool = {g: pooled.count(g) / len(pooled) for g in set(groups)}
    return float(np.mean(precision)), share, pool


@pytest.fixture
def compared_run(store: tuple[str, str | None], tmp_path: Path) -> tuple[Path, str, str | None]:
    """A run whose fairness operating point is the top 10%, with a mitigated group."""
    url, schema = store
    evaluation = example_config()["evaluation"] | {"bootstrap": 0}
    fairness = {"attributes": [ATTRIBUTE], "min_group_size": 50, "at": {"top_pct": 10},
                "mitigation": {"attributes": [ATTRIBUTE], "constraint": "demographic_parity",
                               "objective": "precision_at_k", "tolerance": 0.05}}
    folder = write_project(tmp_path / "proj", evaluation=evaluation, fairness=fairness,
                           models=[{"algorithm": "logistic_regression", "params": {"C": [1.0]}},
                                   {"algorithm": "lightgbm",
                                    "params": {"n_estimators": 40, "num_leaves": 7}},
                                   # an experiment: the same model reading one more column
                                   {"algorithm": "lightgbm", "add_categorical": [EXTRA],
                                    "selectable": False,
                                    "params": {"n_estimators": 40, "num_leaves": 7}}])
    run_project(folder, url=url, schema=schema, write_report=write_run_report_and_cards)
    return folder, url, schema


def table_cells(page: str, table: str) -> list[list[str]]:
    """The text of each cell of each row of the table with id ``table``."""
    body = page[page.index(f'id="{table}"'):]
    body = body[:body.index("</table>")]
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
             for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_report_shows_the_stored_simulation_and_it_matches_a_recomputation(compared_run
                                                                           ) -> None:
    folder, url, schema = compared_run
    engine = open_store(url, folder, schema=schema)
    with engine.connect() as conn:
        models = pd.DataFrame(conn.execute(
            select(t.models.c.id, t.models.c.selected, t.models.c.split,
                   t.model_groups.c.algorithm).join(t.model_groups)).mappings().all())
        chosen = int(models.loc[models["selected"], "id"].iloc[0])
        mitigated = int(models.loc[models["algorithm"].str.startswith("mitigated_"),
                                   "id"].iloc[0])
        preds = pd.DataFrame(conn.execute(select(t.predictions).order_by(t.predictions.c.id))
                             .mappings().all())
        evals = pd.DataFrame(conn.execute(select(t.evaluations).where(
            t.evaluations.c.metric.like("list%"))).mappings().all())
        reasons = pd.DataFrame(conn.execute(select(t.individual_importances).where(
            t.individual_importances.c.model_id == chosen)).mappings().all())
    project = load_project(folder)
    frame, _ = unify(project, folder)
    _, keep = make_label(frame, project.label)
    ethnicity = (frame.loc[keep].set_index(project.data.entity_id)[ATTRIBUTE]
                 .fillna("(missing)").astype(str))
    # only the selection split's models (and the mitigated one) are simulated
    on_selection = set(models.loc[models["split"] == project.selection_split, "id"])
    assert set(evals["model_id"]) == on_selection
    page = (folder / ".rudi" / "reports" / "run-1.html").read_text(encoding="utf-8")
    rows = table_cells(page, "list-simulation")
    assert "chosen:" in rows[0][2] and "mitigated:" in rows[0][5]
    for column, model_id in enumerate([chosen, mitigated]):
        mine = preds[preds["model_id"] == model_id]
        groups = ethnicity.loc[mine["entity_id"]].to_numpy()
        precision, share, pool = loop_simulation(mine["score"].to_numpy(), groups,
                                                 mine["label"].to_numpy(), 10, seed=0)
        stored = evals[evals["model_id"] == model_id].set_index(["metric", "parameter"])["value"]
        assert stored[("list_precision", "10_of_100")] == pytest.approx(precision, abs=1e-12)
        assert rows[1][2 + column].startswith(f"{precision:.3f}")
        for row in rows[2:]:
            group = row[0].removeprefix(f"{ATTRIBUTE}: ")
            parameter = f"{ATTRIBUTE}={group}"
            assert stored[("list_share", parameter)] == pytest.approx(share[group], abs=1e-12)
            assert stored[("list_pool_share", parameter)] == pytest.approx(pool[group],
                                                                           abs=1e-12)
            listed, list_share, rate = row[2 + 3 * column:5 + 3 * column]
            assert row[1] == f"{pool[group]:.3f}"
            assert listed.startswith(f"{share[group] * 10:.2f}")
            assert list_share == f"{share[group]:.3f}"
            assert rate == f"{share[group] * 10 / (pool[group] * 100):.3f}"
        assert {r[0].removeprefix(f"{ATTRIBUTE}: ") for r in rows[2:]} == set(share)

    # the top of the ranked list: the chosen model's highest scores, each with its reasons
    ranked = table_cells(page, "ranked-list")[1:]
    best = preds[preds["model_id"] == chosen].sort_values(["rank_abs", "id"]).head(len(ranked))
    assert len(ranked) == 20
    assert [r[1] for r in ranked] == best["entity_id"].tolist()
    assert [r[2] for r in ranked] == [f"{s:.3f}" for s in best["score"]]
    for row in ranked:
        mine = reasons[reasons["entity_id"] == row[1]].sort_values("rank")
        assert len(mine) > 0
        expected = "; ".join(f"{r.feature} = {'missing' if pd.isna(r.value) else r.value}: "
                             f"{r.contribution:+.3f}" for r in mine.itertuples())
        assert row[4] == expected


def test_report_compares_the_chosen_model_with_the_experiment_and_the_mitigated_group(
        compared_run) -> None:
    """The 'Compared with' table: every figure is the stored one, the AUC difference equals
    scikit-learn's on the stored predictions, and a group that adds an input is an experiment."""
    folder, url, schema = compared_run
    engine = open_store(url, folder, schema=schema)
    with engine.connect() as conn:
        models = pd.DataFrame(conn.execute(
            select(t.models.c.id, t.models.c.selected, t.models.c.split,
                   t.models.c.model_group_id, t.model_groups.c.algorithm,
                   t.model_groups.c.features)
            .join(t.model_groups)).mappings().all())
        preds = pd.DataFrame(conn.execute(select(t.predictions)).mappings().all())
        evals = pd.DataFrame(conn.execute(select(t.evaluations)).mappings().all())
    page = (folder / ".rudi" / "reports" / "run-1.html").read_text(encoding="utf-8")
    rows = {r[1].split(":")[0].split(" (")[0]: r for r in table_cells(page, "comparisons")[1:]}
    chosen = models[models["selected"]].iloc[0]
    split = models[models["split"] == chosen["split"]]
    with_extra = split[split["features"].map(lambda f: EXTRA in f["categorical"])].iloc[0]
    mitigated = split[split["algorithm"].str.startswith("mitigated_")].iloc[0]
    assert set(rows) == {"chosen", "experiment", "mitigated"}
    assert rows["experiment"][1] == f"experiment: adds {EXTRA}"

    def auc(model_id: int) -> float:
        mine = preds[preds["model_id"] == model_id]
        return skm.roc_auc_score(mine["label"], mine["score"])

    for role, model in (("chosen", chosen), ("experiment", with_extra),
                        ("mitigated", mitigated)):
        row = rows[role]
        refit = " refit" if ((evals["model_id"] == model["id"])
                             & (evals["metric"] == REFIT_OF)).any() else ""
        assert row[0] == f"#{model['model_group_id']} {model['algorithm']}{refit}"
        assert row[2].startswith(f"{auc(model['id']):.3f}")
        if role != "chosen":
            assert row[3] == f"{auc(model['id']) - auc(chosen['id']):+.3f}"
        stored = evals[evals["model_id"] == model["id"]].set_index(["metric", "parameter"])
        assert row[4] == f"{stored.loc[('list_precision', '10_of_100'), 'value']:.3f} (10 of 100)"
        for part in row[5].removeprefix(f"{ATTRIBUTE}: ").split(", "):
            group, _, rate = part.rpartition(" ")
            share = stored.loc[("list_share", f"{ATTRIBUTE}={group}"), "value"]
            pool = stored.loc[("list_pool_share", f"{ATTRIBUTE}={group}"), "value"]
            assert pool >= 0.05 and rate == f"{share * 10 / (pool * 100):.3f}"
