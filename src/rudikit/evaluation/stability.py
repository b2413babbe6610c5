"""How stable an early intervention list is, and what a supervisor sees change on it.

* :func:`jaccard`, :func:`top_k`, :func:`top_k_jaccard` and :func:`rank_correlation`: overlap of
  two top-k lists and Spearman rank correlation of two score vectors, used between runs that
  differ only in the random seed (the same data should give the same list) and between
  consecutive as-of dates (the list should move, but not jump).
* :func:`against_reference`: lists of perturbed refits (a bootstrap of officers, one data
  source left out) against the unperturbed list, beside each one's precision in the top k.
* :func:`trees_tasks`: the top-k Jaccard between two seeds of a forest as the number of
  trees grows. DSaPP found random forests needed thousands of trees before two seeds flagged
  over 90% of the same officers; this measures the curve on our data.
* :func:`exclude_reviewed`: officers reviewed within a cool-off period are not flagged again; the
  list is filled from further down, so it still holds ``k`` officers.
* :func:`rank_changes`: each officer's rank change over a day, week, month, quarter and year
  (DSaPP's ``time_delta`` table), against the nearest earlier list at least that far back.

Lists are ranked by score, highest first; tied scores are ordered by entity id so a list is
deterministic (and two runs that tie the same way agree).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pandas.tseries.offsets import DateOffset
from scipy import stats

if TYPE_CHECKING:
    from rudikit.models.temporal import Planned

#: Rank-change horizons: name -> how far back the earlier list must be.
HORIZONS: dict[str, DateOffset] = {
    "day": DateOffset(days=1),
    "week": DateOffset(days=7),
    "month": DateOffset(months=1),
    "quarter": DateOffset(months=3),
    "year": DateOffset(years=1),
}


class StabilityError(ValueError):
    pass


# --- Overlap and correlation -----------------------------------------------------------------


def jaccard(a: Iterable[Any], b: Iterable[Any]) -> float:
    """``|A & B| / |A | B|`` of two collections (as sets); NaN when both are empty."""
    sa, sb = set(a), set(b)
    union = sa | sb
    return len(sa & sb) / len(union) if union else float("nan")


def _as_series(scores: pd.Series | Mapping[Any, float]) -> pd.Series:
    series = scores if isinstance(scores, pd.Series) else pd.Series(dict(scores), dtype=float)
    if series.index.has_duplicates:
        raise StabilityError("scores name an entity twice")
    return series.astype(float)


def ranked(scores: pd.Series | Mapping[Any, float]) -> pd.Series:
    """Scores sorted highest first, ties by entity id; NaN scores dropped."""
    series = _as_series(scores).dropna()
    frame = pd.DataFrame({"entity": series.index, "score": series.to_numpy()})
    frame = frame.sort_values(["score", "entity"], ascending=[False, True], kind="stable")
    return pd.Series(frame["score"].to_numpy(), index=frame["entity"].to_numpy(), name="score")


def top_k(scores: pd.Series | Mapping[Any, float], k: int) -> list[Any]:
    """The ``k`` entities with the highest scores (ties by entity id)."""
    if k < 1:
        raise StabilityError(f"k must be at least 1, got {k}")
    return list(ranked(scores).index[:k])


def top_k_jaccard(a: pd.Series | Mapping[Any, float], b: pd.Series | Mapping[Any, float],
                  k: int) -> float:
    """Jaccard similarity of the top-``k`` lists of two score vectors (entity -> score)."""
    return jaccard(top_k(a, k), top_k(b, k))


def rank_correlation(a: pd.Series | Mapping[Any, float], b: pd.Series | Mapping[Any, float],
                     k: int | None = None) -> float:
    """Spearman rank correlation of two score vectors over the entities both score; with
    ``k``, only over the entities in either top-``k`` list (that both score). NaN when fewer
    than two entities are compared or one side is constant."""
    sa, sb = _as_series(a).dropna(), _as_series(b).dropna()
    return _spearman(sa, sb, None if k is None else set(top_k(sa, k)) | set(top_k(sb, k)))


def _spearman(sa: pd.Series, sb: pd.Series, keep: set[Any] | None) -> float:
    """:func:`rank_correlation` of two series without NaN, over the entities in ``keep``
    (None: all) that both score."""
    common = sa.index.intersection(sb.index)
    if keep is not None:
        common = common[common.isin(list(keep))]
    if len(common) < 2:
        return float("nan")
    x, y = sa.loc[common].to_numpy(), sb.loc[common].to_numpy()
    if np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def pairwise_stability(scores: Mapping[Any, pd.Series], k: int) -> pd.DataFrame:
    """Every pair of score vectors (e.g. one per seed): top-``k`` Jaccard and Spearman."""
    rows = []
    for (name_a, a), (name_b, b) in itertools.combinations(scores.items(), 2):
        rows.append({"a": name_a, "b": name_b, "k": k, "jaccard": top_k_jaccard(a, b, k),
                     "spearman": rank_correlation(a, b),
                     "spearman_top_k": rank_correlation(a, b, k)})
    return pd.DataFrame(rows, columns=["a", "b", "k", "jaccard", "spearman", "spearman_top_k"])


def against_reference(reference: pd.Series, lists: Mapping[Any, pd.Series | None],
                      labels: pd.Series, k: int) -> pd.DataFrame:
    """Each list (e.g. the model refitted without one data source) against the ``reference``
    list of the same date: top-``k`` Jaccard, Spearman over the entities both score, and the
    precision in the top ``k`` of each list (``labels``: entity -> 0/1; ties counted
    fractionally, as the stored evaluations). A list that is None gets NaN."""
    from rudikit.evaluation.metrics import precision_at_k

    def precision(scores: pd.Series) -> float:
        scores = _as_series(scores).dropna()
        return precision_at_k(labels.reindex(scores.index).to_numpy(dtype=float),
                              scores.to_numpy(), k)

    if labels.reindex(reference.index).isna().any():
        raise StabilityError("labels do not cover every entity of the reference list")
    rows = [{"name": name, "k": k,
             "jaccard": top_k_jaccard(reference, scores, k) if scores is not None else np.nan,
             "spearman": rank_correlation(reference, scores) if scores is not None else np.nan,
             "precision_at_k": precision(scores) if scores is not None else np.nan,
             "reference_precision_at_k": precision(reference)}
            for name, scores in lists.items()]
    return pd.DataFrame(rows, columns=["name", "k", "jaccard", "spearman", "precision_at_k",
                                       "reference_precision_at_k"])


def consecutive_stability(scores_by_date: Mapping[Any, pd.Series], k: int) -> pd.DataFrame:
    """Each list against the one before it (dates in order): top-``k`` Jaccard, Spearman over
    the officers on both dates, and how many officers each date shares with the one before."""
    dates = sorted(scores_by_date, key=pd.Timestamp)
    lists = {d: _as_series(scores_by_date[d]).dropna() for d in dates}
    # each list ranked once (a sort by score and entity id), not once per pair and figure
    tops = {d: top_k(lists[d], k) for d in dates}
    rows = []
    for before, after in itertools.pairwise(dates):
        a, b = lists[before], lists[after]
        rows.append({"previous_date": pd.Timestamp(before), "as_of_date": pd.Timestamp(after),
                     "k": k, "jaccard": jaccard(tops[before], tops[after]),
                     "spearman": _spearman(a, b, None),
                     "spearman_top_k": _spearman(a, b, set(tops[before]) | set(tops[after])),
                     "common_entities": len(a.index.intersection(b.index))})
    return pd.DataFrame(rows, columns=["previous_date", "as_of_date", "k", "jaccard",
                                       "spearman", "spearman_top_k", "common_entities"])


# --- Stability against the number of trees ---------------------------------------------------


def _fit_forest(algorithm: str, n_estimators: int, seed: int, params: Mapping[str, Any],
                model: Any | None) -> Any:
    """A forest of ``n_estimators`` trees; a random forest grows from ``model`` (warm start),
    which sklearn makes identical to a fresh fit with the same seed, so the curve costs the
    largest forest only."""
    from lightgbm import LGBMClassifier
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    if algorithm in ("random_forest", "extra_trees"):
        if model is None:
            cls = RandomForestClassifier if algorithm == "random_forest" else ExtraTreesClassifier
            model = cls(random_state=seed, warm_start=True, **{"n_jobs": 1, **params})
        model.set_params(n_estimators=n_estimators)
        return model
    if algorithm == "lightgbm":
        return LGBMClassifier(random_state=seed, n_estimators=n_estimators,
                              **{"verbose": -1, "n_jobs": 1, **params})
    raise StabilityError(f"stability vs trees: unknown algorithm {algorithm!r} "
                         "(random_forest, extra_trees, lightgbm)")


def check_forest(algorithm: str, params: Mapping[str, Any], X: np.ndarray, y: np.ndarray
                 ) -> None:
    """Refuse a bad parameter of the stability-vs-trees forest before anything is fitted (the
    curve is drawn only after the whole grid): scikit-learn's own checks; for LightGBM, which
    ignores unknown names and checks values only when fitting, its names and a fit on ``X``,
    ``y`` (a small sample of the training rows). A bad one is a :class:`StabilityError`."""
    from lightgbm.basic import LightGBMError

    from rudikit.models.estimators import check_lightgbm_names

    try:
        model = _fit_forest(algorithm, 1, 0, params, None)
        if algorithm == "lightgbm":
            check_lightgbm_names(params)
            model.fit(X, y)
        else:
            model._validate_params()
    except (TypeError, ValueError, LightGBMError) as exc:
        raise StabilityError(f"{algorithm}: {exc}") from None


def forest_by_size(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                   algorithm: str, sizes: Sequence[int], seed: int, params: Mapping[str, Any],
                   *, threads: int | None = None) -> list[tuple[int, np.ndarray, float]]:
    """One seed's part of :func:`trees_tasks`, a task of its own: the forest grown
    through ``sizes`` trees and, at each size, its scores on ``X_test`` and its fit seconds (a
    random forest's cumulative, as it grows; LightGBM's, refitted, its own). The executor's
    ``threads`` are not used: a forest predicting on several threads adds its trees' votes
    in the order the threads finish, so its scores, and a tie in the list, could change from
    run to run; one thread keeps every backend's figures the same."""
    del threads
    # a local worker gets the matrices memory-mapped read-only, which scikit-learn's check of
    # a forest's missing values refuses ("buffer source array is read-only"): a private copy
    X_train, X_test = (np.require(X, requirements="W") for X in (X_train, X_test))
    model, elapsed, out = None, 0.0, []
    for n in sizes:
        started = time.perf_counter()
        model = _fit_forest(algorithm, n, seed, params, model)
        model.fit(X_train, y_train)
        elapsed = (elapsed if algorithm != "lightgbm" else 0.0) + time.perf_counter() - started
        out.append((n, model.predict_proba(X_test)[:, 1], elapsed))
    return out


def trees_tasks(X_train: np.ndarray | pd.DataFrame, y_train: np.ndarray,
                X_test: np.ndarray | pd.DataFrame, entity_ids: Sequence[Any], *,
                algorithm: str = "random_forest",
                n_estimators: Sequence[int] = (100, 300, 1000, 3000),
                seeds: Sequence[int] = (0, 1), k: int = 100,
                params: Mapping[str, Any] | None = None,
                y_test: np.ndarray | None = None,
                progress: Callable[[str], None] | None = None) -> Planned[pd.DataFrame]:
    """Top-``k`` Jaccard (and Spearman) between every pair of ``seeds`` of the same model at
    each number of trees, scored on ``X_test`` (one as-of date: one list).

    ``X_*`` are numeric matrices (NaN allowed). Each seed's forest is a task, so the seeds
    grow at once on workers; planned, so a caller may run them in a batch with other tasks or
    alone (``.run(run_each)``). The plan's value: one row per (n_estimators, pair of seeds)
    with the mean fit seconds per seed and, when ``y_test`` is given, the mean precision in
    the top ``k`` of the seeds (ties counted fractionally). A forest's cost is a grid point's
    expected cost of its trees (a random forest: the largest, grown once; LightGBM: every
    size, refitted)."""
    from rudikit.evaluation.metrics import precision_at_k
    from rudikit.models.estimators import GridPoint
    from rudikit.models.temporal import Planned

    if len(seeds) < 2:
        raise StabilityError("stability vs trees needs at least two seeds")
    params = dict(params or {})
    X_train = np.asarray(X_train, dtype=np.float32)
    X_test = np.asarray(X_test, dtype=np.float32)
    entity_ids = list(entity_ids)
    sizes = sorted({int(n) for n in n_estimators})
    calls = [(X_train, y_train, X_test, algorithm, sizes, seed, params) for seed in seeds]
    grown_sizes = sizes if algorithm == "lightgbm" else sizes[-1:]
    cost = sum(GridPoint(algorithm, {**params, "n_estimators": n}).expected_cost(len(X_train))
               for n in grown_sizes)

    def collect(results: Iterator[Any]) -> pd.DataFrame:
        scores: dict[tuple[int, int], pd.Series] = {}
        seconds: dict[tuple[int, int], float] = {}
        for seed, grown in zip(seeds, results, strict=True):
            for n, score, elapsed in grown:
                scores[(n, seed)] = pd.Series(score, index=entity_ids)
                seconds[(n, seed)] = elapsed
                if progress:
                    progress(f"{algorithm} seed {seed}: {n} trees ({elapsed:.1f} s)")
        rows = []
        for n in sizes:
            for a, b in itertools.combinations(seeds, 2):
                row = {"algorithm": algorithm, "n_estimators": n, "seed_a": a, "seed_b": b,
                       "k": k, "jaccard": top_k_jaccard(scores[(n, a)], scores[(n, b)], k),
                       "spearman": rank_correlation(scores[(n, a)], scores[(n, b)]),
                       "fit_seconds": float(np.mean([seconds[(n, s)] for s in (a, b)]))}
                if y_test is not None:
                    row["precision_at_k"] = float(np.mean([
                        precision_at_k(np.asarray(y_test), scores[(n, s)].to_numpy(), k)
                        for s in (a, b)]))
                rows.append(row)
        return pd.DataFrame(rows)

    return Planned(forest_by_size, calls, [cost] * len(calls), collect)


# --- Lists supervisors see -------------------------------------------------------------------


def exclude_reviewed(ranked_list: pd.DataFrame | pd.Series, reviews: pd.DataFrame,
                     as_of: Any, cool_off_days: int, k: int | None = None, *,
                     entity_col: str = "entity_id", score_col: str = "score",
                     review_date_col: str = "review_date") -> pd.DataFrame:
    """The list without officers reviewed within ``cool_off_days`` before ``as_of``.

    An officer reviewed on day ``r`` is not flagged on ``as_of`` while
    ``0 <= as_of - r < cool_off_days`` days (a review on the as-of date itself counts; reviews
    dated after ``as_of`` were not known then and are ignored); from day ``r + cool_off_days``
    on the officer can be flagged again. ``ranked_list`` is entity -> score (a Series) or a
    frame with ``entity_col`` and ``score_col``; the result is re-ranked (``rank`` 1 = top,
    ``original_rank`` the rank before exclusion) and cut to ``k`` when given, so excluded
    officers' places are filled from further down the list."""
    if cool_off_days < 0:
        raise StabilityError("cool_off_days must be zero or more")
    if isinstance(ranked_list, pd.Series):
        frame = pd.DataFrame({entity_col: ranked_list.index, score_col: ranked_list.to_numpy()})
    else:
        frame = ranked_list[[entity_col, score_col]].copy()
    frame = frame.sort_values([score_col, entity_col], ascending=[False, True], kind="stable")
    frame["original_rank"] = np.arange(1, len(frame) + 1)
    when = pd.Timestamp(as_of)
    dates = pd.to_datetime(reviews[review_date_col])
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert(None)
    age = (when - dates).dt.days
    recent = reviews.loc[(age >= 0) & (age < cool_off_days), entity_col]
    keep = ~frame[entity_col].isin(set(recent))
    out = frame[keep].reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    if k is not None:
        out = out.head(k)
    return out[[entity_col, score_col, "rank", "original_rank"]]


def _ranks(scores: pd.Series) -> pd.Series:
    """Rank 1 = highest score; ties share the best rank of their run (as the store's)."""
    return scores.rank(method="min", ascending=False).astype(int)


def rank_changes(scores_by_date: pd.DataFrame | Mapping[Any, pd.Series],
                 horizons: Mapping[str, DateOffset] = HORIZONS, *,
                 dates: Sequence[Any] | None = None, entity_col: str = "entity_id",
                 date_col: str = "as_of_date", score_col: str = "score") -> pd.DataFrame:
    """Per entity, list date and horizon: the rank on that date, the rank on the nearest
    earlier list dated at least the horizon before it, and the change (``previous_rank -
    rank``: positive means the officer moved up towards the top).

    ``scores_by_date`` is a long frame (entity, date, score) or date -> (entity -> score).
    ``dates`` limits which list dates get rows (default: all). An entity missing from the
    earlier list, or a horizon with no list far enough back, has no previous rank (NaN)."""
    if isinstance(scores_by_date, Mapping):
        lists = {pd.Timestamp(d): _as_series(s).dropna() for d, s in scores_by_date.items()}
    else:
        lists = {pd.Timestamp(d): pd.Series(g[score_col].to_numpy(dtype=float),
                                            index=g[entity_col].to_numpy()).dropna()
                 for d, g in scores_by_date.groupby(date_col)}
    if not lists:
        return pd.DataFrame(columns=[entity_col, date_col, "horizon", "rank", "previous_date",
                                     "previous_rank", "change"])
    order = sorted(lists)
    ranks = {d: _ranks(lists[d]) for d in order}
    wanted = order if dates is None else [pd.Timestamp(d) for d in dates]
    frames = []
    for when in wanted:
        if when not in ranks:
            raise StabilityError(f"no list dated {when:%Y-%m-%d}")
        now = ranks[when]
        for name, offset in horizons.items():
            limit = when - offset
            earlier = [d for d in order if d <= limit]
            previous = earlier[-1] if earlier else None
            prev = (ranks[previous].reindex(now.index) if previous is not None
                    else pd.Series(np.nan, index=now.index))
            frames.append(pd.DataFrame({
                entity_col: now.index, date_col: when, "horizon": name,
                "rank": now.to_numpy(), "previous_date": previous,
                "previous_rank": prev.to_numpy(dtype=float),
                "change": prev.to_numpy(dtype=float) - now.to_numpy(),
            }))
    out = pd.concat(frames, ignore_index=True)
    out["previous_date"] = pd.to_datetime(out["previous_date"])
    out["previous_rank"] = out["previous_rank"].astype("Int64")
    out["change"] = out["change"].astype("Int64")
    return out
