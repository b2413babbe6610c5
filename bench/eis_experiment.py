"""The early intervention experiment on the Chicago CPDB data, end to end.

For two labels, (a) any complaint in the next 12 months (test years 2013-2016) and (c) a
use-of-force report with an injury in the next 12 months (test years 2012-2015):

1. features for every active officer on yearly as-of dates, labels, timechop splits (yearly
   retraining, three years of yearly training as-of dates, one test list per year);
2. a small grid (two single-feature baselines, logistic regression, LightGBM in three
   settings, a random forest) fitted on every split and stored in a SQLite results store under
   a temporary folder (``--out`` keeps it);
3. precision in the top 100 per test year and its mean, per model group, baselines first;
4. audition: every selection rule's choice at each retraining, from past years only, and its
   regret in the next year;
5. the chosen model (the rule with the lowest mean regret, applied to every year) refitted
   with two seeds: top-100 Jaccard and Spearman; its lists on consecutive days, weeks and
   months after the last test date and from year to year; rank changes over a day, week,
   month, quarter and year; reviewed officers kept off the list for the cool-off;
6. the stability-vs-trees curve of a random forest (top-100 Jaccard between two seeds at
   100, 300, 1,000 and 3,000 trees) on the last test date of label (a);

and prints the total runtime. Run: ``.venv/bin/python bench/eis_experiment.py [--labels a c]
[--trees 100 300 1000 3000] [--out FOLDER]``. Without the CPDB files it says so and exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rudikit.data.cpdb import load_cpdb
from rudikit.evaluation.stability import (
    consecutive_stability,
    exclude_reviewed,
    pairwise_stability,
    rank_changes,
    stability_vs_trees,
    top_k,
)
from rudikit.features.asof import table_fingerprint
from rudikit.models.audition import audition
from rudikit.models.temporal import (
    TemporalExperiment,
    consecutive_dates,
    grid_point,
    prepare,
    run_temporal,
    seed_lists,
    training_matrix,
)
from rudikit.store import list_tables, results
from rudikit.store.engine import open_store

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

BASELINES = [
    {"algorithm": "rank_by_feature", "name": "baseline: complaints past year",
     "params": {"column": "cmp_all_1year_count", "tie_break": "cmp_all_5year_count"}},
    {"algorithm": "rank_by_feature", "name": "baseline: uses of force past year",
     "params": {"column": "uof_all_1year_count", "tie_break": "uof_all_5year_count"}},
]
MODELS = [
    {"algorithm": "logistic_regression", "name": "logistic regression (C=0.1)",
     "params": {"C": 0.1, "solver": "newton-cholesky"}},
    {"algorithm": "lightgbm", "name": "lightgbm untuned (100 trees)", "params": {}},
    {"algorithm": "lightgbm", "name": "lightgbm 500 trees, 15 leaves",
     "params": {"n_estimators": 500, "learning_rate": 0.02, "num_leaves": 15,
                "min_child_samples": 100}},
    {"algorithm": "lightgbm", "name": "lightgbm 400 trees, 7 leaves",
     "params": {"n_estimators": 400, "learning_rate": 0.02, "num_leaves": 7,
                "min_child_samples": 300}},
    {"algorithm": "random_forest", "name": "random forest (1000 trees)",
     "params": {"n_estimators": 1000, "min_samples_leaf": 20, "max_features": "sqrt",
                "max_samples": 0.1}},
]
RF_CURVE = {"min_samples_leaf": 20, "max_features": "sqrt", "max_samples": 0.1}


def experiment_configs() -> dict[str, dict[str, Any]]:
    """The two experiments as the dicts a ``rudi.yaml`` would hold."""
    common = {
        "model_update_frequency": "1year", "training_as_of_date_frequencies": "1year",
        "max_training_histories": "3year", "training_label_timespans": "1year",
        "test_as_of_date_frequencies": "1year", "test_durations": "0day",
        "test_label_timespans": "1year",
    }
    shared = {"models": BASELINES + MODELS, "top_k": 100, "bootstrap": 200, "seed": 0,
              "cool_off_days": 365,
              "stability": {"seeds": [0, 1], "algorithm": "random_forest",
                            "n_estimators": [100, 300, 1000, 3000], "params": RF_CURVE,
                            "consecutive": {"days": 14, "weeks": 12, "months": 3}},
              "selection_rules": [
                  {"name": "best_current_value"}, {"name": "best_average_value"},
                  {"name": "lowest_metric_variance"},
                  {"name": "best_avg_var_penalized", "param": 0.5},
                  {"name": "best_avg_var_penalized", "param": 1.0},
                  {"name": "best_avg_var_penalized", "param": 2.0},
                  {"name": "best_avg_recency_weight", "param": 0.5},
                  {"name": "most_frequent_best_dist", "param": 0.02}]}
    return {
        "a": {"name": "eis_chicago", "label": "any_complaint", "test_from": "2013-01-01",
              "timechop": {"feature_start_time": "2000-01-01",
                           "feature_end_time": "2016-01-01",
                           "label_start_time": "2009-01-01", "label_end_time": "2017-01-01",
                           **common}, **shared},
        "c": {"name": "eis_chicago", "label": "injury_use_of_force",
              "test_from": "2012-01-01",
              "timechop": {"feature_start_time": "2004-01-01",
                           "feature_end_time": "2015-01-01",
                           "label_start_time": "2008-01-01", "label_end_time": "2016-01-01",
                           **common}, **shared},
    }


class Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"  [{time.perf_counter() - self.start:6.0f} s] {message}", flush=True)


def show(frame: pd.DataFrame, floatfmt: str = "{:.3f}") -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.max_colwidth", 40):
        print(frame.to_string(float_format=lambda v: floatfmt.format(v)))


def run_label(key: str, cpdb_tables: dict[str, pd.DataFrame], engine: Any, out: Path,
              clock: Clock, trees: list[int] | None) -> dict[str, Any]:
    config = TemporalExperiment(**experiment_configs()[key])
    payload = config.model_dump(mode="json")
    run_id = results.start_run(engine, config.name, hashlib.sha256(json.dumps(
        payload, sort_keys=True).encode()).hexdigest(), payload, config.seed, "real")
    for name, frame in cpdb_tables.items():
        dates = frame.select_dtypes("datetime").stack() if len(frame) else pd.Series()
        results.record_snapshot(engine, run_id, source=f"cpdb.{name}", kind="chicago_cpdb",
                                location=str(SHARED_DATA / "eis" / "chicago_cpdb"), files=1,
                                rows=len(frame), bad_rows=0, warnings=0,
                                checksum=table_fingerprint(frame),
                                min_date=dates.min() if len(dates) else None,
                                max_date=dates.max() if len(dates) else None)
    splits = config.splits()
    last_test = splits[-1].split_time
    extra = consecutive_dates(last_test, config.stability.consecutive)
    data = prepare(config, cpdb_tables, cache_dir=out / "cache", extra_dates=extra)
    n_rows = len(data.features)
    clock(f"({key}) {config.label}: {len(splits)} splits, {n_rows:,} officer-dates, "
          f"{len(data.feature_config.numeric)} numeric + {len(data.feature_config.categorical)} "
          f"categorical features (features {data.seconds['features']:.0f} s, labels "
          f"{data.seconds['labels']:.0f} s)")
    result = run_temporal(config, cpdb_tables, engine=engine, run_id=run_id,
                          artefacts_dir=out / "models", progress=clock, data=data)
    table = result.precision_table()
    print(f"\n({key}) {config.label}: precision in the top {config.top_k} per test year and "
          "the mean over the years")
    cols = [c for c in table.columns if c[:2] in ("19", "20")]
    shown = table[["name", *cols, "mean"]].set_index("name")
    shown.columns = [c[:4] if c != "mean" else c for c in shown.columns]
    show(shown)
    intervals = result.metrics.assign(
        year=result.metrics["as_of_date"].dt.year,
        interval=[f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(result.metrics["lower"],
                                                            result.metrics["upper"],
                                                            strict=True)])
    print(f"95% bootstrap intervals ({config.bootstrap} resamples of the officers on each "
          "date) and positives / officers scored:")
    show(intervals.pivot(index="name", columns="year", values="interval")
         .reindex(shown.index))
    counts = intervals.drop_duplicates("year").set_index("year")
    print("  " + ", ".join(f"{y}: {r.positives:,} / {r.n:,}" for y, r in counts.iterrows()))
    fits = result.metrics.groupby("name")["train_seconds"].mean()
    print("mean fit seconds: " + ", ".join(f"{n}: {s:.1f}" for n, s in fits.items()))

    # Audition over the model groups (baselines included: a rule may rightly pick one).
    aud = audition(result.split_metrics(), config.rules(), time_col="split_time")
    names = result.groups.set_index("model_group_id")["name"]
    summary = aud.summary.assign(final_choice=aud.summary["final_choice"].map(names))
    print(f"\n({key}) audition: each rule picks from past years only, regret = best that year "
          "- chosen")
    regrets = aud.regrets.assign(chosen=aud.regrets["chosen_group"].map(names),
                                 year=pd.to_datetime(aud.regrets["period"]).dt.year)
    print("  the group each rule would have deployed at each yearly retraining:")
    per_year = regrets.pivot(index="rule", columns="year", values="chosen")
    show(per_year)
    show(summary[["rule", "periods_scored", "mean_regret", "max_regret", "mean_chosen_value",
                  "final_choice", "final_choice_mean"]])
    best_rule = aud.summary.iloc[0]
    chosen_group = int(best_rule["final_choice"])
    chosen_name = names[chosen_group]
    last_model = result.metrics[(result.metrics["model_group_id"] == chosen_group)
                                & (result.metrics["split_time"] == last_test)]
    reason = (f"audition rule {best_rule['rule']} (lowest mean regret "
              f"{best_rule['mean_regret']:.3f} over {best_rule['periods_scored']} years) picks "
              f"{chosen_name}: mean precision@{config.top_k} {best_rule['final_choice_mean']:.3f}")
    results.mark_selected(engine, int(last_model["model_id"].iloc[0]), reason)
    print(f"\n({key}) chosen: {reason}")

    # Seeds, consecutive lists, rank changes, reviewed officers.
    point = grid_point(result, chosen_group)
    by_seed, by_date = seed_lists(data, point, config.stability.seeds, extra_dates=extra,
                                  progress=clock)
    pairs = pairwise_stability(by_seed, config.top_k)
    stability_rows = [{"kind": "seeds", "model_group_id": chosen_group,
                       "algorithm": point.algorithm, "parameter": f"{r.a}/{r.b}",
                       "as_of_date": last_test, "k": config.top_k, "metric": metric,
                       "value": getattr(r, metric)}
                      for r in pairs.itertuples() for metric in ("jaccard", "spearman")]
    print(f"({key}) two seeds of the chosen model on {last_test:%Y-%m-%d}: "
          + "; ".join(f"seeds {r.a}/{r.b} top-{config.top_k} Jaccard {r.jaccard:.3f}, "
                      f"Spearman {r.spearman:.4f}" for r in pairs.itertuples()))
    yearly = {d: result.scores(chosen_group, d) for d in sorted(result.metrics["as_of_date"]
                                                                .unique())}
    end = extra[-1]
    settings = config.stability.consecutive
    spacing = {
        "day": [d for d in extra if end - d <= pd.Timedelta(days=settings.days)],
        "week": [d for d in (last_test + pd.DateOffset(weeks=i)
                             for i in range(settings.weeks + 1)) if d <= end],
        "month": [last_test + pd.DateOffset(months=i) for i in range(settings.months + 1)],
    }
    print(f"({key}) consecutive lists of the chosen model (top-{config.top_k} Jaccard, "
          "Spearman over all officers): mean [min, max]")
    for name, dates in [*spacing.items(), ("year", list(yearly))]:
        lists = {d: (by_date[d] if name != "year" else yearly[d]) for d in dates}
        cons = consecutive_stability(lists, config.top_k)
        stability_rows += [{"kind": "consecutive", "model_group_id": chosen_group,
                            "algorithm": point.algorithm,
                            "parameter": f"{r.previous_date:%Y-%m-%d}/{r.as_of_date:%Y-%m-%d}",
                            "as_of_date": r.as_of_date, "k": config.top_k, "metric": metric,
                            "value": getattr(r, metric), "details": {"spacing": name}}
                           for r in cons.itertuples() for metric in ("jaccard", "spearman")]
        print(f"  {name:>5} ({len(cons)} pairs): Jaccard {cons['jaccard'].mean():.3f} "
              f"[{cons['jaccard'].min():.3f}, {cons['jaccard'].max():.3f}], Spearman "
              f"{cons['spearman'].mean():.3f}")
    lists = {**{d: s for d, s in yearly.items() if d < last_test}, **by_date}
    final = max(by_date)
    changes = rank_changes(lists, dates=[final])
    list_tables.record_rank_changes(engine, run_id, changes, chosen_group)
    top = changes[changes["rank"] <= config.top_k]
    print(f"({key}) rank changes of the top {config.top_k} on {final:%Y-%m-%d} (vs the nearest "
          "list at least that far back): horizon, earlier list, new to the top "
          f"{config.top_k}, median |change| of those ranked before")
    for horizon, part in top.groupby("horizon", sort=False):
        entered = int((part["previous_rank"].isna() | (part["previous_rank"] > config.top_k))
                      .sum())
        moved = part["change"].dropna().abs()
        previous = part["previous_date"].iloc[0]
        print(f"  {horizon:>7}: {previous:%Y-%m-%d}  new {entered:3d}  median |change| "
              f"{moved.median():.0f}")
    first_list, later = by_date[last_test], last_test + pd.DateOffset(months=1)
    reviews = pd.DataFrame({"entity_id": top_k(first_list, config.top_k),
                            "review_date": last_test})
    plain = top_k(by_date[later], config.top_k)
    kept = exclude_reviewed(by_date[later], reviews, later, config.cool_off_days,
                            config.top_k)
    print(f"({key}) reviewed officers: if the {config.top_k} flagged on {last_test:%Y-%m-%d} are "
          f"reviewed that day, the {later:%Y-%m-%d} list would re-flag "
          f"{len(set(plain) & set(reviews['entity_id']))} of them; with a "
          f"{config.cool_off_days}-day cool-off they are skipped and the list reaches down to "
          f"rank {int(kept['original_rank'].max())}")

    curve = None
    if trees:
        X_train, y_train, X_test, test = training_matrix(data)
        curve = stability_vs_trees(
            X_train, y_train, X_test, test["officer_uid"].astype("string"),
            algorithm=config.stability.algorithm, n_estimators=trees,
            seeds=config.stability.seeds, k=config.top_k, params=config.stability.params,
            y_test=test[config.label].to_numpy(), progress=clock)
        stability_rows += [{"kind": "trees", "algorithm": r.algorithm,
                            "parameter": f"n_estimators={r.n_estimators}",
                            "as_of_date": last_test, "k": config.top_k, "metric": metric,
                            "value": getattr(r, metric),
                            "details": {"seeds": [r.seed_a, r.seed_b],
                                        "params": config.stability.params}}
                           for r in curve.itertuples()
                           for metric in ("jaccard", "spearman", "precision_at_k")]
        print(f"\n({key}) stability vs trees: {config.stability.algorithm} "
              f"{config.stability.params}, seeds {config.stability.seeds}, test date "
              f"{last_test:%Y-%m-%d}")
        show(curve[["n_estimators", "jaccard", "spearman", "precision_at_k", "fit_seconds"]])
    list_tables.record_list_stability(engine, run_id, stability_rows)
    results.finish_run(engine, run_id, "finished")
    return {"table": shown, "audition": summary, "pairs": pairs, "curve": curve,
            "chosen": chosen_name, "rule": best_rule["rule"],
            "regret": float(best_rule["mean_regret"]), "seconds": result.seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_DATA))
    parser.add_argument("--labels", nargs="+", default=["a", "c"], choices=["a", "c"])
    parser.add_argument("--trees", nargs="*", type=int, default=[100, 300, 1000, 3000],
                        help="stability-vs-trees sizes (run on the first label; none to skip)")
    parser.add_argument("--out", default=None, help="keep the store and cache in this folder")
    args = parser.parse_args()
    if not (Path(args.data) / "eis" / "chicago_cpdb" / "final-profiles.csv.gz").exists():
        print(f"CPDB files not found under {args.data}: nothing to run")
        return 0
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        engine = open_store(f"sqlite:///{out / 'rudi.db'}")
        cpdb = load_cpdb(args.data)
        clock(f"CPDB loaded and linked; store {out / 'rudi.db'}")
        tables = cpdb.tables()
        done = {}
        for i, key in enumerate(args.labels):
            done[key] = run_label(key, tables, engine, out, clock,
                                  args.trees if i == 0 and args.trees else None)
        print("\nsummary: mean precision@100 over the test years")
        for key, res in done.items():
            mean = res["table"]["mean"]
            best_base = mean[mean.index.str.startswith("baseline")].max()
            print(f"  ({key}) best baseline {best_base:.3f}; best model "
                  f"{mean.drop(mean.index[mean.index.str.startswith('baseline')]).max():.3f}; "
                  f"chosen {res['chosen']} {mean[res['chosen']]:.3f} (by {res['rule']}, mean "
                  f"regret {res['regret']:.3f}); seed Jaccard {res['pairs']['jaccard'].min():.3f}")
        engine.dispose()
    print(f"\ntotal runtime {time.perf_counter() - clock.start:.0f} s")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
