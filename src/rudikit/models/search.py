"""Hyperparameter search inside the model grid: a model spec with ``search`` proposes its
settings with optuna (:class:`optuna.samplers.TPESampler`, seeded), and every trial becomes a
grid point that the run then fits, stores and evaluates like any other model group.

The search only asks ``score(point)`` for a number: the caller decides which rows it reads
(a case project scores the selection split's validation rows, never its test rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rudikit.config import ModelSpec, TemporalModel, search_range
from rudikit.models.estimators import GridPoint

if TYPE_CHECKING:
    import optuna

#: The evaluation that marks a stored model as a search trial: parameter ``models[i]`` (the
#: spec searched), value the trial number; the report draws the search history from it.
SEARCH_TRIAL = "search_trial"


def _suggest(trial: optuna.Trial, spec: ModelSpec | TemporalModel) -> dict[str, Any]:
    """One trial's parameters: ranges and choices suggested, single values as given."""
    params: dict[str, Any] = {}
    for name in sorted(spec.params):
        values = spec.params[name]
        found = search_range(f"params.{name}", values)
        if found is not None and found.kind == "int":
            params[name] = trial.suggest_int(name, int(found.low), int(found.high),
                                             step=int(found.step or 1), log=found.log)
        elif found is not None:
            params[name] = trial.suggest_float(name, found.low, found.high, step=found.step,
                                               log=found.log)
        elif len(values) > 1:
            params[name] = trial.suggest_categorical(name, values)
        else:
            params[name] = values[0]
    return params


def search_points(spec: ModelSpec | TemporalModel, index: int,
                  score: Callable[[GridPoint], float], *, lower_is_better: bool = False,
                  say: Callable[[str], None] | None = None) -> list[GridPoint]:
    """Run ``spec``'s search (``models[index]``): every trial's grid point, in trial order,
    each tagged with its trial number. A trial whose score is not a number (one label value
    on the rows scored) is kept (it is stored like the others) but never guides the sampler.
    ``score`` raising a ValueError ends the search with it, naming the trial."""
    import optuna  # imported here: only a run with a search needs it (and it is slow to load)

    assert spec.search is not None
    search = spec.search
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if lower_is_better else "maximize",
                                sampler=optuna.samplers.TPESampler(
                                    seed=search.seed, n_startup_trials=search.startup_trials))
    points: list[GridPoint] = []

    def objective(trial: optuna.Trial) -> float:
        point = GridPoint(spec.algorithm, _suggest(trial, spec),
                          tuple(getattr(spec, "add_categorical", ())),
                          getattr(spec, "selectable", True), trial=(index, trial.number))
        points.append(point)
        try:
            value = score(point)
        except ValueError as exc:
            raise ValueError(f"models[{index}].search: trial {trial.number} "
                             f"({point.describe()}): {exc}") from None
        if say is not None:
            say(f"models[{index}] search: trial {trial.number}: {value:.4f}")
        return value if math.isfinite(value) else float("nan")

    timeout = search.timeout_minutes * 60 if search.timeout_minutes else None
    study.optimize(objective, n_trials=search.trials, timeout=timeout, catch=())
    return points
