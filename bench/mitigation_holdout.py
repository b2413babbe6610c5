"""Benchmark: does a mitigated gap hold on held-out rows? Without and with the margin.

Run: ``PYTHONPATH=src .venv/bin/python bench/mitigation_holdout.py [--rows 100000] [--seeds 5]``

The 12 race x sex groups of ``bench/fairness_mitigation.py`` (synthetic, seeded): thresholds are
fitted on ``--rows`` fitting rows to a bound of ``--bound`` (0.02) and the largest pairwise gap
is measured on ``--rows`` fresh held-out rows from the same distribution, for demographic parity
and equal opportunity, by rudikit (:func:`rudikit.fairness.mitigation.targets.fit_requirement`)
and by fairlearn's ``ThresholdOptimizer`` as the baseline. "margin" fits to the bound less the
margin of :mod:`rudikit.fairness.mitigation.margin` at ``--confidence`` (0.9); for fairlearn
the same margin is computed from its own fitted rates and passed as its ``tol``. Groups the
margin finds not checkable are reported; "checkable" gaps leave them out.

Printed per setting: the mean held-out gap over seeds, its ratio to the bound, and the share of
seeds whose held-out gap meets the bound (all groups, and checkable groups only).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from fairness_mitigation import make_data  # noqa: E402  (the same 12 groups)

from rudikit.fairness.mitigation.fairlearn_baseline import FairlearnBaseline  # noqa: E402
from rudikit.fairness.mitigation.margin import DENOMINATORS, RATE_COLUMNS, margin_for  # noqa: E402
from rudikit.fairness.mitigation.rates import DIMS, group_labels, group_rates  # noqa: E402
from rudikit.fairness.mitigation.targets import fit_requirement  # noqa: E402
from rudikit.fairness.requirements import Requirement  # noqa: E402

METRIC = {"demographic_parity": "selection_rate", "equal_opportunity": "recall"}


def gaps(y: np.ndarray, d: np.ndarray, labels: np.ndarray, constraint: str,
         leave_out: set[str]) -> tuple[float, float]:
    """Largest pairwise gap of the constraint's rate: all groups, and without ``leave_out``."""
    (dim,) = DIMS[constraint]
    rates = group_rates(y, d, labels)[RATE_COLUMNS[dim]].dropna()
    kept = rates[[g not in leave_out for g in rates.index]]
    return float(rates.max() - rates.min()), float(kept.max() - kept.min())


def fairlearn_fit(scores: np.ndarray, y: np.ndarray, groups: pd.DataFrame, constraint: str,
                  bound: float, confidence: float | None, ratio: float
                  ) -> tuple[FairlearnBaseline, set[str]]:
    """fairlearn at ``tol=bound``, or at the bound less the margin of its own fitted rates."""
    fit = FairlearnBaseline(constraint=constraint, tolerance=bound).fit(scores, y, groups)
    if confidence is None:
        return fit, set()
    (dim,) = DIMS[constraint]
    rates = group_rates(y, fit.predict(scores, groups), group_labels(groups))
    den = rates[DENOMINATORS[dim]].to_numpy(dtype=float)
    margin = margin_for([str(g) for g in rates.index], rates[RATE_COLUMNS[dim]].to_numpy(),
                        den, den * ratio, bound, confidence)
    fit = FairlearnBaseline(constraint=constraint, tolerance=margin.tolerance).fit(
        scores, y, groups)
    return fit, set(margin.not_checkable)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--bound", type=float, default=0.02)
    ap.add_argument("--confidence", type=float, default=0.9)
    args = ap.parse_args()
    out = []
    for seed in range(args.seeds):
        fs, fy, fg = make_data(args.rows, seed=2 * seed)
        hs, hy, hg = make_data(args.rows, seed=2 * seed + 1)
        frame_fit, frame_held = fg.copy(), hg.copy()
        labels = group_labels(hg)
        for constraint, metric in METRIC.items():
            req = Requirement(metric, 100 * args.bound, compare=("race", "sex"), min_n=1)
            for confidence in (None, args.confidence):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ours = fit_requirement(frame_fit, fy, fs, req, confidence=confidence,
                                           min_group_size=1)
                    theirs, skip = fairlearn_fit(fs, fy, fg, constraint, args.bound,
                                                 confidence, 1.0)
                    d_theirs = theirs.predict(hs, hg, random_state=seed)
                for who, d, leave_out in (
                    ("rudikit", ours.decide(frame_held, hs), set(ours.not_checkable)),
                    ("fairlearn", d_theirs, skip),
                ):
                    gap_all, gap_checked = gaps(hy, d, labels, constraint, leave_out)
                    out.append({"constraint": constraint, "who": who,
                                "margin": "margin" if confidence else "none", "seed": seed,
                                "held_out_gap": gap_all, "checkable_gap": gap_checked,
                                "not_checkable": len(leave_out)})
        print(f"seed {seed} done", file=sys.stderr)
    frame = pd.DataFrame(out)
    bound = args.bound
    summary = frame.groupby(["constraint", "who", "margin"], sort=False).agg(
        held_out_gap=("held_out_gap", "mean"),
        x_bound=("held_out_gap", lambda g: g.mean() / bound),
        meets_bound=("held_out_gap", lambda g: (g <= bound + 1e-12).mean()),
        checkable_gap=("checkable_gap", "mean"),
        checkable_meets=("checkable_gap", lambda g: (g <= bound + 1e-12).mean()),
        not_checkable=("not_checkable", "mean"))
    print(f"{args.rows} fitting rows, {args.rows} held-out rows, 12 groups, bound {bound}, "
          f"confidence {args.confidence}, {args.seeds} seeds")
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(summary.to_string())


if __name__ == "__main__":
    main()
