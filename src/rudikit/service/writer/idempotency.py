"""Idempotent predictions: each job of a group decided against what is stored.

An ``observation_id`` already stored with the same payload gets the stored answer back; with a
different payload the request is a 409 and nothing of it is stored.
"""

from __future__ import annotations

from typing import Any

from rudikit.service.errors import ApiError
from rudikit.service.storage import answer
from rudikit.service.writer.jobs import PredictJob, PredictResult


def decide(jobs: list[tuple[int, PredictJob]], stored: dict[str, dict[str, Any]],
            results: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Decide each job against what is ``stored``: a job with an observation stored under a
    different payload is a 409 (nothing of it is stored); otherwise stored observations are
    replayed and the others are new. Fills ``results``; returns the request and prediction
    rows to insert."""
    request_rows: list[dict[str, Any]] = []
    prediction_rows: list[dict[str, Any]] = []
    for index, job in jobs:
        answers: list[dict[str, Any]] = []
        new: list[dict[str, Any]] = []
        conflicts: list[tuple[int, dict[str, Any]]] = []
        predicted_at = job.decided_at.isoformat()
        for k, (obs, score) in enumerate(zip(job.observations, job.scores, strict=True)):
            prior = stored.get(obs.observation_id)
            if prior is not None:
                if prior["payload_hash"] == obs.payload_hash:
                    answers.append(answer(prior, replayed=True))
                else:
                    conflicts.append((k, prior))
                continue
            row = {"observation_id": obs.observation_id, "request_id": job.request_id,
                   "deployment_id": job.deployment_id, "model_id": job.model_id,
                   "features": obs.raw, "payload_hash": obs.payload_hash,
                   "ignored_fields": _storable(obs.ignored), "score": score,
                   "threshold": job.threshold, "decision": score >= job.threshold,
                   "created_at": job.decided_at}
            new.append(row)
            answers.append(answer(row, False, predicted_at))
        if conflicts:
            results[index] = _conflict(job, conflicts)
            continue
        for row in new:  # a later job in this group sees these as stored
            stored[row["observation_id"]] = row
        prediction_rows.extend(new)
        request_rows.append({
            "id": job.request_id, "endpoint": "/predict", "token_id": job.token_id,
            "deployment_id": job.deployment_id, "model_id": job.model_id,
            "n_observations": len(job.observations), "n_new": len(new),
            "latency_ms": job.latency_ms, "received_at": job.received_at})
        results[index] = PredictResult(answers, len(new))
    return request_rows, prediction_rows


def _storable(names: list[str]) -> list[str] | None:
    """Ignored field names as stored and answered: PostgreSQL text cannot hold NUL, so a NUL
    in an (unused) field name becomes U+FFFD."""
    if not names:
        return None
    if any("\x00" in name for name in names):
        return [name.replace("\x00", "\ufffd") for name in names]
    return names


def _conflict(job: PredictJob, conflicts: list[tuple[int, dict[str, Any]]]) -> ApiError:
    errors = []
    for k, prior in conflicts:
        loc = ["observation_id"] if job.single else ["observations", k, "observation_id"]
        errors.append({
            "field": "observation_id" if job.single else f"observations[{k}].observation_id",
            "loc": ["body", *loc],
            "msg": f"observation_id {prior['observation_id']!r} was predicted before (request "
                   f"{prior['request_id']}) with a different payload",
            "type": "conflict"})
    ids = ", ".join(repr(prior["observation_id"]) for _, prior in conflicts)
    return ApiError(409, f"observation_id {ids} already predicted with a different payload; "
                         "nothing was stored (a new observation needs a new observation_id)",
                    errors)
