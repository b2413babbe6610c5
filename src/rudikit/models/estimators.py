"""The model grid's estimators, each a scikit-learn Pipeline from raw rows to a score.

Every pipeline starts with :class:`~rudikit.features.encoding.TabularEncoder`, so one fitted
artefact takes the same rows in training, in batch scoring and in the service.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from lightgbm.basic import LightGBMError
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MaxAbsScaler, OneHotEncoder, StandardScaler
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from rudikit.config import Features, ModelSpec, TemporalModel, did_you_mean
from rudikit.features.encoding import TabularEncoder
from rudikit.features.location import LocationEncoder


class BinaryScorer(ClassifierMixin, BaseEstimator):
    """The scikit-learn contract shared by the baselines: input checks (NaN allowed: the
    encoder's missing values), ``n_features_in_``, NotFittedError, binary labels (0/1, or any
    two labels), ``predict`` = score >= 0.5. Subclasses give ``_fit(X, positive)`` and
    ``_score(X)``, the positive-class score in [0, 1]."""

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False
        tags.classifier_tags.poor_score = True  # baselines: one column, or nothing, learned
        return tags

    def fit(self, X: Any, y: Any) -> BinaryScorer:
        X, y = validate_data(self, X, y, dtype=float, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind != "binary":
            raise ValueError("Only binary classification is supported. The type of the target "
                             f"is {kind}.")
        labels = np.unique(y)
        if set(labels.tolist()) <= {0, 1}:
            self.classes_ = np.array([0, 1])  # both columns even when a split has one label
        elif len(labels) == 2:
            self.classes_ = labels
        else:
            raise ValueError(f"{type(self).__name__} needs two classes in y to name the "
                             f"positive one; got the one class {labels[0]!r}")
        outside = [i for i in self._columns() if not 0 <= i < self.n_features_in_]
        if outside:
            raise ValueError(f"{type(self).__name__}: column index(es) {outside} outside X, "
                             f"which has {self.n_features_in_} feature(s)")
        self._fit(X, (y == self.classes_[1]).astype(float))
        return self

    def _columns(self) -> list[int]:
        """The column positions the scorer reads."""
        return [0]

    def _fit(self, X: np.ndarray, positive: np.ndarray) -> None:
        """Learn from the checked X and the 0/1 float labels (nothing by default)."""

    def _score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _checked(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype=float, ensure_all_finite="allow-nan", reset=False)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = self._score(self._checked(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


class CategoryRateClassifier(BinaryScorer):
    """Baseline: the training success rate of the case's category in one column (e.g. object of
    search), shrunk towards the overall rate by ``smoothing`` pseudo-cases. Unseen or missing
    categories get the overall rate."""

    def __init__(self, column_index: int = 0, smoothing: float = 0.0):
        self.column_index = column_index
        self.smoothing = smoothing

    def _columns(self) -> list[int]:
        return [self.column_index]

    def _fit(self, X: np.ndarray, positive: np.ndarray) -> None:
        self.overall_ = float(positive.mean())
        codes = X[:, self.column_index]
        self.rates_: dict[float, float] = {}
        for code in np.unique(codes[~np.isnan(codes)]):
            members = positive[codes == code]
            self.rates_[float(code)] = float(
                (members.sum() + self.smoothing * self.overall_) / (len(members) + self.smoothing))

    def _score(self, X: np.ndarray) -> np.ndarray:
        return np.array([self.rates_.get(float(c), self.overall_) for c in X[:, self.column_index]])


class ScoreColumnClassifier(BinaryScorer):
    """Baseline: an existing score (e.g. COMPAS's decile score) rescaled to [0, 1] by the
    training range, so it is evaluated on exactly the same rows and metrics as the models."""

    def _fit(self, X: np.ndarray, positive: np.ndarray) -> None:
        values = X[:, 0]
        self.low_ = float(np.nanmin(values))
        self.high_ = float(np.nanmax(values))
        self.fill_ = float(np.nanmedian(values))

    def _score(self, X: np.ndarray) -> np.ndarray:
        values = np.where(np.isnan(X[:, 0]), self.fill_, X[:, 0])
        return np.clip((values - self.low_) / max(self.high_ - self.low_, 1e-12), 0, 1)


@dataclass(frozen=True)
class GridPoint:
    algorithm: str
    params: dict[str, Any]
    add_categorical: tuple[str, ...] = ()
    selectable: bool = True
    trial: tuple[int, int] | None = None  # (models[i], trial number) of a search trial

    def features(self, base: Features) -> Features:
        """The features this point's pipeline reads."""
        if self.algorithm == "score_column":
            return Features(numeric=[self.params["column"]])
        if not self.add_categorical:
            return base
        return base.model_copy(update={"categorical": list(dict.fromkeys(
            [*base.categorical, *self.add_categorical]))})

    def describe(self) -> str:
        """``algorithm(param=value, ...)``: how progress lines and errors name the point."""
        if self.trial is None:
            params = ", ".join(f"{k}={v}" for k, v in self.params.items())
            return f"{self.algorithm}({params})"
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in self.params.items())
        return f"{self.algorithm} trial {self.trial[1]} ({params})"

    def columns_needed(self) -> list[str]:
        if self.algorithm == "score_column":
            return [self.params["column"]]
        return list(self.add_categorical)

    def expected_cost(self, rows: int) -> float:
        """A rough relative cost of fitting and scoring this point on ``rows`` rows (a
        forest's sampled trees, boosting's trees times leaves, a linear model's solver passes),
        used only to send the longest fits to the workers first; it changes no result. The
        weights follow the EIS example's task times on CPDB: a 1000-tree forest with its
        scoring ~ 1.5x logistic regression ~ 2.5x LightGBM's 500 trees of 15 leaves ~ 7x its
        100 default trees; a baseline ~ nothing."""
        p = self.params
        if self.algorithm == "random_forest":
            sampled = p.get("max_samples") or 1.0
            share = sampled if isinstance(sampled, float) else min(1.0, sampled / max(rows, 1))
            units = p.get("n_estimators", 100) * (0.5 + share)
        elif self.algorithm == "lightgbm":
            units = p.get("n_estimators", 100) * (5 + p.get("num_leaves", 31)) / 40
        elif self.algorithm == "logistic_regression":
            units = 400.0
        else:
            units = 1.0
        return units * rows


def expand_grid(specs: list[ModelSpec]) -> list[GridPoint]:
    """Every combination of hyperparameter values: one model group each. Specs with a
    ``search`` are left out: their points are the search's trials
    (:func:`rudikit.models.search.search_points`)."""
    points = []
    for spec in specs:
        if spec.search is not None:
            continue
        keys = sorted(spec.params)
        for values in itertools.product(*(spec.params[k] for k in keys)):
            points.append(GridPoint(spec.algorithm, dict(zip(keys, values, strict=True)),
                                    tuple(spec.add_categorical), spec.selectable))
    return points


def make_encoder(features: Features) -> TabularEncoder:
    location = features.location
    return TabularEncoder(
        categorical=list(features.categorical),
        boolean=list(features.boolean),
        numeric=list(features.numeric_inputs),
        datetime=features.datetime.column if features.datetime else None,
        datetime_parts=list(features.datetime.parts) if features.datetime else [],
        location=LocationEncoder(**location.model_dump()) if location else None,
        # the service's value for a field a request may leave out
        defaults={features.group_size.column: 1.0} if features.group_size else None,
    )


@functools.cache
def _lightgbm_parameters() -> frozenset[str] | None:
    """Every name LGBMClassifier accepts: its own arguments, LightGBM's parameters and their
    aliases; None if this LightGBM version no longer exposes the list (it is private API, and
    the check is then skipped rather than rejecting good names)."""
    try:
        from lightgbm.basic import _ConfigAliases

        aliases = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):
        return None
    names = set(LGBMClassifier().get_params())
    for name, other in aliases.items():
        names.update((name, *other))
    return frozenset(names)


@functools.cache
def _lightgbm_main_names() -> frozenset[str]:
    """LGBMClassifier's arguments and LightGBM's parameter names without their aliases: what a
    suggestion should offer (``num_leaves``, not its alias ``num_leaf``)."""
    try:
        from lightgbm.basic import _ConfigAliases

        main = set(_ConfigAliases._get_all_param_aliases())
    except (ImportError, AttributeError):
        main = set()
    return frozenset(main | set(LGBMClassifier().get_params()))


def check_lightgbm_names(params: Mapping[str, Any]) -> None:
    """Refuse parameter names LightGBM does not know: it would ignore them silently
    (``verbose=-1``), so a misspelt ``num_leafs`` would fit the defaults."""
    known = _lightgbm_parameters()
    unknown = sorted(set(params) - known) if known is not None else []
    if unknown:
        raise ValueError(f"lightgbm: unknown parameter(s) {', '.join(unknown)}")


def _parameter_names(algorithm: str) -> frozenset[str] | None:
    """The hyperparameter names ``models[i].params`` may use for an algorithm (None: not
    known, so not checked)."""
    if algorithm == "lightgbm":
        return _lightgbm_parameters()
    if algorithm == "logistic_regression":
        return frozenset(LogisticRegression().get_params())
    if algorithm == "random_forest":
        return frozenset(RandomForestClassifier().get_params())
    if algorithm == "rate_by_category":
        return frozenset({"column", *CategoryRateClassifier().get_params()} - {"column_index"})
    if algorithm == "score_column":
        return frozenset({"column"})
    if algorithm == "ensemble":
        from rudikit.models.ensemble import PARAMETERS

        return PARAMETERS
    if algorithm == "rank_by_feature":  # the temporal baseline (models.temporal)
        return frozenset({"column", "tie_break"})
    return None


def check_parameter_names(specs: Sequence[ModelSpec | TemporalModel], key: str = "models"
                          ) -> list[str]:
    """Key-path problems for hyperparameter names an algorithm does not take, each with the
    closest real name: found from the project file alone, before any data is split or any
    model fitted (``models[3].params.num_leafs: ...; did you mean 'num_leaves'?``). ``key``:
    where the specs are (``temporal.models`` in a temporal project)."""
    problems = []
    for i, spec in enumerate(specs):
        known = _parameter_names(spec.algorithm)
        for name in sorted(set(spec.params) - known) if known is not None else []:
            hint = (did_you_mean(name, sorted(_lightgbm_main_names()))
                    if spec.algorithm == "lightgbm" else "") or did_you_mean(name, sorted(known))
            problems.append(f"{key}[{i}].params.{name}: {spec.algorithm} has no parameter "
                            f"{name!r}{hint}")
    return problems


def label_sample(y: np.ndarray, per_label: int = 200) -> np.ndarray:
    """Row positions of at most ``per_label`` rows of each label: enough to make LightGBM check
    its parameter values (it does so only when fitting) in a fraction of a second."""
    return np.concatenate([np.flatnonzero(y == value)[:per_label] for value in np.unique(y)])


#: From this many numeric columns a source is wide (e.g. bag-of-words charge descriptions):
#: logistic regression keeps the numeric block sparse and scales it by its largest absolute
#: value, and LightGBM samples columns per tree (:data:`WIDE_COLSAMPLE`). Below it nothing
#: changes, so narrow projects fit exactly as before.
WIDE_COLUMNS = 500
#: LightGBM's ``colsample_bytree`` on a wide source unless the model's params set it (or an
#: alias such as ``feature_fraction``): each tree looks at a third of the columns.
WIDE_COLSAMPLE = 0.3


def _to_sparse(X: Any) -> sparse.csr_matrix:
    """The numeric block as a CSR matrix (NaN stays an explicit entry for the imputer)."""
    return sparse.csr_matrix(X)


#: Rows :class:`RowBlockColumnTransformer` stacks at a time.
STACK_ROWS = 10_000


class RowBlockColumnTransformer(ColumnTransformer):
    """scikit-learn's ColumnTransformer, its sparse output stacked a block of rows at a time
    into arrays sized once for the whole matrix. scikit-learn's stacking (scipy's ``hstack``
    of the one-hot CSR and the dense numeric block) makes COO copies of every part and of the
    result before the CSR: at 5M rows the worker fitting the model peaked there (2.6 GB; 1.9
    GB stacked in blocks), and so did the run's process tree. The same rows stacked the
    same way give the same matrix (values, column order, index dtype)."""

    def _hstack(self, Xs: list[Any], *, n_samples: int) -> Any:
        if not self.sparse_output_:
            return super()._hstack(Xs, n_samples=n_samples)
        parts = [check_array(X, accept_sparse="csr", ensure_all_finite=False) for X in Xs]
        blocks = range(0, n_samples, STACK_ROWS)
        # the stacked entries of each block of rows: a sparse part's stored entries (explicit
        # zeros too), a dense part's nonzero values, as scipy's COO conversion keeps them
        sizes = [sum(p[start:start + STACK_ROWS].nnz if sparse.issparse(p) else
                     np.count_nonzero(p[start:start + STACK_ROWS]) for p in parts)
                 for start in blocks]
        n_columns = sum(p.shape[1] for p in parts)
        index = np.int32 if max(n_columns, sum(sizes)) <= np.iinfo(np.int32).max else np.int64
        data = np.empty(sum(sizes), dtype=np.result_type(*(p.dtype for p in parts)))
        indices = np.empty(sum(sizes), dtype=index)
        indptr = np.zeros(n_samples + 1, dtype=index)
        kind: Any = sparse.csr_matrix
        at = 0
        for start, size in zip(blocks, sizes, strict=True):
            block = sparse.hstack([p[start:start + STACK_ROWS] for p in parts]).tocsr()
            kind = type(block)
            data[at:at + size] = block.data
            indices[at:at + size] = block.indices
            indptr[start + 1:start + 1 + block.shape[0]] = block.indptr[1:] + at
            at += size
        return kind((data, indices, indptr), shape=(n_samples, n_columns))


def numeric_preparation(n_numeric: int) -> Pipeline:
    """Logistic regression's numeric columns: the training median for a missing value, with a
    missing indicator, then scaling. A wide block (``>= WIDE_COLUMNS``) stays sparse and is
    scaled by MaxAbsScaler, which keeps zeros zero: StandardScaler would centre every token
    column, turning a mostly-zero matrix dense, and lbfgs would then pay rows x columns per
    iteration for numbers that carry no information."""
    if n_numeric < WIDE_COLUMNS:
        return Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True,
                                                  keep_empty_features=True)),
                         ("scale", StandardScaler())])
    return Pipeline([
        ("sparse", FunctionTransformer(_to_sparse, accept_sparse=True,
                                       feature_names_out="one-to-one")),
        ("impute", SimpleImputer(strategy="median", add_indicator=True,
                                 keep_empty_features=True)),
        ("scale", MaxAbsScaler())])


def _lightgbm_sets(params: Mapping[str, Any], name: str) -> bool:
    """Whether ``params`` sets LightGBM parameter ``name`` under any of its aliases."""
    try:
        from lightgbm.basic import _ConfigAliases

        names = set(_ConfigAliases.get(name)) | {name}
    except (ImportError, AttributeError):  # private API: then only the name itself is known
        names = {name}
    return bool(set(params) & names)


def limit_jobs(pipeline: Any, threads: int | None) -> None:
    """Hold every step's ``n_jobs`` (a forest's trees, LightGBM's threads) to ``threads``, so
    tasks running side by side do not each take every core."""
    if threads is None or not hasattr(pipeline, "get_params"):
        return
    wanted = {key: threads for key, value in pipeline.get_params().items()
              if key.endswith("n_jobs") and isinstance(value, int) and not 1 <= value <= threads}
    if wanted:
        pipeline.set_params(**wanted)


def predict_scores(pipeline: Any, X: pd.DataFrame) -> np.ndarray:
    """The positive-class scores, computed in one thread: a forest predicting with several
    sums its trees in whichever order the threads finish, so the last bits of a score (and the
    order of two near-tied rows) would depend on the thread count and differ between backends.
    The pipeline keeps its own ``n_jobs`` afterwards."""
    jobs = {key: value for key, value in pipeline.get_params().items()
            if key.endswith("n_jobs") and isinstance(value, int) and value != 1}
    if jobs:
        pipeline.set_params(**dict.fromkeys(jobs, 1))
    try:
        return pipeline.predict_proba(X)[:, 1]
    finally:
        if jobs:
            pipeline.set_params(**jobs)


def build_pipeline(point: GridPoint, features: Features, seed: int = 0
                   ) -> tuple[Pipeline, dict[str, Any]]:
    """(unfitted pipeline, extra ``fit`` keyword arguments) for one grid point."""
    if point.algorithm == "score_column":
        if "column" not in point.params:
            raise ValueError("score_column needs 'column' naming the existing score")
        return Pipeline([("encode", make_encoder(point.features(features))),
                         ("model", ScoreColumnClassifier())]), {}
    features = point.features(features)
    encoder = make_encoder(features)
    n_cat = len(encoder.categorical_outputs)  # the location categories are categories too
    n_bool = len(features.boolean)
    n_num = len(features.numeric_inputs)
    n_parts = len(features.datetime.parts) if features.datetime else 0
    cat_idx = list(range(n_cat))
    params = dict(point.params)
    fit_params: dict[str, Any] = {}
    try:
        if point.algorithm == "logistic_regression":
            # hour/weekday etc. are categories for a linear model; booleans too (missing = own
            # level); numeric columns get a missing indicator and the median.
            onehot = cat_idx + list(range(n_cat, n_cat + n_bool)) + list(
                range(n_cat + n_bool + n_num, n_cat + n_bool + n_num + n_parts))
            numeric = list(range(n_cat + n_bool, n_cat + n_bool + n_num))
            transformers: list[tuple[str, Any, list[int]]] = [
                ("onehot", OneHotEncoder(handle_unknown="ignore", min_frequency=5), onehot)]
            if numeric:
                transformers.append(("numeric", numeric_preparation(n_num), numeric))
            params.setdefault("max_iter", 2000)
            model: Any = Pipeline([
                ("prepare", RowBlockColumnTransformer(transformers)),
                ("classifier", LogisticRegression(random_state=seed, **params)),
            ])
        elif point.algorithm == "random_forest":
            params.setdefault("n_jobs", -1)
            model = RandomForestClassifier(random_state=seed, **params)
        elif point.algorithm == "lightgbm":
            check_lightgbm_names(params)
            params.setdefault("verbose", -1)
            # One thread: LightGBM's OpenMP threads spin-wait, and on a busy 2-core machine a
            # 0.5 s fit was measured taking 28 s with n_jobs=2. The data here are small.
            params.setdefault("n_jobs", 1)
            if n_num >= WIDE_COLUMNS and not _lightgbm_sets(params, "feature_fraction"):
                params["colsample_bytree"] = WIDE_COLSAMPLE
            model = LGBMClassifier(random_state=seed, **params)
            if cat_idx:
                fit_params["model__categorical_feature"] = cat_idx
        elif point.algorithm == "rate_by_category":
            column = params.pop("column", None)
            if column not in features.categorical:
                raise ValueError(f"rate_by_category needs 'column' naming a categorical feature "
                                 f"(one of {', '.join(features.categorical)}), got {column!r}")
            model = CategoryRateClassifier(column_index=features.categorical.index(column),
                                           **params)
        else:
            raise ValueError(f"unknown algorithm {point.algorithm!r}")
    except TypeError as exc:
        raise ValueError(f"{point.algorithm}: bad hyperparameter ({exc})") from None
    return Pipeline([("encode", encoder), ("model", model)]), fit_params


def check_grid(grid: Sequence[tuple[GridPoint, str]], features: Features, X: pd.DataFrame,
               y: np.ndarray, build: Callable[..., tuple[Pipeline, dict[str, Any]]] = build_pipeline
               ) -> None:
    """Check every model group's parameters before anything is fitted or stored, so a typo in
    the tenth group does not fail a run after nine were stored: scikit-learn's own parameter
    checks, and for LightGBM (whose values only its C++ core checks, at fit time) a fit on at
    most 200 training rows of each label. A bad one is a ValueError naming the model."""
    sample = label_sample(y)
    for point, name in grid:
        try:
            pipeline, fit_params = build(point, features)
            model = pipeline.named_steps["model"]
            model = model.steps[-1][1] if isinstance(model, Pipeline) else model
            if point.algorithm == "lightgbm":
                pipeline.fit(X.iloc[sample], y[sample], **fit_params)
            elif hasattr(model, "_parameter_constraints"):  # scikit-learn's own estimators
                model._validate_params()
        except (ValueError, TypeError, LightGBMError) as exc:
            raise ValueError(f"{name!r}: {exc}") from None
