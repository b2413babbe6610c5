"""Promoting a model group to production, and loading what is deployed.

``rudi deploy`` records who promoted which model, why and with which decision threshold; the
previous deployment is retired in the same transaction (its row stays: history is kept) and both
go to the audit log. The service loads the live deployment's artefact only when its SHA-256
matches the store, and refuses to start otherwise.

A mitigated model group (``mitigated_<algorithm>``, made by ``rudi run`` when
``fairness.mitigation`` is configured) is a JSON artefact of per-group thresholds on top of a
base model: both files are hash-checked, the base model scores, and
:class:`~rudikit.service.scoring.GroupThresholds` moves each group's threshold to 0.5 exactly as
the pipeline evaluated it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.pipeline import Pipeline
from sqlalchemy import insert, update
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from rudikit.features.encoding import TabularEncoder
from rudikit.models.artefacts import ArtefactError, artefact_file, load_artefact
from rudikit.service import audit
from rudikit.service.errors import ServiceError
from rudikit.service.scoring import GroupThresholds, Scorer
from rudikit.store.engine import store_project_dir
from rudikit.store.production_inputs import ensure_inputs_table, spec_from_store
from rudikit.store.production_tables import deployed_models
from rudikit.store.queries import production as production_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries.production import live_deployment


@dataclass(frozen=True)
class Deployment:
    id: int
    model_group_id: int
    model_id: int
    algorithm: str
    threshold: float
    deployed_by: str
    reason: str
    previous_id: int | None
    waiver: dict[str, Any] | None = None  # set when the deploy gate was overridden


def project_folder(bind: Engine | Connection, project_dir: str | Path | None) -> Path | None:
    """The folder a stored artefact path is relative to: ``project_dir`` when the caller
    knows it, else the project a default SQLite store lives in."""
    if project_dir is not None:
        return Path(project_dir)
    return store_project_dir(bind if isinstance(bind, Engine) else bind.engine)


def _load_pipeline(model: Any, project_dir: Path | None) -> Pipeline:
    """The model's fitted pipeline, if its file matches the store's hash and can serve."""
    try:
        pipeline = load_artefact(model["artefact_path"], model["artefact_hash"], project_dir)
    except ArtefactError as exc:
        raise ServiceError(f"model {model['id']}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. not a model file at all
        raise ServiceError(f"model {model['id']}: {model['artefact_path']} is not a loadable "
                           f"model file ({type(exc).__name__}: {exc})") from None
    steps = getattr(pipeline, "named_steps", {})
    if not isinstance(steps.get("encode"), TabularEncoder) or "model" not in steps:
        raise ServiceError(f"model {model['id']}: the artefact is not a rudikit pipeline "
                           "(encode + model steps); it cannot be served")
    return pipeline


def _load_thresholds(model: Any, project_dir: Path | None) -> tuple[GroupThresholds, Any]:
    """A mitigated model's per-group thresholds and its base model's id, if its JSON file
    matches the store's hash."""
    path = artefact_file(model["artefact_path"], project_dir)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ServiceError(f"model {model['id']}: cannot read {path} ({exc.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != model["artefact_hash"]:
        raise ServiceError(f"model {model['id']}: file {path} has hash {digest[:12]}..., the "
                           f"store expects {model['artefact_hash'][:12]}...; refusing to load it")
    try:
        document = json.loads(data)
        groups = GroupThresholds(list(document["attributes"]), dict(document["thresholds"]),
                                 document.get("fallback_threshold"))
        return groups, document["base_model_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ServiceError(f"model {model['id']}: {path} is not a mitigation artefact (per-group "
                           f"thresholds): {exc}") from None


def _load_served(conn: Connection, model: Any, project_dir: str | Path | None
                 ) -> tuple[Pipeline, GroupThresholds | None]:
    """(the pipeline that scores, the group thresholds of a mitigated model). A mitigated model
    scores with its base model (``base_model_id`` in its artefact). Artefact paths resolve
    against ``project_dir`` (:func:`project_folder`)."""
    folder = project_folder(conn, project_dir)
    if not str(model["artefact_path"]).endswith(".json"):
        return _load_pipeline(model, folder), None
    groups, base_id = _load_thresholds(model, folder)
    base = runs_q.model(conn, base_id)
    if base is None:
        raise ServiceError(f"model {model['id']}: its base model {base_id} is not in the store")
    return _load_pipeline(base, folder), groups


def check_request(reason: str, by: str, threshold: float | None) -> None:
    """Refuse a deployment without a reason or an author, or with a threshold outside [0, 1]."""
    if not reason.strip():
        raise ServiceError("say why this model is deployed: --reason \"...\" (it goes to the "
                           "audit log)")
    if not by.strip():
        raise ServiceError("say who deploys: --by NAME")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ServiceError(f"--threshold must be between 0 and 1, got {threshold}")


def model_to_deploy(bind: Engine | Connection, model_group_id: int, model_id: int | None = None
                    ) -> tuple[RowMapping, RowMapping]:
    """(group, model) a deployment of ``model_group_id`` puts live: ``model_id``, else the
    group's most recent model chosen by a run's selection (the fit whose test figures were
    judged), else its most recent fit; :class:`ServiceError` when there is none."""
    group = runs_q.model_group(bind, model_group_id)
    if group is None:
        raise ServiceError(f"no model group {model_group_id} in the store (the summary of "
                           "`rudi run` lists the groups)")
    model = runs_q.deployable_model(bind, model_group_id, model_id)
    if model is None:
        raise ServiceError(f"model {model_id} does not belong to model group {model_group_id}"
                           if model_id is not None else
                           f"model group {model_group_id} has no fitted model")
    return group, model


def deploy(engine: Engine, model_group_id: int, *, reason: str, by: str,
           threshold: float = 0.5, model_id: int | None = None,
           waiver: dict[str, Any] | None = None,
           requirements: dict[str, str] | None = None,
           project_dir: str | Path | None = None) -> Deployment:
    """Make the model :func:`model_to_deploy` names live; never silently another split's
    refit of the same group.

    ``rudi deploy`` comes through :func:`rudikit.service.gate.gated_deploy`, which passes the
    ``waiver`` of a gate it was told to override and the ``requirements`` verdicts it read;
    both are stored with the deployment (the waiver) and in the audit log. ``project_dir``:
    the project its artefact paths are relative to (default: the store's own, see
    :func:`project_folder`)."""
    check_request(reason, by, threshold)
    group, model = model_to_deploy(engine, model_group_id, model_id)
    with engine.connect() as conn:  # never promote a model the service would refuse to load
        _load_served(conn, model, project_dir)
    try:
        with engine.begin() as conn:
            previous = live_deployment(conn)
            stamp = audit.now()
            if previous is not None:
                conn.execute(update(deployed_models)
                             .where(deployed_models.c.id == previous["id"])
                             .values(live=False, retired_at=stamp, retired_by=by))
            deployment_id = conn.execute(insert(deployed_models).values(
                model_group_id=model_group_id, model_id=model["id"], threshold=threshold,
                deployed_by=by, reason=reason, deployed_at=stamp, live=True, waiver=waiver,
            ).returning(deployed_models.c.id)).scalar_one()
            # its typed production inputs, filled by the database from the first request on
            ensure_inputs_table(conn, model["id"], spec_from_store(conn, model["id"]))
            audit.record(conn, by, "deploy", f"deployment {deployment_id}", {
                "deployment_id": deployment_id, "model_group_id": model_group_id,
                "model_id": model["id"], "algorithm": group["algorithm"],
                "artefact_hash": model["artefact_hash"], "threshold": threshold,
                "reason": reason,
                "retired_deployment_id": previous["id"] if previous is not None else None,
                **({"requirements": requirements} if requirements is not None else {}),
                **({"waiver": waiver} if waiver is not None else {})})
    except IntegrityError:
        raise ServiceError("another deployment was made at the same moment; check "
                           "`rudi deployments` and run the command again") from None
    return Deployment(deployment_id, model_group_id, model["id"], group["algorithm"], threshold,
                      by, reason, previous["id"] if previous is not None else None, waiver)


def history(engine: Engine) -> list[dict[str, Any]]:
    """Every deployment, newest first, with its model group's algorithm."""
    return production_q.deployments(engine)


@dataclass
class LoadedModel:
    """What the service serves: the live deployment and its verified, self-checked model."""

    deployment_id: int
    model_id: int
    model_group_id: int
    algorithm: str
    threshold: float
    pipeline: Pipeline
    scorer: Scorer | None  # None when loaded without per-request explanations
    groups: GroupThresholds | None = None  # a mitigated model group's per-group thresholds


def load_deployed_model(engine: Engine, *, explained: bool = True,
                        project_dir: str | Path | None = None) -> LoadedModel:
    """Load the live deployment's model, or raise :class:`ServiceError` saying why not.
    ``explained``: prepare the per-request explanations the service answers with (a batch
    scorer such as ``rudi score`` explains only the listed officers, so it skips them).
    ``project_dir``: the project the artefact paths are relative to (:func:`project_folder`),
    so the service finds its model whatever its working directory."""
    with engine.connect() as conn:
        live = live_deployment(conn)
        if live is None:
            raise ServiceError("no model is deployed in this store; promote one with "
                               "`rudi deploy <model_group_id> --reason \"...\"`")
        model = runs_q.model(conn, live["model_id"])
        algorithm = runs_q.model_group(conn, live["model_group_id"])["algorithm"]
        try:
            pipeline, groups = _load_served(conn, model, project_dir)
        except ServiceError as exc:
            raise ServiceError(f"refusing to start: the deployed model (deployment "
                               f"{live['id']}) cannot be loaded safely: {exc}") from None
    return LoadedModel(live["id"], model["id"], live["model_group_id"], algorithm,
                       float(live["threshold"]), pipeline,
                       Scorer(pipeline) if explained else None, groups)
