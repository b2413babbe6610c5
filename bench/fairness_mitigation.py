"""Benchmark: per-group thresholds for race (6) x sex (2) = 12 groups on 100,000 rows.

Run: ``.venv/bin/python bench/fairness_mitigation.py [--rows 100000] [--extra-groups]``

For each configuration it reports fit time (a plain timed run), peak traced memory (a second
run under tracemalloc, which sees numpy and pandas buffers), the achieved largest pairwise gap
on the training data and the objective, next to fairlearn's ``ThresholdOptimizer`` on the same
scores as the baseline. fairlearn randomises its decisions; its gap and objective are measured
on one draw (``random_state=0``). Targets for our fit: under 10 s and under 1 GB.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from rudikit.fairness.mitigation.fairlearn_baseline import FairlearnBaseline
from rudikit.fairness.mitigation.optimizer import GroupThresholdOptimizer
from rudikit.fairness.mitigation.rates import constraint_gap

RACES = ["White", "Black", "Asian", "Mixed", "Other", "Unknown"]


def make_data(
    n: int, seed: int = 0, extra_groups: bool = False
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Synthetic risk scores with group-dependent base rates and score shifts (so a single
    threshold produces large disparities that mitigation must remove)."""
    rng = np.random.default_rng(seed)
    race = rng.choice(RACES, n, p=[0.55, 0.14, 0.12, 0.07, 0.07, 0.05])
    sex = rng.choice(["F", "M"], n, p=[0.3, 0.7])
    shift = pd.Series(race).map(dict(zip(RACES, [0.0, 0.5, -0.3, 0.3, -0.2, 0.1], strict=True)))
    shift = shift.to_numpy() + np.where(sex == "M", 0.4, 0.0)
    cols: dict[str, np.ndarray] = {"race": race, "sex": sex}
    if extra_groups:
        age = rng.choice(["<25", "25-34", "35-49", "50+"], n, p=[0.3, 0.3, 0.25, 0.15])
        shift = shift + pd.Series(age).map({"<25": 0.3, "25-34": 0.1, "35-49": -0.1, "50+": -0.3})
        shift = np.asarray(shift, dtype=float)
        cols["age"] = age
    y = (rng.random(n) < 1 / (1 + np.exp(-(shift - 1.2 + rng.normal(0, 1, n))))).astype(int)
    scores = 1 / (1 + np.exp(-(0.7 * shift + 1.8 * y + rng.normal(0, 1, n) - 1.8)))
    return scores, y, pd.DataFrame(cols)


def measure(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MiB): one timed run, then one run under tracemalloc."""
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def run(rows: int, extra_groups: bool) -> list[dict[str, Any]]:
    scores, y, groups = make_data(rows, extra_groups=extra_groups)
    n_groups = groups.drop_duplicates().shape[0]
    label = f"{n_groups} groups"
    out: list[dict[str, Any]] = []

    def ours(**kw: Any) -> GroupThresholdOptimizer:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return GroupThresholdOptimizer(**kw).fit(scores, y, groups)

    configs = [
        ("demographic_parity", "accuracy", 0.02, {}),
        ("demographic_parity", "f1", 0.02, {}),
        ("equal_opportunity", "accuracy", 0.02, {}),
        ("equalized_odds", "accuracy", 0.02, {}),
        ("demographic_parity", "precision_at_k", 0.02, {"top_pct": 10}),
        ("equalized_odds", "precision_at_k", 0.05, {"top_pct": 10}),
    ]
    for constraint, objective, tol, extra in configs:
        est, sec, mib = measure(
            lambda c=constraint, o=objective, t=tol, e=extra: ours(
                constraint=c, objective=o, tolerance=t, **e
            )
        )
        mode = f"fixed k={est.k_}" if est.k_ else "thresholds"
        out.append(
            {
                "groups": label,
                "method": f"rudikit ({mode})",
                "constraint": constraint,
                "objective": objective,
                "tol": tol,
                "fit_s": sec,
                "peak_MiB": mib,
                "largest_gap": est.achieved_gap_,
                "objective_value": est.objective_value_,
                "unmitigated_gap": est.baseline_["achieved_gap"],
                "unmitigated_obj": est.baseline_["objective_value"],
            }
        )

    fl_configs = [
        ("demographic_parity", 0.02),
        ("demographic_parity", None),
        ("equal_opportunity", 0.02),
        ("equalized_odds", None),  # fairlearn: no tolerance for equalised odds (exact equality)
    ]
    for constraint, tol in fl_configs:
        fl, sec, mib = measure(
            lambda c=constraint, t=tol: FairlearnBaseline(c, "accuracy", tolerance=t).fit(
                scores, y, groups
            )
        )
        d = fl.predict(scores, groups, random_state=0)
        out.append(
            {
                "groups": label,
                "method": "fairlearn ThresholdOptimizer",
                "constraint": constraint,
                "objective": "accuracy",
                "tol": np.nan if tol is None else tol,
                "fit_s": sec,
                "peak_MiB": mib,
                "largest_gap": constraint_gap(y, d, groups, constraint),
                "objective_value": float((d == y).mean()),
                "unmitigated_gap": np.nan,
                "unmitigated_obj": np.nan,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--extra-groups", action="store_true", help="also run race x sex x age band (48 groups)"
    )
    args = parser.parse_args(argv)
    results = run(args.rows, extra_groups=False)
    if args.extra_groups:
        results += run(args.rows, extra_groups=True)
    frame = pd.DataFrame(results)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print(f"rows={args.rows}  python={sys.version.split()[0]}")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    ours = frame[frame["method"].str.startswith("rudikit")]
    print(
        f"\nrudikit worst fit: {ours['fit_s'].max():.2f} s, "
        f"worst peak traced memory: {ours['peak_MiB'].max():.1f} MiB "
        "(targets: < 10 s, < 1024 MiB)"
    )
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS (whole run, incl. fairlearn and interpreter): {maxrss_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
