"""Request and response shapes of the service, with the examples shown in the OpenAPI docs.
The observations of ``POST /predict`` are validated in :mod:`rudikit.service.observations`
(their fields in :mod:`rudikit.service.observation_schema`)."""

from __future__ import annotations

import re
from datetime import date as date_type
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

MAX_ID_LENGTH = 200


def no_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL, and no real id or category contains one
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# published with the text fields that refuse NUL, so that the schema calls no refused text valid
NO_NUL_PATTERN = "^[^\\x00]*$"


class NoNul:
    """Field metadata: refuses text holding a NUL (`no_nul`) and says so in the JSON schema
    (pydantic's ``pattern`` would do both, but with an error naming a regex, not the problem)."""

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(no_nul, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        published = handler(schema)
        for branch in published.get("anyOf", [published]):
            if branch.get("type") == "string":
                branch["pattern"] = NO_NUL_PATTERN
        return published


ObservationId = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_LENGTH), NoNul()]
def _iso_date(value: Any) -> Any:
    # pydantic also reads a number of seconds ("0" = 1970-01-01) as a date: refuse what the
    # published `format: date` (YYYY-MM-DD) does not allow
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
IsoDate = Annotated[date_type, BeforeValidator(_iso_date)]
# --- responses -------------------------------------------------------------------------------

PREDICTION_EXAMPLE: dict[str, Any] = {
    "observation_id": "2020-01-stop-000123", "request_id": "5f0c1e2a9b7d4c3e8a1f2b3c4d5e6f70",
    "model_id": 3, "deployment_id": 1, "score": 0.3141, "decision": False, "threshold": 0.5,
    "ignored_fields": ["outcome"], "replayed": False,
    "predicted_at": "2020-01-31T14:05:02.123456+00:00",
}


class StoredPrediction(BaseModel):
    """A stored prediction. ``request_id`` is the request that produced it (for a replay: the
    first)."""

    model_config = ConfigDict(json_schema_extra={"examples": [PREDICTION_EXAMPLE]})

    observation_id: str
    request_id: str
    model_id: int
    deployment_id: int
    score: float = Field(description="Predicted probability of a positive outcome.")
    decision: bool = Field(description="score >= threshold of the deployment.")
    threshold: float
    ignored_fields: list[str] = Field(description="Fields sent that the model does not use.")
    replayed: bool = Field(description="True when this observation_id was answered before with "
                                       "the same payload: the stored answer is returned.")
    predicted_at: datetime


ANSWER_EXAMPLE: dict[str, Any] = {
    **PREDICTION_EXAMPLE, "unseen": {"force": "devon-and-cornwall"},
    "set_missing": {"latitude": "impossible coordinates (latitude beyond +-90 or longitude "
                                "beyond +-180)"}}


class PredictionOut(StoredPrediction):
    """One answer of ``POST /predict``."""

    model_config = ConfigDict(json_schema_extra={"examples": [ANSWER_EXAMPLE]})

    unseen: dict[str, str] = Field(description=(
        "Category values of this observation the deployed model never saw in training, by "
        "field: each was scored as a missing value."))
    set_missing: dict[str, str] = Field(description=(
        "Values of this observation that the training data's rules set missing (impossible "
        "coordinates, an empty text, a date-time a table cannot hold), by field, with why: "
        "each was scored as a missing value, as the same row was in training."))


class BatchPredictionOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "request_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "model_id": 3, "deployment_id": 1,
        "predictions": [ANSWER_EXAMPLE]}]})

    request_id: str
    model_id: int
    deployment_id: int
    predictions: list[PredictionOut]


class PredictQuery(BaseModel):
    """Query parameters of ``POST /predict``."""

    explain: bool = Field(False, description="Add each observation's top reasons "
                                              "(`explanation`) to the answer.")


class Reason(BaseModel):
    feature: str = Field(description="The input column.")
    contribution: float = Field(description="How far this input moved the score, in log-odds.")
    value: str | None = Field(description="The observation's value of the input, as text "
                                          "(null when missing).")


EXPLANATION_EXAMPLE: dict[str, Any] = {
    "method": "shap", "base": -1.21, "margin": -0.78, "rest": 0.02,
    "reasons": [{"feature": "object_of_search", "contribution": 0.31,
                 "value": "Controlled drugs"},
                {"feature": "age_range", "contribution": 0.1, "value": "18-24"}]}


class ExplanationOut(BaseModel):
    """Why the model scored the observation as it did, in log-odds:
    ``base + sum(reasons.contribution) + rest = margin``, and the model's probability is
    ``1 / (1 + exp(-margin))`` (for a mitigated deployment, the base model's score before its
    group threshold moves it)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXPLANATION_EXAMPLE]})

    method: Literal["shap", "coefficient"] = Field(
        description="`shap`: TreeSHAP of a LightGBM model; `coefficient`: a logistic "
                    "regression's coefficient x (value - its mean over the training rows).")
    base: float = Field(description="Where every observation starts: the expected margin "
                                    "(SHAP) or the mean training margin (coefficients).")
    margin: float = Field(description="The model's log-odds for this observation.")
    reasons: list[Reason] = Field(description="Up to 5 inputs with the largest contributions "
                                              "(by absolute value), largest first; inputs "
                                              "that did not move the score are left out.")
    rest: float = Field(description="The sum of the other inputs' contributions.")


class ExplainedPredictionOut(PredictionOut):
    """A prediction with its explanation (``POST /predict?explain=true``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        **ANSWER_EXAMPLE, "explanation": EXPLANATION_EXAMPLE}]})

    explanation: ExplanationOut


class ExplainedBatchPredictionOut(BatchPredictionOut):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "request_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90", "model_id": 3, "deployment_id": 1,
        "predictions": [{**ANSWER_EXAMPLE, "explanation": EXPLANATION_EXAMPLE}]}]})

    predictions: list[ExplainedPredictionOut]  # type: ignore[assignment]


class PredictionDetail(StoredPrediction):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        **PREDICTION_EXAMPLE, "features": {"object_of_search": "Controlled drugs",
                                           "gender": "Male"},
        "outcome": 1, "outcome_recorded_at": "2020-02-14T09:00:00+00:00"}]})

    features: dict[str, Any] = Field(description="The model inputs as received.")
    outcome: int | None = Field(description="The true outcome, once reported.")
    outcome_recorded_at: datetime | None


class OutcomeIn(BaseModel):
    """The true outcome of an earlier prediction, by observation id or (for a single-observation
    request) request id."""

    # the "exactly one id" rule of _one_id, published so that clients (and schemathesis) do not
    # take a request with both ids, or neither, for a valid one: the other id absent or null
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"observation_id": "2020-01-stop-000123", "outcome": 1},
        {"request_id": "5f0c1e2a9b7d4c3e8a1f2b3c4d5e6f70", "outcome": False}],
        "oneOf": [{"required": [given], "properties": {given: {"type": "string"},
                                                       other: {"type": "null"}}}
                  for given, other in (("observation_id", "request_id"),
                                       ("request_id", "observation_id"))]})

    observation_id: ObservationId | None = None
    request_id: Annotated[str, Strict(), Field(min_length=1, max_length=64),
                          NoNul()] | None = None
    outcome: Annotated[bool, Strict()] | Literal[0, 1] = Field(
        description="1/true: the outcome happened (e.g. the search found the object); 0/false: "
                    "it did not.")

    @model_validator(mode="after")
    def _one_id(self) -> OutcomeIn:
        if (self.observation_id is None) == (self.request_id is None):
            raise ValueError("give exactly one of observation_id and request_id")
        return self


class OutcomeOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "observation_id": "2020-01-stop-000123", "request_id": PREDICTION_EXAMPLE["request_id"],
        "outcome": 1, "recorded_at": "2020-02-14T09:00:00+00:00", "already_recorded": False,
        "decision_correct": False, "prediction": PREDICTION_EXAMPLE}]})

    observation_id: str
    request_id: str
    outcome: int
    recorded_at: datetime
    already_recorded: bool = Field(description="True when the same outcome was recorded before.")
    decision_correct: bool = Field(description="Whether the decision matched the outcome.")
    prediction: StoredPrediction


class HealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "status": "ok", "model_loaded": True, "store_reachable": True,
        "deployment_current": True, "deployment_id": 3, "reload_error": None}]})

    status: Literal["ok", "unavailable"]
    model_loaded: bool
    store_reachable: bool
    deployment_current: bool | None = Field(
        description="Whether the served deployment is the live one. After `rudi deploy` the "
                    "server switches to the new deployment within a few seconds (see "
                    "RUDI_RELOAD_SECONDS); false until then, or while the new one cannot be "
                    "loaded (see reload_error); null when the store cannot be read.")
    deployment_id: int = Field(description="The deployment this server answers with.")
    reload_error: str | None = Field(
        None, description="Why the live deployment is not served (e.g. its model file does not "
                          "match the store); the previous one is served meanwhile.")


class FieldError(BaseModel):
    field: str = Field(description="Path of the offending field, e.g. observations[2].gender.")
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "detail": "invalid observation: missing required fields: gender, force",
        "errors": [{"field": "gender", "loc": ["body", "gender"], "msg": "Field required",
                    "type": "missing"},
                   {"field": "force", "loc": ["body", "force"], "msg": "Field required",
                    "type": "missing"}],
        "request_id": "5f0c1e2a9b7d4c3e8a1f2b3c4d5e6f70"}]})

    detail: str
    errors: list[FieldError] = []
    request_id: str | None = None


# --- intervention lists and reviews ----------------------------------------------------------

#: What a reviewer decided for a flagged entity (stored as ``entity_reviews.outcome``): a key
#: of the project's ``review.decisions`` (checked against them when the review is stored).
Decision = Annotated[str, Strict(), Field(pattern=r"^[a-z][a-z0-9_]{0,49}$", description=(
    "A key of the project's decisions (`decisions` of `GET /lists/{date}`; rudi.yaml "
    "`review.decisions`)."))]
Agreement = Literal["agree", "disagree", "unsure"]
AGREEMENTS: tuple[str, ...] = get_args(Agreement)
MAX_NOTES = 4000


class ListQuery(BaseModel):
    """``GET /lists/{date}`` parameters, validated after the token is checked."""

    model_config = ConfigDict(extra="forbid")

    date: IsoDate = Field(description="The list's date (YYYY-MM-DD, UTC day).")
    k: int | None = Field(None, ge=1, le=10_000, description=(
        "How many entities the list holds (default: the size of a list `rudi score` made, "
        "else 100)."))
    cool_off_days: int | None = Field(None, ge=0, le=3650, description=(
        "An entity reviewed for a list dated within this many days before the date is left "
        "off (its place goes to the next one down; default: as a list `rudi score` made was, "
        "else 365)."))


class ListReasonOut(BaseModel):
    feature: str = Field(description="The input (feature name).")
    contribution: float = Field(description="How far it moved the score (signed).")
    value: str | None = Field(description="The entity's value, as stored.")
    percentile: float | None = Field(None, description=(
        "Where the value stands among everyone scored for the list (0-100), when stored."))
    label: str = Field(description="The input in words (rudi.yaml `review.labels`, else from "
                                   "the feature name).")
    value_text: str
    standing: str = Field(description='e.g. "top 2% of officers"; empty without a percentile.')
    direction: Literal["raises", "lowers"] | None
    text: str = Field(description='e.g. "complaints in the past year: 4 (top 2% of officers)".')


class HistoryRowOut(BaseModel):
    label: str
    counts: list[int]


class HistoryOut(BaseModel):
    """An officer's events per calendar year before the list date."""

    years: list[int]
    rows: list[HistoryRowOut]


class FieldOut(BaseModel):
    label: str
    value: str


class PreviousRankOut(BaseModel):
    rank: int
    date: date_type = Field(description="The date of the earlier list.")


class EntryOutcomeOut(BaseModel):
    known: bool
    value: int | None
    text: str


class ListEntryOut(BaseModel):
    rank: int = Field(description="1 = highest score, after reviewed entities are left out.")
    original_rank: int = Field(description="The rank before reviewed entities were left out.")
    entity_id: str
    score: float
    reasons: list[ListReasonOut] | None = Field(None, description=(
        "The top reasons behind the score, in words, as stored with the list (`rudi score`) or "
        "the run's predictions."))
    history: HistoryOut | None = Field(None, description="An officer's recent history.")
    fields: list[FieldOut] | None = Field(None, description="A case's fields (its inputs).")
    previous_rank: PreviousRankOut | None = Field(None, description=(
        "The rank on the nearest earlier list (an officer's)."))
    outcome: EntryOutcomeOut | None = Field(None, description=(
        "What happened after the list, once known."))


class DecisionOut(BaseModel):
    key: str
    label: str


class AlertOut(BaseModel):
    monitor_run_id: int
    kind: str
    subject: str
    metric: str
    value: float | None
    bound: float | None
    severity: str
    window: str
    message: str
    created_at: datetime


class ListOut(BaseModel):
    """A ranked list for an intervention team."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "date": "2020-02-10", "source": "production_predictions", "k": 2, "cool_off_days": 365,
        "model_group_id": 2, "model_id": 5, "deployment_id": 1, "candidates": 40,
        "reviewed_excluded": 1, "entries": [
            {"rank": 1, "original_rank": 2, "entity_id": "2020-02-10-stop-0007",
             "score": 0.81},
            {"rank": 2, "original_rank": 3, "entity_id": "2020-02-10-stop-0031",
             "score": 0.77}],
        "decisions": [{"key": "no_action", "label": "No action"},
                      {"key": "debrief_officer", "label": "Debrief the officer"}],
        "alerts": []}]})

    date: date_type
    source: Literal["production_predictions", "production_lists", "predictions"] = Field(
        description=(
        "production_predictions: the live deployment's scored requests of that day (entity = "
        "observation_id); production_lists: the list `rudi score` made for that date; "
        "predictions: the deployed model group's stored predictions as of "
        "that date (a batch-scored, temporal project)."))
    k: int
    cool_off_days: int
    model_group_id: int
    model_id: int | None = Field(description="The model whose scores rank the list (null when "
                                              "nothing was scored that day).")
    deployment_id: int
    candidates: int = Field(description="Entities scored for that date.")
    reviewed_excluded: int = Field(description="Entities left out because they were reviewed.")
    entries: list[ListEntryOut]
    decisions: list[DecisionOut] = Field(description=(
        "What a reviewer may decide (`decision` of `POST /reviews` takes the key)."))
    alerts: list[AlertOut] = Field(description=(
        "The alerts of the newest monitor pass of the list's model group, critical first."))


def _whole_number(value: Any) -> Any:
    """A JSON number that is whole (12 or 12.0, as JSON Schema's integer allows) as an int;
    text and booleans stay as they are, for the strict check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


REVIEW_EXAMPLE: dict[str, Any] = {
    "entity_id": "2020-02-10-stop-0007", "list_date": "2020-02-10", "agreement": "agree",
    "decision": "debrief_officer", "notes": "Discussed with the sergeant."}


class ReviewIn(BaseModel):
    """A reviewer's feedback on one entity flagged on the list of ``list_date``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [REVIEW_EXAMPLE]})

    entity_id: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_LENGTH),
                         NoNul()]
    list_date: IsoDate = Field(description="The date of the list the entity was flagged on; "
                                             "it stays off lists for the cool-off period.")
    agreement: Agreement = Field(description="Whether the reviewer agrees with the flag.")
    decision: Decision
    notes: Annotated[str, Field(max_length=MAX_NOTES), NoNul()] | None = None
    corrects: Annotated[int, Strict(), Field(ge=1, le=2**31 - 1),
                        BeforeValidator(_whole_number)] | None = \
        Field(None, description=(
        "The id of the review of this entity and list that this one corrects; the corrected "
        "review is kept, superseded."))


class ReviewOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 12, **REVIEW_EXAMPLE, "decision_label": "Debrief the officer",
        "reviewer": "sgt-smith", "model_group_id": 2, "supersedes": None,
        "recorded_at": "2020-02-10T15:02:00+00:00"}]})

    id: int
    entity_id: str
    list_date: date_type
    agreement: Agreement
    decision: str
    decision_label: str = Field(description="The decision in words.")
    notes: str | None
    reviewer: str = Field(description="The name of the token that recorded the review.")
    model_group_id: int
    supersedes: int | None = Field(description="The review this one corrects, if any.")
    recorded_at: datetime
