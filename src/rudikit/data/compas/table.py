"""The case table of the RUDI worked example: one row per screened case with its label and
features, and a summary of its labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rudikit.data.compas.features import (
    age_at,
    charge_vocabulary,
    history_features,
    token_features,
)
from rudikit.data.compas.labels import (
    LABELS,
    Label,
    PrisonRule,
    data_end_date,
    felony_labels,
    outcome_events,
    record_dates,
    screening_cases,
    trigger_dates,
    two_year_labels,
)
from rudikit.data.compas.loading import CompasData, load_compas


def build_compas_table(data_dir_or_db: str | Path | CompasData, *,
                       label: Label = "felony_365",
                       end_date: pd.Timestamp | str | None = None,
                       prison_rule: PrisonRule = "exclude",
                       max_screening_gap_days: int | None = None,
                       vocabulary: Sequence[str] | None = None, min_token_count: int = 5,
                       keep_unlabelled: bool = False) -> pd.DataFrame:
    """One row per screened case with ``label``, features, ``race``/``sex`` and
    ``decile_score``.

    ``data_dir_or_db``: the COMPAS folder, a data root holding ``compas/``, a ``compas.db``
    file or loaded :class:`CompasData`. ``vocabulary``: the token list of a trained model (by
    default learnt from the current charges of every case here, see
    :func:`charge_vocabulary`). Rows without a label are dropped unless ``keep_unlabelled``
    (then ``label_status`` says why). Columns: ``person_id``, ``case_number``, ``case_date``,
    ``case_date_source``, ``screening_date``, ``race``, ``sex``, ``decile_score``,
    ``charge_desc``, the label, ``label_status``, then :func:`features.feature_columns`.
    """
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, not {label!r}")
    data = load_compas(data_dir_or_db)
    cases = screening_cases(data)
    vocab = list(vocabulary) if vocabulary is not None else charge_vocabulary(
        cases["charge_desc"], min_token_count)
    events = outcome_events(data)
    end = (pd.Timestamp(end_date).normalize() if end_date is not None
           else data_end_date(record_dates(data)))
    if label == "felony_365":
        labels = felony_labels(cases, events, data.prison, horizon_days=365, end_date=end,
                               prison_rule=prison_rule,
                               max_screening_gap_days=max_screening_gap_days)
    else:
        labels = two_year_labels(cases, data, end_date=end)
    age = age_at(cases["dob"], trigger_dates(cases))
    table = pd.concat([
        cases[["person_id", "case_number", "case_date", "case_date_source", "screening_date",
               "race", "sex", "decile_score", "charge_desc"]],
        labels,
        pd.DataFrame({"age": age}, index=cases.index),
        cases[["juv_fel_count", "juv_misd_count", "juv_other_count", "priors_count",
               "charge_degree", "charge_degree_detail"]],
        history_features(cases, data.jail, data.prison, age),
        token_features(cases["charge_desc"], vocab),
    ], axis=1)
    table.attrs.update({"label": label, "end_date": end, "vocabulary": vocab,
                        "layout": data.layout, "source": str(data.location)})
    if not keep_unlabelled:
        table = table[table["label_status"] == "labelled"].reset_index(drop=True)
    return table


def label_summary(table: pd.DataFrame, label: str | None = None) -> dict[str, object]:
    """Rows, base rate and the count of each ``label_status`` (for reports and data cards)."""
    name = label or table.attrs.get("label") or next(c for c in LABELS if c in table.columns)
    labelled = table[name].dropna()
    return {"label": name, "rows": int(len(table)), "labelled": int(len(labelled)),
            "positives": int(labelled.sum()),
            "base_rate": float(labelled.mean()) if len(labelled) else float("nan"),
            "status": table["label_status"].value_counts().to_dict()}
