"""What a case run explains of the model it chose: permutation importance per input column on
its test rows, and the stored reasons behind the scores of the rows a person will read.

Its own module so the experiment (:mod:`rudikit.run.case`) reads as the run's steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy.engine import Engine

from rudikit.config import Explain, Project
from rudikit.evaluation.metrics import k_for_percent, roc_auc
from rudikit.explain import ExplainError, explain, global_importance, top_reasons
from rudikit.features.splits import SplitIndices
from rudikit.models.artefacts import load_artefact
from rudikit.models.estimators import WIDE_COLUMNS
from rudikit.run.engine import ModelSummary
from rudikit.store import results


def explain_selected(engine: Engine, project: Project, model: ModelSummary,
                     artefact: tuple[str, Path], X: pd.DataFrame, y: np.ndarray,
                     split: SplitIndices, entity: np.ndarray, knowledge: np.ndarray | None,
                     reasons: int = 5) -> None:
    """Explain the chosen model on its test rows, from the stored artefact so the explanations
    are of exactly the model on record: permutation importance (global), and the top reasons
    behind the scores of the rows ``explain`` names (for the list and the API; the service
    explains any row live) where the model has an explanation method
    (random forests and baselines have none). Only the chosen model is explained: permutation
    importance over a few hundred columns is the slowest step of a run, and nobody reads it
    for the models that were not chosen."""
    pipeline = load_artefact(artefact[1], artefact[0])
    X_test = X.iloc[split.test]
    rows = reason_rows(project, model.score)
    try:
        explanation = explain(pipeline, X_test.iloc[rows])  # centred on the training rows
    except ExplainError:
        explanation = None  # no explanation method (random forest, baseline): no reasons
    # a wide source permutes only its largest contributions (on the rows explained)
    ranking = None if explanation is None else list(global_importance(explanation).index)
    results.record_importances(engine, model.model_id, permutation_importances(
        pipeline, X_test, y[split.test], project.evaluation.seed, ranking))
    if explanation is not None:
        results.record_individual_importances(
            engine, model.model_id, explanation.method, entity[split.test][rows],
            None if knowledge is None else knowledge[split.test][rows],
            top_reasons(explanation, reasons))


#: On a wide source (``WIDE_COLUMNS`` input columns or more, e.g. bag-of-words) permutation
#: importance is computed for this many input columns: each permuted column costs a prediction
#: over every column, so all of them would be quadratic in the columns. The permuted ones are
#: the model's own largest mean absolute contributions (SHAP or coefficient x value) over the
#: rows whose reasons are stored, which cost one pass. A narrower source (COMPAS's 340
#: columns) has every column permuted.
MAX_PERMUTED = 60


def reason_rows(project: Project, score: np.ndarray) -> np.ndarray:
    """Positions (in order) of the test rows whose reasons are stored, as ``explain`` asks
    (:class:`rudikit.config.Explain`): on the largest evaluated list, flagged at the decision
    threshold, every row, plus a seeded sample of the others."""
    wanted, ev, at = project.explain, project.evaluation, project.fairness.at
    n = len(score)
    if "all" in wanted.store_reasons:
        return np.arange(n)
    keep = np.zeros(n, dtype=bool)
    if "top_k" in wanted.store_reasons:
        sizes = [Explain.MIN_LIST, *ev.top_k, *(k_for_percent(n, p) for p in ev.top_pct)]
        sizes += [at.top_k or 0, k_for_percent(n, at.top_pct) if at.top_pct else 0]
        keep |= results.ranks(score)[0] <= max(sizes)  # rows tied at the cut included
    threshold = at.threshold if at.threshold is not None else min(ev.thresholds, default=None)
    if "flagged" in wanted.store_reasons and threshold is not None:
        keep |= score >= threshold
    others = np.flatnonzero(~keep)
    if wanted.sample and len(others):
        drawn = np.random.default_rng(ev.seed).choice(
            others, size=min(wanted.sample, len(others)), replace=False)
        keep[drawn] = True
    return np.flatnonzero(keep)


def permutation_importances(pipeline: Any, X: pd.DataFrame, y: np.ndarray, seed: int,
                            ranking: Sequence[str] | None = None, max_rows: int = 2000,
                            repeats: int = 5) -> list[results.Importance]:
    """Permutation importance (drop in ROC AUC) per input column on the test rows, with the
    standard deviation over repeats and a one-sided t-test p-value that it is above zero.
    ``ranking`` (input columns, most important first, e.g. by mean absolute contribution):
    on a wide source only its first :data:`MAX_PERMUTED` are permuted (without a ranking,
    every column is).

    Hand-written rather than sklearn's ``permutation_importance`` because the encoder is
    column-wise: shuffling a raw column equals shuffling its encoded column(s), so the rows are
    encoded once instead of once per column and repeat (with 340 COMPAS columns, minutes -> s),
    and the shuffled column is put back in place rather than the matrix copied each time.
    """
    if len(np.unique(y)) < 2:
        return []
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(X), size=min(max_rows, len(X)), replace=False)
    if len(np.unique(y[idx])) < 2:
        idx = np.arange(len(X))
    encoder, model = pipeline.named_steps["encode"], pipeline.named_steps["model"]
    matrix = encoder.transform(X.iloc[idx])
    y = y[idx]
    base = roc_auc(y, model.predict_proba(matrix)[:, 1])
    positions = encoder.output_positions()
    if ranking is not None and len(positions) >= WIDE_COLUMNS:
        positions = {c: positions[c] for c in list(ranking)[:MAX_PERMUTED]}
    rows = []
    for column, where in positions.items():
        original = matrix[:, where].copy()
        drops = np.empty(repeats)
        for r in range(repeats):
            matrix[:, where] = original[rng.permutation(len(y))]
            drops[r] = base - roc_auc(y, model.predict_proba(matrix)[:, 1])
        matrix[:, where] = original
        mean, std = float(drops.mean()), float(drops.std())
        p = (float(stats.ttest_1samp(drops, 0.0, alternative="greater").pvalue) if std > 0
             else (0.0 if mean > 0 else 1.0))
        rows.append((column, "permutation_roc_auc", mean, std, p))
    return rows
