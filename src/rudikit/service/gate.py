"""The deploy gate: what a model group must show before ``rudi deploy`` puts it live.

The RUDI guide decides the requirements before modelling; a model that does not meet them is
either not deployed or deployed with a recorded, justified waiver. The gate refuses a model
whose stored results say

- a fairness requirement is **not met** (``inconclusive`` and ``insufficient data`` are shown
  but do not refuse: the evidence does not say the bound is broken);
- its model card is incomplete: a ``rationale.*`` question of the card is not answered (the
  current rudi.yaml's answers count, as ``rudi card model`` writes them);
- a data source of its run has no data snapshot, so no data card describes it.

A waiver (``--waive "reason"``) lets it through; who gave it, why and the failing items are
stored with the deployment and in the audit log. The decision threshold defaults to the
project's operating point (``fairness.at``, else the first evaluation threshold), the threshold
the audit and the requirements judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import precision_score, recall_score

from rudikit.reports.cards import CardError
from rudikit.reports.model_card import build_model_card
from rudikit.service.deploy import Deployment, check_request, deploy, model_to_deploy
from rudikit.service.errors import ServiceError
from rudikit.store.queries import fairness as fairness_q
from rudikit.store.queries import predictions as predictions_q
from rudikit.store.queries import runs as runs_q
from rudikit.store.queries import snapshots as snapshots_q

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from rudikit.reports.cards import AnyProject

#: Used when the run's project names no threshold at all (a temporal project's lists).
FALLBACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class GateItem:
    """One reason the gate refuses: what (``fairness requirement``, ``model card``,
    ``data card``), which, and the problem."""

    kind: str
    name: str
    problem: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}: {self.problem}"


@dataclass
class GateReport:
    """What the gate found for one model of a group."""

    model_group_id: int
    model_id: int
    run_id: int
    requirements: list[fairness_q.RequirementStatus]
    operating_threshold: float
    operating_source: str  # the rudi.yaml key the threshold comes from
    failing: list[GateItem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failing

    def waiver(self, reason: str, by: str) -> dict[str, Any]:
        """The record stored with a deployment that overrides the gate."""
        return {"reason": reason, "by": by, "failing": [str(i) for i in self.failing]}


class GateRefused(ServiceError):
    """The gate refused the model and no waiver was given; ``report`` says why."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        items = "\n".join(f"  - {item}" for item in report.failing)
        super().__init__(
            f"model group {report.model_group_id} (model {report.model_id}) fails the deploy "
            f"gate on {len(report.failing)} item(s):\n{items}\nNothing was deployed. Fix them "
            "and run `rudi run` again, or deploy anyway with --waive \"why\" (recorded with "
            "your name in the audit log, the model card and the dashboard).")


def operating_point(config: dict[str, Any]) -> tuple[float, str]:
    """(threshold, the key it comes from): ``fairness.at.threshold``, else the first of
    ``evaluation.thresholds``, else 0.5."""
    at = ((config.get("fairness") or {}).get("at") or {}).get("threshold")
    if at is not None:
        return float(at), "fairness.at"
    thresholds = (config.get("evaluation") or {}).get("thresholds") or []
    if thresholds:
        return float(thresholds[0]), "evaluation.thresholds"
    return FALLBACK_THRESHOLD, "no threshold in the project (default)"


def precision_recall(engine: Engine, model_id: int, threshold: float
                     ) -> tuple[float, float, int, int]:
    """(precision, recall, flagged rows, labelled rows) of ``score >= threshold`` on the
    model's stored test predictions; NaN where a metric has no denominator."""
    labelled = predictions_q.scores_frame(engine, [model_id]).dropna(subset=["label"])
    if labelled.empty:
        return float("nan"), float("nan"), 0, 0
    flagged = labelled["score"].to_numpy() >= threshold
    y = labelled["label"].to_numpy().astype(int)
    return (float(precision_score(y, flagged, zero_division=np.nan)),
            float(recall_score(y, flagged, zero_division=np.nan)), int(flagged.sum()),
            len(y))


def _card_items(engine: Engine, model_group_id: int, run_id: int,
                project: AnyProject | None) -> list[GateItem]:
    try:
        card = build_model_card(engine, model_group_id, run_id=run_id, project=project)
    except CardError as exc:
        return [GateItem("model card", f"model group {model_group_id}", str(exc))]
    missing = dict.fromkeys(k for k in card.missing_keys() if k.startswith("rationale."))
    return [GateItem("model card", key, "not answered (fill it in rudi.yaml)")
            for key in missing]


def _data_items(engine: Engine, run_id: int, config: dict[str, Any]) -> list[GateItem]:
    """A data card is built from a run's snapshot of a source (``rudi card data <id>``); a
    source of event tables has one snapshot per table (``events.officers``, ...)."""
    snapped = set(snapshots_q.snapshots_of_run(engine, run_id).get("source", []))
    sources = [str(s.get("name")) for s in (config.get("data") or {}).get("sources") or []]
    if not sources:
        return [] if snapped else [GateItem("data card", f"run {run_id}", "the run recorded "
                                            "no data snapshot, so no data card exists")]
    return [GateItem("data card", name, f"run {run_id} recorded no snapshot of this source, "
                     "so no data card describes it")
            for name in sources
            if not any(s == name or s.startswith(f"{name}.") for s in snapped)]


def check(engine: Engine, model_group_id: int, model_id: int | None = None,
          project: AnyProject | None = None) -> GateReport:
    """The gate's verdict on the model :func:`~rudikit.service.deploy.deploy` would put live
    (``model_id``, else the group's selected, else its newest fit). ``project`` gives the
    current rationale answers."""
    with engine.connect() as conn:
        _, model = model_to_deploy(conn, model_group_id, model_id)
        run_id = int(model["run_id"])
        config = runs_q.run_config(conn, run_id) or {}
        statuses = fairness_q.model_requirement_statuses(conn, int(model["id"]))
    threshold, source = operating_point(config)
    failing = [GateItem("fairness requirement", s.name, f"{s.status}: {s.summary}")
               for s in statuses if s.status == fairness_q.NOT_MET]
    failing += _card_items(engine, model_group_id, run_id, project)
    failing += _data_items(engine, run_id, config)
    return GateReport(model_group_id, int(model["id"]), run_id, statuses, threshold, source,
                      failing)


def gated_deploy(engine: Engine, model_group_id: int, *, reason: str, by: str,
                 threshold: float | None = None, model_id: int | None = None,
                 waive: str | None = None, project: AnyProject | None = None,
                 project_dir: Path | None = None) -> tuple[Deployment, GateReport]:
    """Deploy through the gate: refuse (:class:`GateRefused`, nothing stored) when it fails
    and no waiver reason is given; with one, deploy and store the waiver. ``threshold``
    defaults to the project's operating point; ``project_dir`` is the project its artefact
    paths are relative to (:func:`rudikit.service.deploy.project_folder`)."""
    check_request(reason, by, threshold)  # bad input before the gate's work
    if waive is not None and not waive.strip():
        raise ServiceError("--waive needs a reason: --waive \"why this model may go live "
                           "despite the failing items\"")
    report = check(engine, model_group_id, model_id, project)
    if not report.passed and waive is None:
        raise GateRefused(report)
    waiver = report.waiver(waive.strip(), by) if waive is not None and not report.passed \
        else None
    done = deploy(engine, model_group_id, reason=reason, by=by, model_id=report.model_id,
                  threshold=report.operating_threshold if threshold is None else threshold,
                  waiver=waiver,
                  requirements={s.name: s.status for s in report.requirements},
                  project_dir=project_dir)
    return done, report
