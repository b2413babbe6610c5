"""Request and response shapes of the service, with the examples shown in the OpenAPI docs.

The observation schema is built from the deployed model's features (categorical -> string,
boolean -> bool, numeric -> number, datetime -> ISO 8601 string; every one nullable, every key
required). ``POST /predict`` parses its body itself (orjson + one pydantic validator per
observation) instead of through FastAPI's body handling: the same semantics and the same
published schema, at a fraction of the cost per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import date as date_type
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from typing_extensions import TypedDict

from rudikit.features.encoding import TabularEncoder
from rudikit.service.errors import ApiError, field_path, validation_error
from rudikit.service.jsonbody import load_json

MAX_ID_LENGTH = 200


def _no_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL, and no real id or category contains one
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _iso_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO 8601 date-time, e.g. 2020-01-31T14:05:00+00:00") from None
    if stamp.tzinfo is not None:
        try:  # the scorer reads the time in UTC; 0001-01-01T00:00:00+14:00 has none
            stamp.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range: the date-time falls outside years 1 to 9999 in "
                             "UTC") from None
    return stamp


ObservationId = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_LENGTH),
                          AfterValidator(_no_nul)]
BooleanValue = Annotated[bool | None, Strict()]
NumericValue = Annotated[float | None, Strict(), Field(allow_inf_nan=False)]


def categorical_value(max_length: int) -> Any:
    """A category: text of at most ``max_length`` characters (it is stored), or null."""
    return Annotated[Annotated[str, Field(max_length=max_length)] | None, Strict(),
                     AfterValidator(_no_nul)]


def group_value(max_length: int) -> Any:
    """A group attribute that is not a model input: any JSON scalar, text bounded as a
    category. One check (not a union of types) so that a bad value is one error naming the
    field, not one per type it is not."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > max_length:
                raise ValueError(f"at most {max_length} characters")
            return _no_nul(value)
        if value is not None and not isinstance(value, bool | int | float):
            raise ValueError("expected a string, number, boolean or null")
        return value

    return Annotated[Any, AfterValidator(check), WithJsonSchema({"anyOf": [
        {"type": "string", "maxLength": max_length}, {"type": "boolean"}, {"type": "number"},
        {"type": "null"}]})]


DatetimeValue = Annotated[str | None, Strict(), AfterValidator(_iso_datetime), WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]})]


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


ANSWER_EXAMPLE: dict[str, Any] = {**PREDICTION_EXAMPLE, "unseen": {"force": "devon-and-cornwall"}}


class PredictionOut(StoredPrediction):
    """One answer of ``POST /predict``."""

    model_config = ConfigDict(json_schema_extra={"examples": [ANSWER_EXAMPLE]})

    unseen: dict[str, str] = Field(description=(
        "Category values of this observation the deployed model never saw in training, by "
        "field: each was scored as a missing value."))


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

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"observation_id": "2020-01-stop-000123", "outcome": 1},
        {"request_id": "5f0c1e2a9b7d4c3e8a1f2b3c4d5e6f70", "outcome": False}]})

    observation_id: ObservationId | None = None
    request_id: Annotated[str, Strict(), Field(min_length=1, max_length=64),
                          AfterValidator(_no_nul)] | None = None
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

#: What a reviewer decided for a flagged entity (stored as ``entity_reviews.outcome``).
Decision = Literal["no_action", "monitor", "supervisor_meeting", "training", "counselling",
                   "referral"]
Agreement = Literal["agree", "disagree", "unsure"]
DECISIONS: tuple[str, ...] = get_args(Decision)
AGREEMENTS: tuple[str, ...] = get_args(Agreement)
MAX_NOTES = 4000


class ListQuery(BaseModel):
    """``GET /lists/{date}`` parameters, validated after the token is checked."""

    date: date_type = Field(description="The list's date (YYYY-MM-DD, UTC day).")
    k: int = Field(100, ge=1, le=10_000, description="How many entities the list holds.")
    cool_off_days: int = Field(365, ge=0, le=3650, description=(
        "An entity reviewed for a list dated within this many days before the date is left "
        "off (its place goes to the next one down)."))


class ListEntryOut(BaseModel):
    rank: int = Field(description="1 = highest score, after reviewed entities are left out.")
    original_rank: int = Field(description="The rank before reviewed entities were left out.")
    entity_id: str
    score: float


class ListOut(BaseModel):
    """A ranked list for an intervention team."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "date": "2020-02-10", "source": "production_predictions", "k": 2, "cool_off_days": 365,
        "model_group_id": 2, "model_id": 5, "deployment_id": 1, "candidates": 40,
        "reviewed_excluded": 1, "entries": [
            {"rank": 1, "original_rank": 2, "entity_id": "2020-02-10-stop-0007",
             "score": 0.81},
            {"rank": 2, "original_rank": 3, "entity_id": "2020-02-10-stop-0031",
             "score": 0.77}]}]})

    date: date_type
    source: Literal["production_predictions", "predictions"] = Field(description=(
        "production_predictions: the live deployment's scored requests of that day (entity = "
        "observation_id); predictions: the deployed model group's stored predictions as of "
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


REVIEW_EXAMPLE: dict[str, Any] = {
    "entity_id": "2020-02-10-stop-0007", "list_date": "2020-02-10", "agreement": "agree",
    "decision": "supervisor_meeting", "notes": "Discussed with the sergeant."}


class ReviewIn(BaseModel):
    """A reviewer's feedback on one entity flagged on the list of ``list_date``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [REVIEW_EXAMPLE]})

    entity_id: Annotated[str, Strict(), Field(min_length=1, max_length=MAX_ID_LENGTH),
                         AfterValidator(_no_nul)]
    list_date: date_type = Field(description="The date of the list the entity was flagged on; "
                                             "it stays off lists for the cool-off period.")
    agreement: Agreement = Field(description="Whether the reviewer agrees with the flag.")
    decision: Decision = Field(description="What was decided for the entity.")
    notes: Annotated[str, Field(max_length=MAX_NOTES), AfterValidator(_no_nul)] | None = None


class ReviewOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 12, **REVIEW_EXAMPLE, "reviewer": "sgt-smith", "model_group_id": 2,
        "recorded_at": "2020-02-10T15:02:00+00:00"}]})

    id: int
    entity_id: str
    list_date: date_type
    agreement: Agreement
    decision: Decision
    notes: str | None
    reviewer: str = Field(description="The name of the token that recorded the review.")
    model_group_id: int
    recorded_at: datetime


# --- observations ----------------------------------------------------------------------------


@dataclass
class Observation:
    """A validated observation ready to score and store."""

    observation_id: str
    values: dict[str, Any]  # column -> validated value (datetime parsed)
    raw: dict[str, Any]  # column -> value as received (stored for retraining)
    payload_hash: str
    ignored: list[str]


@dataclass
class ParsedPredict:
    single: bool
    observations: list[Observation]


class ObservationSchema:
    """The deployed model's observation: validator, JSON schemas and examples."""

    def __init__(self, encoder: TabularEncoder, max_batch: int = 1000,
                 groups: Sequence[str] = (), max_value_length: int = 1000,
                 max_field_name_length: int = 200, nan_as_missing: bool = True):
        self.max_batch = max_batch
        self.nan_as_missing = nan_as_missing
        self.kinds: dict[str, str] = {}
        for c in encoder.categorical:
            self.kinds[c] = "categorical"
        for c in encoder.boolean:
            self.kinds[c] = "boolean"
        for c in encoder.numeric:
            self.kinds[c] = "numeric"
        if encoder.datetime:
            self.kinds[encoder.datetime] = "datetime"
        for column in groups:  # a mitigated model's group attributes that are not features
            self.kinds.setdefault(column, "group")
        self.columns = list(self.kinds)
        self.known = frozenset(["observation_id", *self.columns])
        # the model's own field names always fit (the published schema requires them)
        self.max_field_name_length = max(max_field_name_length, *map(len, self.known))
        types = {"categorical": categorical_value(max_value_length), "boolean": BooleanValue,
                 "numeric": NumericValue, "datetime": DatetimeValue,
                 "group": group_value(max_value_length)}
        fields: dict[str, Any] = {"observation_id": ObservationId}
        for column, kind in self.kinds.items():
            fields[column] = types[kind]
        typed = TypedDict("Observation", fields)  # type: ignore[misc]
        typed.__pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[attr-defined]
        self.adapter: TypeAdapter[Any] = TypeAdapter(typed)
        self.validate = self.adapter.validator.validate_python
        self.validate_many = TypeAdapter(list[typed]).validator.validate_python  # type: ignore[valid-type]
        self.example = self._example(encoder)

    def _example(self, encoder: TabularEncoder) -> dict[str, Any]:
        example: dict[str, Any] = {"observation_id": "2020-01-stop-000123"}
        for column, kind in self.kinds.items():
            if kind == "categorical":
                known = encoder.categories_.get(column) or ["a value"]
                example[column] = known[0]
            elif kind == "boolean":
                example[column] = False
            elif kind in ("numeric", "group"):
                example[column] = None
            else:
                example[column] = "2020-01-31T14:05:00+00:00"
        return example

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        """Component schemas ``Observation`` and ``ObservationBatch`` for the OpenAPI doc."""
        observation = self.adapter.json_schema()
        observation["title"] = "Observation"
        observation["description"] = (
            "One observation: observation_id (your id, also the idempotency key) and every "
            "feature the deployed model uses. Each feature key must be present; null means "
            "missing. Categories never seen in training are accepted, scored as missing and "
            "listed in the answer's unseen. Other fields are ignored "
            "and listed back in ignored_fields; no field name may be longer than "
            f"{self.max_field_name_length} characters."
            + (" The NaN, Infinity and -Infinity tokens Python's json module writes are read "
               "as null." if self.nan_as_missing else ""))
        observation["additionalProperties"] = True
        observation["propertyNames"] = {"maxLength": self.max_field_name_length}
        observation["examples"] = [self.example]
        for column, kind in self.kinds.items():
            observation["properties"][column]["description"] = {
                "categorical": "Category (string); an unseen value is scored as missing.",
                "boolean": "true or false.",
                "numeric": "A finite number.",
                "datetime": "ISO 8601 date-time; without an offset it is read as UTC.",
                "group": "Group attribute of the deployed model's per-group thresholds (not a "
                         "model input); null when unknown.",
            }[kind]
        batch = {
            "title": "ObservationBatch",
            "type": "object",
            "description": f"Up to {self.max_batch} observations scored and stored together "
                           "(all or none).",
            "properties": {"observations": {
                "type": "array", "items": {"$ref": "#/components/schemas/Observation"},
                "minItems": 1, "maxItems": self.max_batch}},
            "required": ["observations"],
            "examples": [{"observations": [self.example]}],
        }
        return {"Observation": observation, "ObservationBatch": batch}

    def parse(self, body: bytes) -> ParsedPredict:
        """Body bytes to validated observations, or a 422 naming every bad field."""
        data = load_json(body, self.nan_as_missing)
        if not isinstance(data, dict):
            raise ApiError(422, "the body must be a JSON object: one observation, or "
                                '{"observations": [...]}', [
                {"field": "body", "loc": ["body"], "msg": "expected an object",
                 "type": "object_type"}])
        if "observations" in data:
            items = data["observations"]
            if not isinstance(items, list) or not items or len(items) > self.max_batch:
                msg = (f"expected a list of 1 to {self.max_batch} observations"
                       + (f", got {len(items)}" if isinstance(items, list) else ""))
                raise ApiError(422, f"invalid request: observations: {msg}", [
                    {"field": "observations", "loc": ["body", "observations"], "msg": msg,
                     "type": "list_type"}])
            single = False
        else:
            items = [data]
            single = True
        prefix: tuple[Any, ...] = () if single else ("observations",)
        try:  # one call for the whole batch: the loop over items runs in pydantic-core
            validated = [self.validate(data)] if single else self.validate_many(items)
        except ValidationError as exc:
            errors = []
            for e in exc.errors(include_url=False, include_context=False, include_input=False):
                loc = (*prefix, *e["loc"])
                errors.append({"field": field_path(loc), "loc": ["body", *loc],
                               "msg": e["msg"], "type": e["type"]})
            raise validation_error(errors, "observation" if single else "batch") from None
        observations: list[Observation] = []
        seen: dict[str, int] = {}
        problems: list[dict[str, Any]] = []
        columns = self.columns
        known = self.known
        dumps = orjson.dumps
        sha256 = hashlib.sha256
        for i, (item, values) in enumerate(zip(items, validated, strict=True)):
            ignored = item.keys() - known
            if ignored and max(map(len, ignored)) > self.max_field_name_length:
                problems.extend(self._long_names(ignored, (*prefix, i) if prefix else ()))
                continue
            oid = values["observation_id"]
            if oid in seen:
                loc = (*prefix, i, "observation_id")
                problems.append({"field": field_path(loc), "loc": ["body", *loc],
                                 "msg": f"repeats observations[{seen[oid]}].observation_id",
                                 "type": "duplicate"})
                continue
            seen[oid] = i
            observations.append(Observation(
                oid, values, {c: item[c] for c in columns},
                sha256(dumps([values[c] for c in columns])).hexdigest(),
                sorted(ignored)))
        if problems:
            raise validation_error(problems, "observation" if single else "batch")
        return ParsedPredict(single, observations)

    def _long_names(self, names: set[str], prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
        """One error per field name over the bound (ignored names are stored), the name cut
        short so that the answer does not echo megabytes back."""
        errors = []
        for name in sorted(n for n in names if len(n) > self.max_field_name_length):
            short = name if len(name) <= 40 else name[:40] + "..."
            loc = (*prefix, short)
            errors.append({"field": field_path(loc), "loc": ["body", *loc],
                           "msg": f"a field name of {len(name)} characters; at most "
                                  f"{self.max_field_name_length}", "type": "name_too_long"})
        return errors
