"""Runs, model groups and the models fitted in them."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Row, Table, select
from sqlalchemy.engine import Connection, RowMapping

from rudikit.store import tables as t
from rudikit.store.queries.common import Bind, connected, frame

#: The model columns the dashboard lists (with the group's algorithm and hyperparameters).
MODEL_COLUMNS = (t.models.c.id, t.models.c.run_id, t.models.c.model_group_id, t.models.c.split,
                 t.models.c.test_start, t.models.c.test_end, t.models.c.train_rows,
                 t.models.c.test_rows, t.models.c.selected, t.models.c.selection_reason,
                 t.models.c.created_at, t.model_groups.c.algorithm,
                 t.model_groups.c.hyperparameters)


def run(bind: Bind, run_id: int) -> RowMapping | None:
    """The row of run ``run_id``, or None."""
    with connected(bind) as conn:
        return conn.execute(select(t.runs).where(t.runs.c.id == run_id)).mappings().one_or_none()


def run_config(bind: Bind, run_id: int) -> dict[str, Any] | None:
    """The configuration run ``run_id`` recorded, or None for an unknown run."""
    with connected(bind) as conn:
        return conn.execute(select(t.runs.c.config).where(t.runs.c.id == run_id)
                            ).scalar_one_or_none()


def newest_run_config(bind: Bind) -> dict[str, Any] | None:
    """The configuration of the newest run (the project as last run), or None."""
    with connected(bind) as conn:
        return conn.execute(select(t.runs.c.config).order_by(t.runs.c.id.desc()).limit(1)
                            ).scalar_one_or_none()


def ids(bind: Bind, table: Table) -> list[int]:
    """Every id of ``table`` (runs, model groups, snapshots...), ascending."""
    with connected(bind) as conn:
        return list(conn.execute(select(table.c.id).order_by(table.c.id)).scalars())


def run_models(bind: Bind, run_id: int) -> pd.DataFrame:
    """The run's models in fit order, with their group's algorithm, hyperparameters and
    features (``group_features``)."""
    return frame(bind, select(t.models, t.model_groups.c.algorithm,
                              t.model_groups.c.hyperparameters,
                              t.model_groups.c.features.label("group_features"))
                 .join(t.model_groups, t.models.c.model_group_id == t.model_groups.c.id)
                 .where(t.models.c.run_id == run_id).order_by(t.models.c.id))


def models_of_run(bind: Bind, run_id: int) -> pd.DataFrame:
    """The model rows of run ``run_id`` in fit order."""
    return frame(bind, select(t.models).where(t.models.c.run_id == run_id)
                 .order_by(t.models.c.id))


def models_of_group(bind: Bind, model_group_id: int) -> pd.DataFrame:
    """Every fit of a model group, over all runs, in fit order."""
    return frame(bind, select(t.models).where(t.models.c.model_group_id == model_group_id)
                 .order_by(t.models.c.id))


def run_groups(bind: Bind, run_id: int) -> pd.DataFrame:
    """Per model of the run: its group id, whether it was selected, the group's algorithm and
    hyperparameters."""
    return frame(bind, select(t.models.c.model_group_id, t.models.c.selected,
                              t.model_groups.c.algorithm, t.model_groups.c.hyperparameters)
                 .join(t.model_groups, t.models.c.model_group_id == t.model_groups.c.id)
                 .where(t.models.c.run_id == run_id).order_by(t.models.c.id))


def selected_group(bind: Bind, run_id: int) -> int | None:
    """The model group of the run's selected model, or None."""
    with connected(bind) as conn:
        return conn.execute(select(t.models.c.model_group_id).where(
            (t.models.c.run_id == run_id) & t.models.c.selected)).scalar_one_or_none()


def model(bind: Bind, model_id: int) -> RowMapping | None:
    """The row of model ``model_id``, or None."""
    with connected(bind) as conn:
        return conn.execute(select(t.models).where(t.models.c.id == model_id)
                            ).mappings().one_or_none()


def model_group(bind: Bind, model_group_id: int) -> RowMapping | None:
    """The row of model group ``model_group_id``, or None."""
    with connected(bind) as conn:
        return conn.execute(select(t.model_groups).where(t.model_groups.c.id == model_group_id)
                            ).mappings().one_or_none()


def model_group_id(conn: Connection, group_key: str) -> int | None:
    """The id of the model group with ``group_key`` (one configuration), or None."""
    return conn.execute(select(t.model_groups.c.id).where(
        t.model_groups.c.group_key == group_key)).scalar_one_or_none()


def deployable_model(bind: Bind, model_group_id: int, model_id: int | None = None
                     ) -> RowMapping | None:
    """``model_id`` if it belongs to the group, else (no id) the group's newest selected
    model, else its newest fit."""
    query = select(t.models).where(t.models.c.model_group_id == model_group_id)
    if model_id is not None:
        query = query.where(t.models.c.id == model_id)
    with connected(bind) as conn:
        return conn.execute(query.order_by(t.models.c.selected.desc(),
                                           t.models.c.created_at.desc(), t.models.c.id.desc())
                            .limit(1)).mappings().one_or_none()


def models_overview(bind: Bind) -> pd.DataFrame:
    """Every model with its group and the start of its run (``run_started``), in fit order."""
    return frame(bind, select(*MODEL_COLUMNS, t.runs.c.started_at.label("run_started"))
                 .join(t.model_groups, t.model_groups.c.id == t.models.c.model_group_id)
                 .join(t.runs, t.runs.c.id == t.models.c.run_id)
                 .order_by(t.models.c.id))


def model_detail(bind: Bind, model_id: int) -> RowMapping | None:
    """One model with its group, artefact hash and training window, or None."""
    with connected(bind) as conn:
        return conn.execute(select(*MODEL_COLUMNS, t.models.c.artefact_hash,
                                   t.models.c.train_start, t.models.c.train_end,
                                   t.models.c.train_seconds)
                            .join(t.model_groups,
                                  t.model_groups.c.id == t.models.c.model_group_id)
                            .where(t.models.c.id == model_id)).mappings().one_or_none()


def group_hyperparameters(bind: Bind, run_id: int) -> list[Row[Any]]:
    """(id, hyperparameters) of the group of each model fitted in run ``run_id``."""
    with connected(bind) as conn:
        return list(conn.execute(select(t.model_groups.c.id, t.model_groups.c.hyperparameters)
                                 .join(t.models, t.models.c.model_group_id == t.model_groups.c.id)
                                 .where(t.models.c.run_id == run_id)).all())


def report_payload(bind: Bind, run_id: int, kind: str) -> dict[str, Any] | None:
    """What run ``run_id``'s report of ``kind`` showed when first written (with
    ``created_at``), or None when it has not been written since reports were frozen."""
    with connected(bind) as conn:
        row = conn.execute(select(t.report_payloads.c.payload, t.report_payloads.c.created_at)
                           .where((t.report_payloads.c.run_id == run_id)
                                  & (t.report_payloads.c.kind == kind))).one_or_none()
    return None if row is None else {"payload": row.payload, "created_at": row.created_at}
