"""The ``execution`` section: where the independent fits of a run are computed.

Each split x model-group fit (with its scoring, bootstrap intervals and fairness audit) is one
task. ``backend: local`` runs the tasks on this machine's cores in worker processes (joblib's
loky); ``backend: dask`` sends them to a Dask distributed cluster. Either way only the process
that ran ``rudi`` writes to the results store, in the same order, so the stored figures do not
depend on this section (it is left out of the configuration hash).
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rudikit.config.base import Strict

#: The variable that names the Dask scheduler when ``execution.scheduler`` is not set.
SCHEDULER_VARIABLE = "RUDI_DASK_SCHEDULER"

_ADDRESS = re.compile(r"^(tcp|tls|inproc|ws|wss)://[^\s/]+$")


class Execution(Strict):
    """``workers``: processes for ``local`` (``auto``: one per core joblib counts, which
    honours ``LOKY_MAX_CPU_COUNT`` and the CPU affinity; 1 runs every fit in the driver
    process). ``scheduler``: the Dask scheduler's address for ``dask`` (default: the
    ``RUDI_DASK_SCHEDULER`` variable). ``threads_per_task``: LightGBM, forest and BLAS threads
    a task may use (``auto``: the cores divided by the local workers, at least one; one on
    Dask, whose workers run a task per thread). The rule is the same in the driver, so
    ``workers: 1`` fits with threads on every core, and ``workers: 1, threads_per_task: 1`` is
    the run on one core. ``retries``: on ``local``, how often a task whose worker died is run
    again before the run fails; on Dask, how often a task that raised (a lost connection) is
    run again (the scheduler itself moves a task whose worker died, up to its
    ``allowed-failures``)."""

    backend: Literal["local", "dask"] = "local"
    workers: int | Literal["auto"] = "auto"
    scheduler: str | None = None
    threads_per_task: int | Literal["auto"] = "auto"
    retries: int = Field(1, ge=0, le=10)

    @field_validator("workers", "threads_per_task")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be 'auto' or a whole number of at least 1")
        return value

    @field_validator("scheduler")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.match(value):
            raise ValueError(f"{value!r} is not a scheduler address such as tcp://host:8786")
        return value

    @model_validator(mode="after")
    def _scheduler_only_for_dask(self) -> Execution:
        if self.scheduler is not None and self.backend != "dask":
            raise ValueError("scheduler: only read with backend: dask")
        return self

    def problems(self) -> list[str]:
        """What would stop the tasks from starting (a Dask backend with no usable scheduler
        address), said before any data is loaded rather than when the first fit is sent."""
        if self.backend != "dask":
            return []
        try:
            self.scheduler_address()
        except ValueError as exc:
            return [str(exc)]
        return []

    def scheduler_address(self) -> str:
        """The Dask scheduler to connect to; a clear error when none is given."""
        address = self.scheduler or os.environ.get(SCHEDULER_VARIABLE, "").strip()
        if not address:
            raise ValueError(f"execution.scheduler: backend dask needs a scheduler address "
                             f"(tcp://host:8786) here or in {SCHEDULER_VARIABLE}")
        if not _ADDRESS.match(address):
            raise ValueError(f"execution.scheduler: {address!r} (from {SCHEDULER_VARIABLE}) is "
                             "not a scheduler address such as tcp://host:8786")
        return address
