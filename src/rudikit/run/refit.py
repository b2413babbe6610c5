"""Refit after choice (``evaluation.selection.refit: train_and_validation``), case projects.

The group is chosen on the selection split's validation rows, as always; then it is fitted
again, with the same hyperparameters, on the training *and* validation rows (the rows a split
without a validation partition would train on) and scored on the same held-out test rows. The
validation rows are the newest before the test period, so a model that never trains on them
loses what is most like the rows it will score.

What the store says: the chosen model stays as fitted (its validation figures are the ones the
choice read) and unselected; the refit model is stored in the same model group and split, is
the run's selected model (so it is what is explained, audited on the test rows, mitigated and
deployed), carries a :data:`~rudikit.store.queries.evaluations.REFIT_OF` evaluation naming the
model it refits (stored with it, in its one transaction), and its selection reason gives both
the validation figure of the choice and the refit's test figure. An ensemble
is refitted member by member (each member refit, stored unselected in its own group), then
averaged or stacked again over the refit members; a ``rank_average`` ranks against the refit
training rows, since no row is held out any more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from sqlalchemy.engine import Engine

from rudikit.run.case import CaseExperiment
from rudikit.run.engine import ModelSummary, SplitRows, fit_score_record
from rudikit.run.ensembles import fit_ensemble
from rudikit.run.selection import metric_value, with_interval


def refit_rows(experiment: CaseExperiment, split_name: str) -> SplitRows:
    """The rows of split ``split_name`` with its training and validation rows as the training
    rows (in the loaded order, as a split without validation would take them) and no
    validation partition; the test rows unchanged."""
    split = next(s for s in experiment.splits if s.name == split_name)
    if split.validation is None or not len(split.validation):
        raise ValueError(f"evaluation.selection.refit: split {split_name!r} has no validation "
                         "rows in the data, so there is nothing to refit on")
    train, test, knowledge = experiment.trained_on(split), split.test, experiment.knowledge
    end = split.train_end
    if knowledge is not None:  # the training window now ends with the validation's
        last = knowledge[split.validation].max()
        end = last if end is None else max(end, last)
    return SplitRows(split.name, experiment.X.iloc[train], experiment.y[train],
                     experiment.X.iloc[test], experiment.y[test], experiment.entity[test],
                     None if knowledge is None else knowledge[test], (split.train_start, end),
                     (split.test_start, split.test_end), experiment.attrs.iloc[test])


def _refit_one(experiment: CaseExperiment, engine: Engine, run_id: int, model: ModelSummary,
               rows: SplitRows) -> ModelSummary:
    """``model``'s group fitted on ``rows``, stored with its ``REFIT_OF`` evaluation."""
    assert model.entry is not None
    # a search trial's refit is not another trial: the search history keeps the one it chose
    entry = dataclasses.replace(model.entry,
                                point=dataclasses.replace(model.entry.point, trial=None))
    scoring = experiment.scoring()
    return fit_score_record(engine, run_id, model.model_group_id, entry, rows,
                            build=scoring.build, evaluate=scoring.evaluate,
                            assess=scoring.assess, artefacts_dir=experiment.artefacts_dir,
                            refit_of=model.model_id)


def refit_chosen(experiment: CaseExperiment, engine: Engine, run_id: int,
                 chosen: ModelSummary, models: Sequence[ModelSummary], reason: str,
                 say: Callable[[str], None] = lambda _: None) -> tuple[ModelSummary, str]:
    """(the refit of ``chosen``, the selection reason that says so). ``models``: the run's
    fits, where an ensemble's members are found."""
    rows = refit_rows(experiment, chosen.split)
    n = len(rows.y_train)
    if chosen.algorithm == "ensemble":
        by_id = {m.model_id: m for m in models}
        chosen_members = [by_id[i] for i in (chosen.details or {}).get("member_model_ids", [])]
        say(f"refitting the ensemble's members (model groups "
            f"{', '.join(str(m.model_group_id) for m in chosen_members)}) on {n:,} training "
            "and validation rows")
        members = [_refit_one(experiment, engine, run_id, m, rows) for m in chosen_members]
        assert chosen.entry is not None
        scoring = experiment.scoring()
        refit = fit_ensemble(
            engine, run_id, experiment.name, experiment.label, chosen.entry.point, rows,
            members, "the chosen ensemble's members, each refit on the training and "
            "validation rows", reference="train", evaluate=scoring.evaluate,
            assess=scoring.assess, build=scoring.build, seed=experiment.seed,
            artefacts_dir=experiment.artefacts_dir, refit_of=chosen.model_id)
        refit.details = {"member_model_ids": [m.model_id for m in members],
                         "member_group_ids": [m.model_group_id for m in members]}
    else:
        say(f"refitting model group {chosen.model_group_id} on {n:,} training and "
            "validation rows")
        refit = _refit_one(experiment, engine, run_id, chosen, rows)
    # per-group thresholds (mitigation) are fitted on the chosen model's validation scores and
    # applied to the refit's test scores: the refit has trained on the validation rows
    refit.validation_score = chosen.validation_score
    metric = experiment.project.evaluation.selection.metric
    final = metric_value(refit.metrics, metric)
    # the chosen model's own test figure (select_best's last clause) is not the final one
    reason = reason.split("; on the held-out test rows")[0]
    reason += (f"; then refit with the same hyperparameters on the training and validation "
               f"rows ({n:,} rows; evaluation.selection.refit: train_and_validation) as model "
               f"{refit.model_id} (the model chosen, {chosen.model_id}, is kept unselected)")
    if final is not None:
        reason += (f"; on the held-out test rows (the final figure) the refit model gives "
                   f"{with_interval(final)}")
        before = metric_value(chosen.metrics, metric)
        if before is not None:
            reason += (" (the model chosen, trained without the validation rows: "
                       f"{before.value:.3f})")
    return refit, reason
