"""Fairness mitigation by post-processing: per-group decision thresholds.

A police fairness review that finds a disparity in a risk model's decisions often mitigates it
after training by giving each group its own threshold on the model's score. This module fits
such thresholds so that an objective (accuracy, balanced accuracy, F1, or precision/recall at a
fixed list size k) is maximised while a fairness gap stays within a tolerance:

* ``demographic_parity``: selection rate ``SR_g = selected_g / n_g``;
* ``equal_opportunity``: true-positive rate ``TPR_g = TP_g / P_g``;
* ``equalized_odds``: both ``TPR_g`` and false-positive rate ``FPR_g = FP_g / N_g``; the gap is
  the larger of the TPR gap and the FPR gap.

Gap definitions (``gap=``):

* ``max_pairwise`` (default): ``max_g rate_g - min_g rate_g``, the largest gap between any two
  groups, which is what an intersectional review quotes;
* ``mean_to_overall``: ``max_g |rate_g - overall rate|``, the distance of each group from the
  population-wide (mean) rate, as fairlearn's ``method="to_overall"``.

Groups can be one label per row or a DataFrame of several attribute columns, combined into
intersectional cells labelled by the one convention of :mod:`rudikit.fairness.groups`
(``"Black:F"`` for race ``Black`` and sex ``F``; a missing value ``"(missing)"``). The search is
O(groups x grid) rather than exponential in the number of groups; see
:mod:`rudikit.fairness.mitigation.search` for the algorithm and why it is hand-written rather
than taken from fairlearn or OxonFair.

Modules: :mod:`~rudikit.fairness.mitigation.rates` (group codes, rates and the achieved gap),
:mod:`~rudikit.fairness.mitigation.optimizer` (:class:`GroupThresholdOptimizer`),
:mod:`~rudikit.fairness.mitigation.search` and :mod:`~rudikit.fairness.mitigation.fixed_k` (the
search, over :mod:`~rudikit.fairness.mitigation.problem`,
:mod:`~rudikit.fairness.mitigation.windows` and :mod:`~rudikit.fairness.mitigation.scoring`),
:mod:`~rudikit.fairness.mitigation.frontier` (fairness-performance frontier) and
:mod:`~rudikit.fairness.mitigation.fairlearn_baseline` (the reference used in tests).

Documented rules:

* **Small groups.** Groups with fewer than ``min_group_size`` training rows are too noisy to
  constrain. They get the *overall threshold* (the group-blind threshold the unmitigated model
  would use: the single threshold maximising the objective on all rows, or in fixed-list-size
  mode the score of the k-th ranked row) and are left out of the gap, but count in the
  objective and in k.
* **Unseen groups** at predict time get the same overall threshold and an
  :class:`~rudikit.fairness.mitigation.optimizer.UnseenGroupWarning` names them; prediction
  never fails because of them.
* **Fixed list size** (``top_k`` / ``top_pct``): exactly k rows are selected on the training
  data (per-group quotas; ties are split by row order). ``predict`` on a new batch selects
  exactly ``top_k`` (or ``k_for_percent(batch size, top_pct)``) rows using quotas proportional
  to the fitted per-group selection rates; ``predict_by_threshold`` applies the thresholds instead.
* **Infeasible tolerance.** If no thresholds meet the tolerance (possible in fixed-list-size
  mode or with ``mean_to_overall``), the tolerance is relaxed step by step, a warning is issued
  and ``constraint_satisfied_`` is False.
* Thresholds are deterministic (``score >= threshold``); a threshold of ``inf`` selects nobody.
  No randomised (two-threshold) mixing is done, so where groups' ROC curves differ a tight
  equalised-odds tolerance costs more objective than fairlearn's randomised solution does
  (see the benchmark); the gap, however, holds on the actual decisions, not in expectation.
"""
