"""The model grid computed elsewhere, stored here: the EIS example's temporal grid on a tiny
synthetic force gives the same stored figures (to 1e-12, in the same order) when its fits run
in this process, on two local worker processes (joblib's loky) or on a real two-worker Dask
cluster; a worker that dies mid-fit is replaced and the run still stores the same figures;
and only the driver ever opens a connection to the store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event, select
from sqlalchemy.pool import Pool

from rudikit.config import Execution, Fairness, ProjectError, parse_project
from rudikit.config.base import read_yaml
from rudikit.models.temporal import prepare
from rudikit.run.engine import GridEntry, SplitRows
from rudikit.run.execution import ordered_results, task_threads
from rudikit.run.temporal import ListScoring, TemporalLists, fit_lists
from rudikit.store import results
from rudikit.store import tables as t
from rudikit.store.engine import open_store
from tests.conftest import EXAMPLE
from tests.test_temporal import experiment, synthetic_tables

STORED = [t.models, t.predictions, t.evaluations, t.feature_importances, t.fairness_audits,
          t.fairness_requirements]
#: Differ between two runs of the same fits by design: when and how long, where, and the
#: artefact's hash (skops names each object in the file by its id(), a memory address).
VOLATILE = {"created_at", "train_seconds", "artefact_path", "artefact_hash"}
FAIRNESS = Fairness(attributes=["age_band"], min_group_size=10, at={"top_k": 20},
                    requirements=[{"name": "listed share between age bands",
                                   "metric": "selection_rate", "compare": ["age_band"],
                                   "max_gap_pp": 50, "min_size": 10}])


@pytest.fixture(scope="module")
def grid() -> tuple[Any, dict[str, pd.DataFrame], Any]:
    """The EIS example's grid (a baseline, LightGBM, a logistic regression and a small forest)
    on 2 yearly splits of 240 synthetic officers, features built once."""
    config = experiment(test_from="2011-01-01", models=[
        *experiment().model_dump(mode="json")["models"],
        {"algorithm": "random_forest", "params": {"n_estimators": 20, "min_samples_leaf": 5,
                                                  "max_samples": 0.5}}])
    tables = synthetic_tables()
    return config, tables, prepare(config, tables)


def run_grid(grid: Any, folder: Path, execution: Execution | None,
             scoring: Any = None) -> pd.DataFrame:
    """One run of the grid into a fresh store in ``folder``; every stored row, in id order."""
    config, tables, data = grid
    engine = open_store(f"sqlite:///{folder / 'rudi.db'}")
    run_id = results.start_run(engine, config.name, "h", {}, 0, "synthetic")
    lists = TemporalLists(config, tables, folder / "models", FAIRNESS, None, data)
    lists.prepare(lambda _: None)
    if scoring is not None:
        lists.scoring = lambda: scoring(lists)  # type: ignore[method-assign]
    fit_lists(lists, engine, run_id, execution=execution)
    stored = {}
    with engine.connect() as conn:
        for table in STORED:
            columns = [c for c in table.c if c.name not in VOLATILE]
            query = select(*columns).order_by(table.c.id)
            if table is t.evaluations:  # the fit's duration is stored as an evaluation too
                query = query.where(table.c.metric != "train_seconds")
            stored[table.name] = pd.DataFrame(conn.execute(query).mappings().all())
    engine.dispose()
    return stored


def assert_same_figures(one: dict[str, pd.DataFrame], other: dict[str, pd.DataFrame]) -> None:
    """Same rows in the same order; numbers equal to 1e-12, everything else exactly."""
    for name, frame in one.items():
        assert len(frame) > 0 or name == "feature_importances", name
        assert frame.shape == other[name].shape, name
        for column in frame.columns:
            a, b = frame[column], other[name][column]
            if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
                np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=0,
                                           atol=1e-12, err_msg=f"{name}.{column}")
            else:
                assert a.tolist() == b.tolist(), f"{name}.{column}"


@pytest.fixture(scope="module")
def in_process(grid: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    return run_grid(grid, tmp_path_factory.mktemp("inline"), Execution(workers=1))


@dataclass(frozen=True)
class DiesOnce:
    """The project's scoring, except that the first fit to start kills its worker process
    (the marker file says whether one has), as a machine that runs out of memory would."""

    scoring: ListScoring
    marker: Path

    def build(self, entry: GridEntry) -> tuple[Any, dict[str, Any]]:
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return self.scoring.build(entry)
        os._exit(17)

    def evaluate(self, rows: SplitRows, score: np.ndarray, on_validation: bool) -> Any:
        return self.scoring.evaluate(rows, score, on_validation)

    def assess(self, rows: SplitRows, score: np.ndarray, on_validation: bool) -> Any:
        return self.scoring.assess(rows, score, on_validation)

    def importances(self, pipeline: Any) -> Any:
        return self.scoring.importances(pipeline)


def dies_once(marker: Path) -> Any:
    return lambda lists: DiesOnce(ListScoring(lists.experiment, lists.fairness,
                                              lists.data.feature_config), marker)


def test_two_local_workers_store_what_one_process_stores(grid, in_process, tmp_path) -> None:
    stored = run_grid(grid, tmp_path, Execution(workers=2))
    assert len(in_process["models"]) == 4 * 2  # every group on every split
    assert_same_figures(in_process, stored)


def test_a_local_worker_that_dies_is_replaced_and_the_figures_do_not_change(
        grid, in_process, tmp_path) -> None:
    marker = tmp_path / "died"
    stored = run_grid(grid, tmp_path, Execution(workers=2), dies_once(marker))
    assert marker.exists()  # a worker did die
    assert_same_figures(in_process, stored)


def test_retries_zero_fails_the_run_with_a_clear_error(grid, tmp_path) -> None:
    from rudikit.run.execution import ExecutionError

    with pytest.raises(ExecutionError, match=r"worker process died 1 times.*retries: 0"):
        run_grid(grid, tmp_path, Execution(workers=2, retries=0), dies_once(tmp_path / "m"))


def test_threads_per_task_divide_the_cores_between_workers(monkeypatch) -> None:
    from rudikit.run import execution as ex

    monkeypatch.setattr(ex, "_cores", lambda: 4)
    # the driver fitting alone follows the same rule: every core's thread, not "no limit"
    assert task_threads(Execution(workers=1)) == 4
    assert task_threads(Execution(workers=1, threads_per_task=1)) == 1  # the one-core run
    assert task_threads(Execution(workers=2)) == 2
    assert task_threads(Execution(workers=3)) == 1
    assert task_threads(Execution(workers=8)) == 1  # at least one
    assert task_threads(Execution()) == 1  # auto: a worker per core
    assert task_threads(Execution(backend="dask")) == 1
    assert task_threads(Execution(workers=2, threads_per_task=3)) == 3


def _limits(*, threads: int | None) -> tuple[int | None, int, int]:
    """The threads a task was given, its BLAS pools' largest thread count, and the forest
    ``n_jobs`` :func:`rudikit.models.estimators.limit_jobs` leaves for it."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_info

    from rudikit.models.estimators import limit_jobs

    forest = Pipeline([("model", RandomForestClassifier(n_jobs=-1))])
    limit_jobs(forest, threads)
    return threads, max(p["num_threads"] for p in threadpool_info()), forest[-1].n_jobs


def test_the_driver_running_the_fits_alone_holds_them_to_their_threads(monkeypatch) -> None:
    from rudikit.run import execution as ex

    monkeypatch.setattr(ex, "_cores", lambda: 2)
    [one] = ex.ordered_results(Execution(workers=1, threads_per_task=1), _limits, [()])
    assert one == (1, 1, 1)
    [two] = ex.ordered_results(Execution(workers=1), _limits, [()])
    assert two[0] == 2 and two[2] == 2
    # The automatic rule limits BLAS too (on a one-core box the driver's pools drop to one
    # thread, which a machine with two or more cores would not do unasked).
    monkeypatch.setattr(ex, "_cores", lambda: 1)
    [auto_one] = ex.ordered_results(Execution(workers=1), _limits, [()])
    assert auto_one == (1, 1, 1)


def test_execution_settings_are_checked_with_their_key_path(monkeypatch) -> None:
    base = read_yaml(EXAMPLE)  # the stop-and-search example
    for execution, expected in [
            ({"workers": 0}, "execution.workers"),
            ({"backend": "spark"}, "execution.backend"),
            ({"backend": "dask", "scheduler": "host:8786"}, "execution.scheduler"),
            ({"scheduler": "tcp://h:8786"}, "execution: scheduler: only read with backend: dask"),
            ({"retries": -1}, "execution.retries"),
            ({"threads_per_task": 0}, "execution.threads_per_task")]:
        with pytest.raises(ProjectError) as caught:
            parse_project({**base, "execution": execution})
        assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems
    project = parse_project(base)
    assert project.execution == Execution()  # local, a worker per core
    # where the fits ran changes no result, so it is not part of the configuration's hash
    assert parse_project({**base, "execution": {"workers": 2}}).config_hash() \
        == project.config_hash()
    monkeypatch.delenv("RUDI_DASK_SCHEDULER", raising=False)
    with pytest.raises(ValueError, match="execution.scheduler: backend dask needs"):
        Execution(backend="dask").scheduler_address()
    monkeypatch.setenv("RUDI_DASK_SCHEDULER", "tcp://10.0.0.5:8786")
    assert Execution(backend="dask").scheduler_address() == "tcp://10.0.0.5:8786"


# --- On a real Dask cluster -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Any:
    """Two worker processes of one thread each, started here (the test's own cluster)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as local, \
            distributed.Client(local) as client:
        yield local, client


CONNECTIONS: list[int] = []  # the pid of each new connection made in this process


def _count(*_: Any) -> None:
    CONNECTIONS.append(os.getpid())


def _count_connections() -> None:
    """In whichever process runs it: count every new database connection from now on."""
    if not event.contains(Pool, "connect", _count):
        event.listen(Pool, "connect", _count)


def _connections() -> int:
    return len(CONNECTIONS)


def test_a_dask_cluster_stores_what_one_process_stores_and_never_opens_the_store(
        grid, in_process, cluster, tmp_path) -> None:
    local, client = cluster
    client.run(_count_connections)
    before = len(CONNECTIONS)
    _count_connections()
    try:
        stored = run_grid(grid, tmp_path, Execution(backend="dask",
                                                    scheduler=local.scheduler_address))
    finally:
        event.remove(Pool, "connect", _count)
    assert_same_figures(in_process, stored)
    assert len(CONNECTIONS) > before  # the driver wrote the store ...
    assert client.run(_connections) == {w: 0 for w in local.scheduler_info["workers"]}


def test_a_dask_worker_that_dies_is_replaced_and_the_figures_do_not_change(
        grid, in_process, cluster, tmp_path, monkeypatch) -> None:
    local, _ = cluster
    monkeypatch.setenv("RUDI_DASK_SCHEDULER", local.scheduler_address)  # the variable's way
    marker = tmp_path / "died"
    stored = run_grid(grid, tmp_path, Execution(backend="dask"), dies_once(marker))
    assert marker.exists()
    assert_same_figures(in_process, stored)


# --- Longest first, results in order; the chosen model's refits as tasks ----------------------


def _note_start(index: int, log: str, *, threads: int | None) -> int:
    with open(log, "a") as handle:
        handle.write(f"{os.getpid()} {index}\n")
    return index


def test_the_costliest_tasks_start_first_and_results_come_back_in_call_order(tmp_path) -> None:
    from rudikit.run.execution import ordered_results

    log = tmp_path / "started"
    calls = [(i, str(log)) for i in range(8)]
    costs = [1.0, 5.0, 2.0, 0.0, 9.0, 3.0, 7.0, 4.0]
    assert list(ordered_results(Execution(workers=2), _note_start, calls, costs)) == \
        list(range(8))
    by_worker: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        pid, index = line.split()
        by_worker.setdefault(pid, []).append(int(index))
    assert sorted(i for started in by_worker.values() for i in started) == list(range(8))
    for started in by_worker.values():  # each worker took its tasks costliest first
        assert [costs[i] for i in started] == sorted((costs[i] for i in started), reverse=True)


def _square(value: int, *, threads: int | None) -> int:
    return value * value


@pytest.mark.parametrize("where", ["here", "local", "dask"])
def test_the_drivers_own_work_runs_once_while_the_tasks_run(where, cluster) -> None:
    """``meanwhile`` is called once, before the caller has every result: on workers as soon
    as the tasks are out (a pool: when the first finishes; a cluster: once submitted), here
    after the first task."""
    execution = {"here": Execution(workers=1), "local": Execution(workers=2),
                 "dask": Execution(backend="dask", scheduler=cluster[0].scheduler_address)}
    got: list[int] = []
    called_after: list[int] = []
    for value in ordered_results(execution[where], _square, [(i,) for i in range(6)],
                                 [float(i) for i in range(6)],
                                 meanwhile=lambda: called_after.append(len(got))):
        got.append(value)
    assert got == [i * i for i in range(6)]
    assert called_after == ([1] if where == "here" else [0])


def _fails(*_: Any) -> None:
    raise RuntimeError("the driver's own work failed")


@pytest.mark.parametrize("workers", [1, 2])
def test_the_drivers_own_work_failing_lets_every_task_finish_first(workers) -> None:
    """A ``meanwhile`` that raises does not cut the tasks short: every result is handed
    over (and stored by the caller), then its error is raised."""
    got: list[int] = []
    with pytest.raises(RuntimeError, match="own work failed"):
        for value in ordered_results(Execution(workers=workers), _square,
                                     [(i,) for i in range(4)], meanwhile=_fails):
            got.append(value)
    assert got == [0, 1, 4, 9]


def test_seed_perturbation_and_tree_curve_fits_on_workers_give_the_lists_made_here(grid) -> None:
    """Each step's plan run alone, on 2 local workers and one after another here: the same
    lists. The seeds without the grid's fit (``fitted=None``) refit the first seed and then
    score its blocks of dates in ``collect``, a second batch that goes to the workers too."""
    from rudikit.evaluation.stability import trees_tasks
    from rudikit.models.estimators import GridPoint
    from rudikit.models.perturb import perturbed_tasks
    from rudikit.models.seeds import dated_lists, seed_list, seed_tasks
    from rudikit.models.temporal import (
        ENTITY,
        any_task,
        consecutive_dates,
        one_after_another,
        stability_rows,
        training_matrix,
    )
    from rudikit.run.execution import ordered_results

    config, tables, _ = grid
    extra = consecutive_dates(config.splits()[-1].split_time, config.stability.consecutive
                              .model_copy(update={"days": 3, "weeks": 2, "months": 2}))
    data = prepare(config, tables, extra_dates=extra)
    point = GridPoint("random_forest", {"n_estimators": 20, "min_samples_leaf": 5})
    sent: list[Any] = []  # the task function of each call sent to the workers

    def on_workers(fn: Any, calls: Any) -> Any:
        sent.extend(call[0] if fn is any_task else fn for call in calls)
        return ordered_results(Execution(workers=2), fn, calls)

    rows = stability_rows(data, extra_dates=extra)
    here = seed_tasks(data, point, [0, 1], rows).run()
    there = seed_tasks(data, point, [0, 1], rows, run_each=on_workers).run(on_workers)
    assert len(here[1]) == len(extra) > 4  # more than one block of dates
    assert sent.count(seed_list) == 2 and sent.count(dated_lists) > 1
    for one, other in zip(here, there, strict=True):
        assert list(one) == list(other)
        for key in one:
            pd.testing.assert_series_equal(one[key], other[key], rtol=0, atol=1e-12)
    planned = [perturbed_tasks(data, point, 0, rows, resamples=2, tables=["use_of_force"])
               for _ in range(2)]
    (_, refits), (_, refits_there) = planned[0].run(), planned[1].run(on_workers)
    assert [r.parameter for r in refits] == [r.parameter for r in refits_there] == [
        "resample=1", "resample=2", "source=use_of_force"]
    for r, s in zip(refits, refits_there, strict=True):
        assert r.columns == s.columns
        pd.testing.assert_series_equal(r.scores, s.scores, rtol=0, atol=1e-12)
    X_train, y_train, X_test, test = training_matrix(data)
    curve = [trees_tasks(X_train, y_train, X_test, test[ENTITY], n_estimators=[5, 15],
                         seeds=[0, 1, 2], k=20, params={"min_samples_leaf": 5},
                         y_test=test[config.label].to_numpy()).run(each)
             for each in (one_after_another, on_workers)]
    assert curve[0]["jaccard"].nunique() > 1  # the seeds' lists differ: a real comparison
    pd.testing.assert_frame_equal(curve[0].drop(columns="fit_seconds"),
                                  curve[1].drop(columns="fit_seconds"), rtol=0, atol=1e-12)


def test_list_stability_in_one_batch_on_workers_stores_what_one_process_stores(
        grid, cluster, tmp_path) -> None:
    """Every list-stability task (the seed refit, the blocks of dates, the perturbation
    refits, the trees seeds) and the last list's reasons in one batch on 2 workers, the
    longest first and finishing in any order, with the rows list stability reads built while
    the grid fits: the same list_stability, rank_changes and reasons rows as one step after
    another here, each building its own rows."""
    from rudikit.models.temporal import consecutive_dates
    from rudikit.run.lists import last_list_plan, list_stability, prepare_stability
    from rudikit.store import list_tables

    config, tables, _ = grid
    settings = config.stability.model_copy(update={
        "seeds": [0, 1], "n_estimators": [5, 15], "params": {"min_samples_leaf": 5},
        "resamples": 2, "drop_sources": ["use_of_force"],
        "consecutive": config.stability.consecutive.model_copy(
            update={"days": 3, "weeks": 2, "months": 2})})
    config = config.model_copy(update={"stability": settings})
    extra = consecutive_dates(config.splits()[-1].split_time, settings.consecutive)
    data = prepare(config, tables, extra_dates=extra)
    stored, messages = [], []
    dask = Execution(backend="dask", scheduler=cluster[0].scheduler_address)
    for execution in (Execution(workers=1), Execution(workers=2), dask):
        ahead = execution.workers != 1
        folder = tmp_path / f"{execution.backend}{execution.workers}"
        folder.mkdir()
        engine = open_store(f"sqlite:///{folder / 'rudi.db'}")
        run_id = results.start_run(engine, config.name, "h", {}, 0, "synthetic")
        lists = TemporalLists(config, tables, folder / "models", FAIRNESS, None, data)
        lists.prepare(lambda _: None)
        prepared: list[Any] = []

        def build(prepared: list[Any] = prepared, lists: TemporalLists = lists) -> None:
            prepared.append(prepare_stability(data, config, lists.input_columns()))

        fitted = fit_lists(lists, engine, run_id, execution=execution,
                           meanwhile=build if ahead else None)
        assert len(prepared) == ahead  # built once, while the grid ran
        chosen, _ = lists.select(fitted.models, fitted)
        # the last split's LightGBM (the chosen forest has no explanation method)
        explained = next(m for m in reversed(fitted.models) if m.algorithm == "lightgbm")
        reasons = last_list_plan(data, engine, explained.model_id,
                                 (explained.artefact[0], str(explained.artefact[1])), config)
        if ahead:
            said = list_stability(data, fitted, chosen.model_group_id, engine, run_id,
                                  lambda _: None, execution, rows=prepared[0],
                                  alongside=[reasons]).alongside
        else:
            list_stability(data, fitted, chosen.model_group_id, engine, run_id,
                           lambda _: None, execution)
            said = [reasons.run()]
        messages.append(said)
        with engine.connect() as conn:
            rows = [pd.DataFrame(conn.execute(select(*[c for c in table.c if c.name not in {
                "id", "created_at", "model_id"}]).order_by(table.c.id)).mappings().all())
                for table in (list_tables.list_stability, list_tables.rank_changes,
                              t.individual_importances)]
        engine.dispose()
        rows[0]["details"] = [{k: v for k, v in d.items() if k != "fit_seconds"}
                              for d in rows[0]["details"]]
        stored.append(dict(zip(["list_stability", "rank_changes", "reasons"], rows,
                               strict=True)))
    assert messages[0] == messages[1] == messages[2] and len(messages[0]) == 1, messages
    assert " reasons (" in messages[0][0], messages
    assert set(stored[0]["list_stability"]["kind"]) == {
        "seeds", "bootstrap", "drop_source", "consecutive", "trees"}
    for other in stored[1:]:
        assert_same_figures(stored[0], other)


def test_the_last_lists_reasons_made_on_a_worker_are_the_ones_made_here(grid, cluster,
                                                                        tmp_path) -> None:
    from rudikit.run.lists import last_list_plan

    config, _, data = grid
    run_grid(grid, tmp_path, Execution(workers=1))
    engine = open_store(f"sqlite:///{tmp_path / 'rudi.db'}")
    with engine.connect() as conn:
        model = conn.execute(
            select(t.models.c.id, t.models.c.artefact_hash, t.models.c.artefact_path)
            .join(t.model_groups, t.model_groups.c.id == t.models.c.model_group_id)
            .where(t.model_groups.c.algorithm == "lightgbm")
            .order_by(t.models.c.id.desc())).first()  # the last split's
    reasons = t.individual_importances
    found = []
    dask = Execution(backend="dask", scheduler=cluster[0].scheduler_address)
    for execution in (Execution(workers=1), Execution(workers=2), dask):
        plan = last_list_plan(data, engine, model.id,
                              (model.artefact_hash, str(model.artefact_path)), config)
        # alone_here False: the one task is sent to a worker, as in list stability's batch
        said = plan.run(lambda fn, calls, execution=execution: ordered_results(
            execution, fn, calls, alone_here=False))
        assert " reasons (" in said, said
        with engine.connect() as conn:
            rows = conn.execute(select(reasons.c.entity_id, reasons.c.as_of_date,
                                       reasons.c.feature, reasons.c.contribution,
                                       reasons.c.rank).order_by(reasons.c.id)).all()
        found.append(rows[sum(len(f) for f in found):])
    engine.dispose()
    assert len(found[0]) > 0
    for other in found[1:]:
        assert [r[:3] + r[4:] for r in found[0]] == [r[:3] + r[4:] for r in other]
        np.testing.assert_allclose([r.contribution for r in found[0]],
                                   [r.contribution for r in other], rtol=0, atol=1e-12)


def _imported(module: str, *, threads: int | None) -> tuple[int, bool]:
    import sys

    return os.getpid(), module in sys.modules


def test_workers_started_ahead_import_what_they_are_told_and_then_run_the_tasks() -> None:
    from joblib.externals.loky import get_reusable_executor

    from rudikit.run import execution as ex

    get_reusable_executor().shutdown(wait=True)  # a fresh pool, so only the warm-up imported
    ex.start_workers(Execution(workers=2), ["tabnanny"])
    assert ex._starting is not None
    answers = list(ex.ordered_results(Execution(workers=2), _imported,
                                      [("tabnanny",)] * 6))
    assert ex._starting is None  # joined before the tasks were sent
    assert any(seen for _, seen in answers)  # the tasks ran on the pool the warm-up started


def _square(x: int, *, threads: int | None) -> int:
    return x * x


def test_released_local_workers_leave_no_worker_process_behind() -> None:
    """After a run's fits the driver stops joblib's idle workers (each holds the memory of
    the fits it ran) rather than leave them to loky's five-minute idle timeout."""
    import psutil

    from rudikit.run.execution import ordered_results, release_local_workers

    def workers() -> list[psutil.Process]:
        return [p for p in psutil.Process().children(recursive=True)
                if "LokyProcess" in " ".join(p.cmdline())]

    two = Execution(workers=2)
    assert list(ordered_results(two, _square, [(i,) for i in range(6)])) == [
        i * i for i in range(6)]
    assert workers()
    release_local_workers(Execution(workers=1))  # nothing of its own to stop
    assert workers()
    release_local_workers(two)
    assert not [p for p in workers() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert list(ordered_results(two, _square, [(3,), (4,)])) == [9, 16]
    release_local_workers(two)


def _pid(*, threads: int | None) -> int:
    return os.getpid()


def test_a_single_task_meant_for_a_worker_runs_on_one() -> None:
    """``alone_here=False``: one task still goes to a worker process (joblib would run a
    one-worker job in this process), and by default a single task runs here."""
    from rudikit.run.execution import ordered_results, release_local_workers

    two = Execution(workers=2)
    assert list(ordered_results(two, _pid, [()], alone_here=False))[0] != os.getpid()
    assert list(ordered_results(two, _pid, [()]))[0] == os.getpid()
    release_local_workers(two)


def test_an_argument_several_tasks_pass_is_sent_to_a_cluster_once() -> None:
    """The objects (by identity) more than one call passes, but plain values, are the ones
    a Dask cluster gets once: a split's rows that each fit reads, the unchanged training
    rows of the refits without a source; a resample, read by one refit, goes with its task."""
    from rudikit.run.execution import _shared

    rows, resample, point = pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [2.0]}), {"a": 1}
    calls = [(point, rows, 0, "lightgbm"), (point, rows, 0, "lightgbm"), (point, resample, 1,
                                                                          "lightgbm")]
    assert _shared(calls) == {id(point): point, id(rows): rows}
    assert _shared([(rows, rows)]) == {}  # twice in one call is still one copy with it
