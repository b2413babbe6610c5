"""What the service's endpoints share, built once per app (and per worker process): the store,
the served model and its validator, the writer, the token cache and the metrics. The routers
reach it through :mod:`rudikit.service.deps`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from rudikit.service.auth import TokenCache
from rudikit.service.deploy import LoadedModel, load_deployed_model
from rudikit.service.list_details import ListContext
from rudikit.service.metrics import Metrics
from rudikit.service.observation_schema import ObservationSchema
from rudikit.service.settings import ServiceSettings, project_options
from rudikit.service.writer.group_commit import StoreWriter
from rudikit.store.engine import open_store
from rudikit.store.queries.production import live_deployment

log = logging.getLogger("rudikit.service")


@dataclass(frozen=True)
class Served:
    """The model and the observation schema made for it, swapped together (one assignment on
    the event loop), so a request never validates for one model and scores with another."""

    model: LoadedModel
    schema: ObservationSchema


class Service:
    """Everything the endpoints share: store, model, validator, writer, tokens, metrics."""

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self.options = project_options(settings.project_dir)
        self.nan_as_missing = (self.options.nan_as_missing if settings.nan_as_missing is None
                               else settings.nan_as_missing)
        self.engine = open_store(settings.database_url, settings.project_dir,
                                 schema=settings.schema)
        try:
            self.served = self._load()
        except BaseException:
            self.engine.dispose()
            raise
        self.metrics = Metrics()
        self._label_model(self.served.model)
        self.writer = StoreWriter(self.engine, schema=settings.schema,
                                  durable=settings.sqlite_synchronous.upper() == "FULL",
                                  on_commit=self.metrics.on_commit)
        self.tokens = TokenCache(self.engine, ttl=settings.token_cache_seconds)
        # the project's review settings and event tables, read when a list first needs them
        self.lists = ListContext(settings.project_dir, self.engine, lambda: self.served.model)
        self.reload_error: str | None = None  # why the live deployment is not served

    @property
    def model(self) -> LoadedModel:
        return self.served.model

    @property
    def schema(self) -> ObservationSchema:
        return self.served.schema

    def _load(self) -> Served:
        """The live deployment's model, verified and self-checked (blocking: seconds)."""
        model = load_deployed_model(self.engine, project_dir=self.settings.project_dir)
        groups = model.groups.attributes if model.groups is not None else ()
        return Served(model, ObservationSchema(
            model.pipeline.named_steps["encode"], self.settings.max_batch, groups,
            max_value_length=self.settings.max_value_length,
            max_field_name_length=self.settings.max_field_name_length,
            nan_as_missing=self.nan_as_missing, field_aliases=self.options.field_aliases))

    def _label_model(self, model: LoadedModel, value: float = 1) -> None:
        self.metrics.model_info.labels(
            str(model.deployment_id), str(model.model_id), str(model.model_group_id),
            model.algorithm, model.scorer.path).set(value)

    async def reload_if_redeployed(self) -> bool:
        """Serve the live deployment if it is not the one served: load it off the event loop,
        then swap. Requests already validated finish with the model they started with; none is
        dropped. A deployment that cannot be loaded is not served: the previous model stays, the
        error is logged and shown by /health (``deployment_current: false``)."""
        def live_id() -> int | None:
            with self.engine.connect() as conn:
                live = live_deployment(conn)
            return None if live is None else int(live["id"])

        current = await run_in_threadpool(live_id)
        if current is None or current == self.served.model.deployment_id:
            self.reload_error = None
            return False
        try:
            served = await run_in_threadpool(self._load)
        except Exception as exc:  # noqa: BLE001 - whatever it is, keep serving the old model
            message = f"deployment {current} is live but not served: {exc}"
            if message != self.reload_error:
                log.error("%s; still serving deployment %d", message,
                          self.served.model.deployment_id)
            self.reload_error = message
            return False
        previous, self.served, self.reload_error = self.served.model, served, None
        self._label_model(previous, 0)
        self._label_model(served.model)
        log.warning("now serving deployment %d (model %d, %s) instead of deployment %d",
                    served.model.deployment_id, served.model.model_id, served.model.algorithm,
                    previous.deployment_id)
        return True

    async def watch_deployments(self) -> None:
        """Check for a new live deployment every ``reload_seconds``, for the server's life."""
        while True:
            await asyncio.sleep(self.settings.reload_seconds)
            try:
                await self.reload_if_redeployed()
            except Exception:  # noqa: BLE001 - the store may be down for a moment
                log.exception("checking for a new deployment failed")

    def close(self) -> None:
        self.engine.dispose()
