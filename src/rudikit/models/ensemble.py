"""Ensembles of a project's model groups (``algorithm: ensemble``).

``params: {members: 3, method: probability_average | rank_average | stack}``: after the grid,
the top ``members`` model groups of a split are averaged: in a case project the best on its
validation rows by the selection metric, in a temporal one the best by the audition rule over
the earlier splits (:mod:`rudikit.run.ensembles`). The ensemble is one scikit-learn Pipeline
like every other model (``encode`` + ``model``), so it is saved with skops, deployed and
served unchanged: its encoder encodes the union of its members' input columns once, and
:class:`AveragedMembers` hands each member its own columns of that matrix and averages their
scores.

``rank_average`` cannot rank a row among the rows of its request (one API request is one row),
so each member's score becomes its mid-rank percentile among that member's scores on the
validation rows (a temporal split's training rows, which have no validation partition), kept
in the artefact: ``(#reference < s + #reference == s / 2) / n``, in
[0, 1]. On the validation rows themselves this is ``(rankdata(scores) - 0.5) / n``.

``stack`` feeds the members' scores to a logistic regression fitted on out-of-fold scores of
the training rows only (:func:`stacking_meta`): each member refitted on four fifths of them
scores the fifth it did not see, so the meta-model never reads a validation or test label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from rudikit.config import DatetimeFeatures, Features, LocationFeatures, ModelSpec, Project
from rudikit.features.encoding import TabularEncoder

METHODS = ("probability_average", "rank_average", "stack")
PARAMETERS = frozenset({"members", "method"})


def ensemble_problems(project: Project) -> list[str]:
    """Key-path problems of the project's ensemble specs, from the project file alone: the
    method, the number of members (at least 2, at most the selectable groups of the grid),
    and a validation partition on the selection split (members are chosen there, never on
    the test rows)."""
    problems: list[str] = []
    specs = list(enumerate(project.models))
    ensembles = [(i, s) for i, s in specs if s.algorithm == "ensemble"]
    if not ensembles:
        return problems
    from rudikit.models.estimators import expand_grid

    candidates = sum(p.selectable for p in expand_grid(
        [s for _, s in specs if s.algorithm != "ensemble"]))
    split = next((s for s in project.splits if s.name == project.selection_split), None)
    for i, spec in ensembles:
        problems += parameter_problems(spec.params, f"models[{i}]", candidates)
        if split is not None and not split.has_validation:
            j = project.splits.index(split)
            problems.append(f"models[{i}]: an ensemble chooses its members on validation "
                            f"rows, and the selection split {split.name!r} has none (set "
                            f"splits[{j}].validation_size, or validation_start for a temporal "
                            "split)")
    return problems


def parameter_problems(params: dict[str, list[Any]], key: str, candidates: int) -> list[str]:
    """Key-path problems of one ensemble spec's ``params`` (``key``: where the spec is): the
    method, and a number of members of at least 2 and at most the ``candidates`` groups."""
    problems = []
    for method in params.get("method", ["probability_average"]):
        if method not in METHODS:
            problems.append(f"{key}.params.method: {method!r} is not one of "
                            f"{', '.join(METHODS)}")
    for n in params.get("members", [3]):
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            problems.append(f"{key}.params.members: {n!r} must be a whole number of at least 2")
        elif n > candidates:
            problems.append(f"{key}.params.members: {n} members asked, but the grid has only "
                            f"{candidates} candidate model group(s)")
    return problems


def with_defaults(params: dict[str, Any]) -> dict[str, Any]:
    """An ensemble point's parameters with the defaults written out (3 members,
    ``probability_average``), as its model group stores them."""
    return {**params, "members": int(params.get("members", 3)),
            "method": str(params.get("method", "probability_average"))}


def ensemble_specs(specs: Sequence[ModelSpec]) -> tuple[list[ModelSpec], list[ModelSpec]]:
    """(the grid's specs, the ensemble specs): ensembles are built after the grid's fits."""
    return ([s for s in specs if s.algorithm != "ensemble"],
            [s for s in specs if s.algorithm == "ensemble"])


class AveragedMembers(ClassifierMixin, BaseEstimator):
    """The model step of an ensemble: fitted members, each reading its own columns of the
    ensemble encoder's matrix (``columns``), averaged by ``method``. The members come fitted
    (they are the grid's stored models), so ``fit`` learns nothing: it checks the matrix."""

    def __init__(self, members: Sequence[Any] = (), columns: Sequence[Sequence[int]] = (),
                 method: str = "probability_average",
                 references: Sequence[np.ndarray] | None = None,
                 member_ids: Sequence[int] = (), meta: Any = None):
        self.members = members
        self.meta = meta  # stack: the fitted logistic regression over the members' scores
        self.member_ids = member_ids  # the stored models they are, for the record
        self.columns = columns
        self.method = method
        self.references = references

    def fit(self, X: Any, y: Any = None) -> AveragedMembers:
        if self.method not in METHODS:
            raise ValueError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        if self.method == "rank_average" and (self.references is None
                                             or len(self.references) != len(self.members)):
            raise ValueError("rank_average needs each member's reference scores")
        if self.method == "stack" and self.meta is None:
            raise ValueError("stack needs the meta-model fitted on out-of-fold scores")
        width = np.asarray(X).shape[1]
        if any(max(c, default=-1) >= width for c in self.columns):
            raise ValueError(f"a member reads a column outside the {width}-column matrix")
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = width
        self.references_ = [np.sort(np.asarray(r, dtype=float))
                            for r in (self.references or [])]
        return self

    def member_scores(self, X: Any) -> np.ndarray:
        """(rows x members): each member's positive-class score (its percentile for
        ``rank_average``)."""
        check_is_fitted(self)
        X = np.asarray(X, dtype=float)
        out = np.empty((len(X), len(self.members)))
        for j, (member, cols) in enumerate(zip(self.members, self.columns, strict=True)):
            score = member.predict_proba(X[:, list(cols)])[:, 1]
            if self.method == "rank_average":
                ref = self.references_[j]
                below = np.searchsorted(ref, score, side="left")
                up_to = np.searchsorted(ref, score, side="right")
                score = (below + up_to) / (2.0 * len(ref))
            out[:, j] = score
        return out

    def predict_proba(self, X: Any) -> np.ndarray:
        scores = self.member_scores(X)
        p = (self.meta.predict_proba(scores)[:, 1] if self.method == "stack"
             else scores.mean(axis=1))
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def _names(encoder: TabularEncoder) -> list[str]:
    """The encoder's output column names, from its settings (as ``fit`` names them)."""
    names = [*encoder.categorical_outputs, *encoder.boolean, *encoder.numeric]
    return names + ([f"{encoder.datetime}_{p}" for p in encoder.datetime_parts]
                    if encoder.datetime else [])


def union_features(members: Sequence[Pipeline]) -> Features:
    """The input columns of all members, each kind in first-seen order."""
    encoders: list[TabularEncoder] = [m.named_steps["encode"] for m in members]

    def union(kind: str) -> list[str]:
        return list(dict.fromkeys(c for e in encoders for c in getattr(e, kind)))

    dated = next((e for e in encoders if e.datetime), None)
    located = [e.location.get_params() for e in encoders if e.location is not None]
    if any(p != located[0] for p in located):
        raise ValueError("ensemble members read different location features")
    return Features(categorical=union("categorical"), boolean=union("boolean"),
                    numeric=union("numeric"),
                    datetime=None if dated is None else DatetimeFeatures(
                        column=dated.datetime, parts=list(dated.datetime_parts)),
                    location=LocationFeatures(**located[0]) if located else None)


def stacking_meta(members: Sequence[tuple[Pipeline, dict[str, Any]]], X_train: Any,
                  y_train: np.ndarray, seed: int, folds: int = 5) -> LogisticRegression:
    """The stack's meta-model: a logistic regression on each member's out-of-fold scores of
    the training rows (unfitted member pipelines with their fit arguments, refitted per
    fold by scikit-learn's ``cross_val_predict``)."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    oof = np.column_stack([
        cross_val_predict(clone(pipeline), X_train, y_train, cv=cv, method="predict_proba",
                          params=fit_params)[:, 1]
        for pipeline, fit_params in members])
    return LogisticRegression(random_state=seed).fit(oof, y_train)


def ensemble_pipeline(members: Sequence[Pipeline], method: str,
                      references: Sequence[np.ndarray] | None = None,
                      member_ids: Sequence[int] = (), meta: Any = None
                      ) -> tuple[Pipeline, Features]:
    """(the unfitted ensemble pipeline, the features it reads) over fitted member
    pipelines. Fitting it fits only its encoder, which must see the members' training
    rows so that its category codes are theirs."""
    from rudikit.models.estimators import make_encoder

    features = union_features(members)
    encoder = make_encoder(features)
    # a field the service may leave out (the group size's count) keeps the members' default:
    # the union knows the members' columns, not the spec that named the count
    defaults = {c: v for m in members
                for c, v in (m.named_steps["encode"].defaults or {}).items()}
    encoder.set_params(defaults=defaults or None)
    position = {name: i for i, name in enumerate(_names(encoder))}
    for m in members:
        parts = m.named_steps["encode"].datetime_parts if m.named_steps["encode"].datetime \
            else []
        if parts and list(parts) != list(encoder.datetime_parts):
            raise ValueError("ensemble members read different datetime parts")
    columns = [[position[n] for n in _names(m.named_steps["encode"])] for m in members]
    model = AveragedMembers([m.named_steps["model"] for m in members], columns, method,
                            references, list(member_ids), meta)
    return Pipeline([("encode", encoder), ("model", model)]), features
