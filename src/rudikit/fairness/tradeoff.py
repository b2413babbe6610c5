"""The performance / fairness-requirements trade-off of model selection: the names a run
stores it under and the Pareto frontier the reports draw (the RUDI guide's "improve
performance and the requirements start failing"). Below both the run (which chooses) and the
reports (which draw), so each reads the one definition."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The evaluation that stores a requirement's verdict on the validation rows (parameter: the
#: requirement's name): 1 met, 0 not met, empty when inconclusive or insufficient data. The
#: stored verdict tables hold the test rows' only; selection and its trade-off read these.
VALIDATION_REQUIREMENT = "validation_requirement_met"

#: How a run says that ``require_fairness`` found no group to choose (its reason starts so).
NO_GROUP_MEETS = "no model group meets every fairness requirement"


def pareto_frontier(values: Sequence[float], met: Sequence[int], *,
                    lower_is_better: bool = False) -> np.ndarray:
    """Which points of a performance / requirements-met trade-off are on the frontier: no
    other point is at least as good on both and better on one (ties on both are all kept; a
    NaN value is never on it). Hand-written: a few dozen points, and none of the libraries we
    use has a Pareto filter."""
    v = np.asarray(values, dtype=float) * (-1 if lower_is_better else 1)
    k = np.asarray(met, dtype=float)
    if v.shape != k.shape:
        raise ValueError("values and met must have the same length")
    ok = ~np.isnan(v)
    at_least = (v[None, :] >= v[:, None]) & (k[None, :] >= k[:, None])
    better = (v[None, :] > v[:, None]) | (k[None, :] > k[:, None])
    dominated = (at_least & better & ok[None, :]).any(axis=1)
    return ok & ~dominated
