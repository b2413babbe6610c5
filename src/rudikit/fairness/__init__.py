"""Fairness of policing risk models: audit (group metrics, disparities, summaries, requirements,
list simulation) and mitigation.

Plain functions over numpy arrays and pandas frames, one concept per module; import them from
their module (nothing is re-exported here, so importing one module does not load the others):

* :mod:`~rudikit.fairness.inputs`: the one input validator (``validate_fairness_inputs``);
* :mod:`~rudikit.fairness.groups`: the one group-label convention and integer group codes;
* :mod:`~rudikit.fairness.selection`: scores to 0/1 decisions (threshold, top-k);
* :mod:`~rudikit.fairness.counts`, :mod:`~rudikit.fairness.auc`,
  :mod:`~rudikit.fairness.group_metrics`: confusion counts, rates and ROC AUC per group;
* :mod:`~rudikit.fairness.disparities`, :mod:`~rudikit.fairness.summary`,
  :mod:`~rudikit.fairness.requirements`, :mod:`~rudikit.fairness.list_simulation`;
* :mod:`~rudikit.fairness.audit` ties them together (``from rudikit.fairness.audit import
  audit``), shown by :mod:`~rudikit.fairness.audit_report`;
* :mod:`~rudikit.fairness.mitigation`: per-group thresholds;
* :mod:`~rudikit.fairness.stage`: the fairness stage of a run, from ``rudi.yaml``.
"""
