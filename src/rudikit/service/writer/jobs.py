"""What request handlers hand the writer, and what they get back once it is committed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rudikit.service.errors import ApiError
from rudikit.service.observations import Observation


@dataclass
class PredictJob:
    request_id: str
    token_id: int
    deployment_id: int
    model_id: int
    threshold: float
    received_at: datetime
    decided_at: datetime
    latency_ms: float
    observations: list[Observation]
    scores: list[float]
    single: bool


@dataclass
class PredictResult:
    predictions: list[dict[str, Any]]
    n_new: int


@dataclass
class OutcomeJob:
    observation_id: str | None
    request_id: str | None
    outcome: int
    token_id: int


@dataclass
class OutcomeResult:
    body: dict[str, Any]
    created: bool


class StoreUnavailable(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "the results store is unavailable, so nothing was stored and no "
                              "answer is given; retry later")
