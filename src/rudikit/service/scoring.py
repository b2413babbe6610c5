"""Scoring validated observations without a DataFrame per request.

The fitted pipeline's own encoder is the reference. :class:`RecordEncoder` produces the same
matrix as ``TabularEncoder.encode_records`` from already-validated values (datetimes parsed by the
request validator), because pandas' datetime parsing alone costs ~0.5 ms per call. The scorer
calls LightGBM's booster single-threaded (its OpenMP threads spin on a busy 2-core machine and
the scikit-learn wrapper re-validates every call), and any other estimator through its own
``predict_proba``. Both fast paths are checked against the full pipeline on generated rows when
the model is loaded; on any difference the service falls back to the reference path, so speed
never changes a score. Random forests and logistic regressions have fast paths of their own
(scikit-learn's ``predict_proba`` costs ~5 ms for one row: a thread pool for a forest's trees, a
ColumnTransformer's DataFrame-like plumbing for the linear model), checked the same way.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import h3
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from rudikit.explain import explain, explanation_method, top_reasons
from rudikit.explain.contributions import REFERENCE
from rudikit.fairness.groups import join_group
from rudikit.features.encoding import TabularEncoder
from rudikit.features.location import CELL, LocationEncoder

log = logging.getLogger("rudikit.service")
NAN = math.nan


def _part(stamp: datetime, part: str) -> float:
    if part == "hour":
        return float(stamp.hour)
    if part == "weekday":
        return float(stamp.weekday())  # Monday = 0, as pandas' day_of_week
    if part == "month":
        return float(stamp.month)
    if part == "day":
        return float(stamp.day)
    if part == "is_weekend":
        return 1.0 if stamp.weekday() >= 5 else 0.0
    return 1.0 if stamp.hour >= 22 or stamp.hour < 6 else 0.0  # is_night


class RecordEncoder:
    """Validated observations (str/bool/float/datetime or None) to the model matrix."""

    def __init__(self, encoder: TabularEncoder):
        self.encoder = encoder
        self.categorical = [(c, encoder.lookup_[c]) for c in encoder.categorical]
        self.location = encoder.location_
        self.location_lookups = ([encoder.lookup_[c] for c in self.location.names]
                                 if self.location is not None else [])
        self.boolean = list(encoder.boolean)
        self.numeric = list(encoder.numeric)
        self.datetime = encoder.datetime
        self.parts = list(encoder.datetime_parts) if encoder.datetime else []
        self.width = int(encoder.n_features_out_)

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        values: list[float] = []
        append = values.append
        categorical, boolean, numeric = self.categorical, self.boolean, self.numeric
        datetime_column, parts = self.datetime, self.parts
        location, location_lookups = self.location, self.location_lookups
        missing_parts = [NAN] * len(parts)
        for row in rows:
            for column, lookup in categorical:
                value = row[column]
                append(NAN if value is None else lookup.get(value, NAN))
            if location is not None:  # raw coordinates -> cell and town, as in training
                places = location.record(row[location.latitude], row[location.longitude])
                for place, lookup in zip(places, location_lookups, strict=True):
                    append(lookup.get(place, NAN))
            for column in boolean:
                value = row[column]
                append(NAN if value is None else (1.0 if value else 0.0))
            for column in numeric:
                value = row[column]
                append(NAN if value is None else value)
            if datetime_column:
                stamp = row[datetime_column]
                if stamp is None:
                    values.extend(missing_parts)
                else:
                    if stamp.tzinfo is not None:  # pandas: to UTC; naive stamps count as UTC
                        stamp = stamp.astimezone(UTC)
                    for part in parts:
                        append(_part(stamp, part))
        return np.array(values, dtype=float).reshape(len(rows), self.width)

    def unseen(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        """Each row's category values the encoder was not fitted with, by column: the model
        scores them as missing, which a caller should know rather than guess."""
        categorical = self.categorical
        out: list[dict[str, str]] = []
        for row in rows:
            found: dict[str, str] = {}
            for column, lookup in categorical:
                value = row[column]
                if value is not None and value not in lookup:
                    found[column] = value
            out.append(found)
        return out


class Scorer:
    """``score(rows) -> probabilities`` for validated rows, with a checked fast path."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.encoder: TabularEncoder = pipeline.named_steps["encode"]
        self.model = pipeline.named_steps["model"]
        self.record_encoder = RecordEncoder(self.encoder)
        self.encode: Callable[[Sequence[Mapping[str, Any]]], np.ndarray] = \
            self.record_encoder.encode
        self.predict: Callable[[np.ndarray], np.ndarray] = self._predict_proba
        self.path = "predict_proba"
        booster = getattr(self.model, "booster_", None)
        if booster is not None and getattr(self.model, "n_classes_", 2) == 2:
            self.predict = _lightgbm_predictor(booster)
            self.path = "lightgbm booster (1 thread)"
        elif isinstance(self.model, RandomForestClassifier) and len(self.model.classes_) == 2:
            self.predict = ForestPredictor(self.model)
            self.path = "random forest (numpy, all trees at once)"
        elif _is_linear(self.model):
            self.predict = LinearPredictor(self.model, self.encoder.n_features_out_)
            self.path = "logistic regression (per-column tables)"
        self._self_check()

    def _predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(X)[:, 1]

    def score(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.asarray(self.predict(self.encode(rows)), dtype=float)

    def _self_check(self, n: int = 64) -> None:
        """Compare the fast paths with the whole pipeline on generated rows; fall back on any
        difference (and say so in the log)."""
        raw, validated = sample_rows(self.encoder, n)
        reference_matrix = self.encoder.encode_records(raw)
        if not np.allclose(self.encode(validated), reference_matrix, equal_nan=True, rtol=0,
                           atol=1e-12):
            log.warning("record encoder differs from TabularEncoder.encode_records; using the "
                        "slower reference encoder")
            self.encode = lambda rows: self.encoder.encode_records(
                [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
                 for r in rows])
        frame = pd.DataFrame(raw, columns=self.encoder.input_columns)
        reference = self.pipeline.predict_proba(frame)[:, 1]
        fast = np.asarray(self.predict(self.encode(validated)), dtype=float)
        one_by_one = np.concatenate([self.predict(self.encode([v])) for v in validated[:16]])
        if not (np.allclose(fast, reference, rtol=0, atol=1e-9)
                and np.allclose(one_by_one, reference[:16], rtol=0, atol=1e-9)):
            log.warning("fast scoring path %s differs from the pipeline; using predict_proba",
                        self.path)
            self.predict = self._predict_proba
            self.path = "predict_proba"
            fast = np.asarray(self.predict(self.encode(validated)), dtype=float)
            if not np.allclose(fast, reference, rtol=0, atol=1e-9):
                raise RuntimeError("the service cannot reproduce the pipeline's scores")


def _lightgbm_predictor(booster: Any) -> Callable[[np.ndarray], np.ndarray]:
    """LightGBM's predictor, built once: ``Booster.predict`` builds one per call (~0.1 ms) and
    without ``num_threads=1`` wakes an OpenMP team that spins for milliseconds. One row goes
    through LightGBM's single-row C API (~7 us instead of ~30 us). The private parts are
    optional: the public call is the fallback, and the self-check guards every path."""
    try:
        from lightgbm.basic import _InnerPredictor

        inner = _InnerPredictor.from_booster(booster, {"num_threads": 1})
        iterations = booster.best_iteration if booster.best_iteration > 0 else -1

        def many(X: np.ndarray) -> np.ndarray:
            return inner.predict(X, num_iteration=iterations)

    except (ImportError, AttributeError, TypeError):
        return lambda X: booster.predict(X, num_threads=1)
    try:
        one = _SingleRow(booster, iterations)
    except (ImportError, AttributeError, TypeError, OSError, RuntimeError):
        return many
    return lambda X: one(X) if X.shape[0] == 1 else many(X)


class _SingleRow:
    """``LGBM_BoosterPredictForMatSingleRowFast``: one prepared configuration, one output
    buffer. Not re-entrant; the service scores on its event loop thread only."""

    def __init__(self, booster: Any, iterations: int):
        import ctypes

        from lightgbm.basic import _LIB, _c_str, _safe_call

        self._ctypes = ctypes
        self._lib = _LIB
        self._safe_call = _safe_call
        self.width = booster.num_feature()
        self.config = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(iterations),
            ctypes.c_int(1), ctypes.c_int32(self.width), _c_str("num_threads=1"),
            ctypes.byref(self.config)))  # normal prediction, float64 input
        self.out = np.empty(1, dtype=np.float64)
        self.out_len = ctypes.c_int64(0)
        self.out_ptr = self.out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self.predict = _LIB.LGBM_BoosterPredictForMatSingleRowFast
        self.booster = booster  # the configuration points into it

    def __call__(self, X: np.ndarray) -> np.ndarray:
        row = np.ascontiguousarray(X[0], dtype=np.float64)
        if row.shape[0] != self.width:
            raise ValueError(f"expected {self.width} features, got {row.shape[0]}")
        self._safe_call(self.predict(self.config, row.ctypes.data_as(self._ctypes.c_void_p),
                                     self._ctypes.byref(self.out_len), self.out_ptr))
        return self.out.copy()

    def __del__(self) -> None:
        config = getattr(self, "config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)


class ForestPredictor:
    """A random forest's probability of class 1, all trees walked at once with numpy: one
    array step per tree level instead of one call (and thread-pool task) per tree. Trees
    compare float32 features with float64 thresholds and send a missing value where the fitted
    node says (``missing_go_to_left``), exactly as scikit-learn's ``Tree.apply``."""

    def __init__(self, forest: RandomForestClassifier):
        trees = [estimator.tree_ for estimator in forest.estimators_]
        left, right, feature, threshold, missing_left, positive = [], [], [], [], [], []
        offset = 0
        for tree in trees:
            nodes = np.arange(tree.node_count)
            leaf = tree.children_left < 0
            # a leaf points to itself, so walking past it changes nothing
            left.append(np.where(leaf, nodes, tree.children_left) + offset)
            right.append(np.where(leaf, nodes, tree.children_right) + offset)
            feature.append(np.where(leaf, 0, tree.feature))
            threshold.append(tree.threshold)
            missing_left.append(tree.missing_go_to_left.astype(bool))
            value = tree.value[:, 0, :]
            total = value.sum(axis=1)
            positive.append(value[:, 1] / np.where(total == 0, 1.0, total))
            offset += tree.node_count
        self.left, self.right = np.concatenate(left), np.concatenate(right)
        self.feature, self.threshold = np.concatenate(feature), np.concatenate(threshold)
        self.missing_left = np.concatenate(missing_left)
        self.positive = np.concatenate(positive)
        self.roots = np.cumsum([0] + [t.node_count for t in trees[:-1]])
        self.depth = max(t.max_depth for t in trees)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        rows = np.arange(X.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (X.shape[0], self.roots.shape[0]))
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        return self.positive[node].mean(axis=1)


def _is_linear(model: Any) -> bool:
    """rudikit's logistic regression: ColumnTransformer(one-hot, impute + scale) -> binary
    LogisticRegression (see :func:`rudikit.models.estimators.build_pipeline`)."""
    steps = getattr(model, "named_steps", {})
    prepare, classifier = steps.get("prepare"), steps.get("classifier")
    if not (isinstance(prepare, ColumnTransformer) and isinstance(classifier, LogisticRegression)
            and len(classifier.classes_) == 2 and list(steps) == ["prepare", "classifier"]):
        return False
    for _, transformer, _ in prepare.transformers_:
        if transformer == "drop" or isinstance(transformer, OneHotEncoder):
            continue
        parts = list(getattr(transformer, "named_steps", {}).values())
        if not (len(parts) == 2 and isinstance(parts[0], SimpleImputer)
                and isinstance(parts[1], StandardScaler)):
            return False
    return True


class LinearPredictor:
    """A logistic regression over one-hot and scaled numeric columns is a sum of one term per
    input column: a table lookup for a one-hot column (a value the encoder did not see adds
    nothing, as ``handle_unknown="ignore"``), ``a * x + b`` for a numeric one (a constant when
    missing). The terms are read off the fitted pipeline by scoring probe rows, so the
    encoders' own rules (infrequent categories, medians, indicators) are used, not re-coded."""

    def __init__(self, model: Pipeline, width: int):
        prepare: ColumnTransformer = model.named_steps["prepare"]
        self.decision = model.decision_function
        base = np.zeros((1, width))
        self.intercept = float(self.decision(base)[0])
        self.tables: list[tuple[int, dict[float, float], float, float]] = []
        self.lines: list[tuple[int, float, float]] = []
        for _, transformer, columns in prepare.transformers_:
            if transformer == "drop":
                continue
            for k, column in enumerate(columns):
                if isinstance(transformer, OneHotEncoder):
                    known = [float(v) for v in transformer.categories_[k]]
                    terms = self._terms(base, column, [*known, NAN, _unseen(known)])
                    table = {v: t for v, t in zip(known, terms[:len(known)], strict=True)
                             if not math.isnan(v)}
                    self.tables.append((column, table, terms[-2], terms[-1]))
                else:
                    at_one, missing = self._terms(base, column, [1.0, NAN])
                    self.lines.append((column, at_one, missing))  # the base row has x = 0

    def _terms(self, base: np.ndarray, column: int, values: list[float]) -> list[float]:
        """The decision's change when ``column`` of the all-zero row takes each value."""
        probes = np.repeat(base, len(values), axis=0)
        probes[:, column] = values
        with warnings.catch_warnings():  # "unknown categories": the unseen probe, on purpose
            warnings.simplefilter("ignore", UserWarning)
            decisions = self.decision(probes)
        return [float(d) - self.intercept for d in decisions]

    def __call__(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape[0])
        isnan = math.isnan
        for i, row in enumerate(X.tolist()):
            total = self.intercept
            for column, table, missing, unseen in self.tables:
                value = row[column]
                total += missing if isnan(value) else table.get(value, unseen)
            for column, slope, missing in self.lines:
                value = row[column]
                total += missing if isnan(value) else slope * value
            out[i] = total
        return 1.0 / (1.0 + np.exp(-out))


def _unseen(known: list[float]) -> float:
    """A value no one-hot column was fitted with."""
    finite = [v for v in known if not math.isnan(v)]
    return (max(finite) if finite else 0.0) + 1.0e6




def _current_label(key: str) -> str:
    """A threshold key as :func:`join_group` writes it. Artefacts written before the one
    group-label convention keyed groups ``race=Black|sex=<missing>``; a deployed model keeps
    working after an upgrade instead of matching no group."""
    parts = key.split("|")
    if not all("=" in part for part in parts):
        return key
    values = [part.split("=", 1)[1] for part in parts]
    return join_group(None if v == "<missing>" else v for v in values)


class GroupThresholds:
    """A mitigated model group's decision rule on top of its base model's score: the row's group
    threshold is moved to 0.5 (:func:`rudikit.fairness.mitigation.optimizer.centre_threshold`),
    exactly as :func:`rudikit.fairness.stage.mitigate` scored the group's test rows. Groups are
    labelled as there (:func:`rudikit.fairness.groups.join_group`): the values as text in
    attribute order, joined by ``:``, a missing one ``(missing)``. A
    group the thresholds were not fitted on gets ``fallback`` when the artefact has one, else
    it has no threshold (the service answers 422 rather than guess)."""

    def __init__(self, attributes: list[str], thresholds: Mapping[str, float],
                 fallback: float | None = None):
        if not attributes:
            raise ValueError("no group attributes")
        self.attributes = [str(a) for a in attributes]
        self.thresholds = {_current_label(str(k)): float(v) for k, v in thresholds.items()}
        self.fallback = None if fallback is None else float(fallback)

    def label(self, values: Mapping[str, Any]) -> str:
        return join_group(values[a] for a in self.attributes)

    def threshold(self, values: Mapping[str, Any]) -> float | None:
        return self.thresholds.get(self.label(values), self.fallback)


def sample_rows(encoder: TabularEncoder, n: int, seed: int = 0
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(raw JSON-like rows, the same rows as the validator returns them) covering known and
    unseen categories, missing values, booleans, numbers and time-zoned datetimes."""
    rng = np.random.default_rng(seed)
    raw: list[dict[str, Any]] = []
    validated: list[dict[str, Any]] = []
    start = datetime(2018, 1, 1, tzinfo=UTC)
    location = encoder.location_
    places = known_points(location) if location is not None else []
    for i in range(n):
        r: dict[str, Any] = {}
        v: dict[str, Any] = {}
        for c in encoder.categorical:
            known = encoder.categories_[c]
            pick = rng.integers(0, len(known) + 2)
            value = (known[pick] if pick < len(known) else None if pick == len(known)
                     else f"unseen-{i}")
            r[c] = v[c] = value
        for c in encoder.boolean:
            value = [True, False, None][int(rng.integers(0, 3))]
            r[c] = v[c] = value
        for c in [*encoder.numeric, *encoder.coordinate_columns]:
            value = None if rng.random() < 0.15 else float(np.round(rng.normal(0, 50), 6))
            r[c] = v[c] = value
        if places and rng.random() < 0.5:  # a point in a cell or town the model knows
            point = places[int(rng.integers(0, len(places)))]
            r[location.latitude] = v[location.latitude] = point[0]
            r[location.longitude] = v[location.longitude] = point[1]
        if encoder.datetime:
            if rng.random() < 0.1:
                r[encoder.datetime] = v[encoder.datetime] = None
            else:
                offset = timezone(timedelta(hours=int(rng.integers(-5, 6))))
                stamp = (start + timedelta(minutes=int(rng.integers(0, 4_000_000)))
                         ).astimezone(offset)
                r[encoder.datetime] = stamp.isoformat()
                v[encoder.datetime] = stamp
        raw.append(r)
        validated.append(v)
    return raw, validated


def known_points(location: LocationEncoder) -> list[tuple[float, float]]:
    """The centres of the H3 cells the location encoder kept (points whose categories the
    model learnt), for the self-check's sample rows."""
    cells = location.kept_.get(CELL, {})
    return [tuple(float(x) for x in h3.cell_to_latlng(cell)) for cell in sorted(cells)]


def cannot_explain(pipeline: Pipeline) -> str | None:
    """Why the service cannot explain this model's answers, or None when it can."""
    method = explanation_method(pipeline)
    model = pipeline.named_steps["model"]
    if method is None:
        return (f"the deployed model ({type(model).__name__}) has no explanation method; "
                "explanations cover LightGBM and logistic regression")
    if method == "coefficient" and getattr(model.named_steps["classifier"], REFERENCE,
                                           None) is None:
        return ("the deployed logistic regression has no stored training mean to explain one "
                "observation against (it was fitted by an older rudikit); run it again and "
                "redeploy")
    return None


def explain_rows(pipeline: Pipeline, rows: Sequence[Mapping[str, Any]], reasons: int = 5
                 ) -> list[dict[str, Any]]:
    """The ``ExplanationOut`` of each validated row (datetimes parsed, as the scorer reads
    them), by :func:`rudikit.explain`: the same contributions ``rudi run`` stores for the test
    rows, so an answer and the run report agree. A logistic regression is centred on its
    training rows' mean, kept on the model by the run (a lone row is no background)."""
    encoder: TabularEncoder = pipeline.named_steps["encode"]
    explanation = explain(pipeline, pd.DataFrame(list(rows), columns=encoder.input_columns))
    top = top_reasons(explanation, reasons)
    margins = explanation.margin
    out = [{"method": explanation.method, "base": explanation.base, "margin": float(m),
            "reasons": [], "rest": float(m) - explanation.base} for m in margins]
    for row in top.itertuples():
        answer = out[row.row]
        answer["reasons"].append({"feature": row.feature,
                                  "contribution": float(row.contribution), "value": row.value})
        answer["rest"] -= float(row.contribution)
    return out
