"""Assembling the stream worker from settings: rules, wire format, metrics, health, Kafka loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import structlog
from prometheus_client import CollectorRegistry

from worker import __version__
from worker.codec.wire import PlainAvro, WireFormat
from worker.config import Settings
from worker.engine.evaluate import Evaluator
from worker.engine.events import Decision
from worker.engine.reference import load_reference
from worker.engine.rules import RULES
from worker.engine.rules.packs import load_packs
from worker.errors import ConfigError
from worker.observability import Health, Metrics, configure_logging, start_http_server
from worker.stream.loop import StreamWorker
from worker.stream.shadow import Shadow

log = structlog.get_logger("worker.app")


def make_wire(settings: Settings) -> WireFormat:
    if settings.schema_registry_url:
        from worker.codec.registry import RegistryWire

        return RegistryWire(
            settings.schema_registry_url,
            username=settings.schema_registry_username,
            password=settings.schema_registry_password,
            ssl_cafile=settings.schema_registry_ssl_cafile,
            ssl_certfile=settings.schema_registry_ssl_certfile,
            ssl_keyfile=settings.schema_registry_ssl_keyfile,
        )
    return PlainAvro()


@dataclass
class App:
    worker: StreamWorker
    metrics: Metrics
    health: Health
    server: ThreadingHTTPServer

    @property
    def metrics_url(self) -> str:
        host, port = str(self.server.server_address[0]), self.server.server_address[1]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def build_app(
    settings: Settings,
    *,
    on_decision: Callable[[Decision], None] | None = None,
    metrics_host: str | None = None,
    configure_logs: bool = True,
) -> App:
    """Load and validate everything first (packs, crosswalk, schemas), then open the HTTP port."""
    if configure_logs:
        configure_logging(settings.log_level)
    packs = load_packs(settings.payer_config_dir)
    candidate = None
    if settings.shadow_payer_config_dir is not None:
        try:
            candidate = load_packs(settings.shadow_payer_config_dir)
        except ConfigError as error:
            raise ConfigError(f"--shadow-payer-config: {error}") from None
    evaluator = Evaluator(packs, load_reference(settings.ndc_crosswalk_file), worker_version=__version__)
    wire = make_wire(settings)
    registry = CollectorRegistry()
    metrics = Metrics(registry, rule_ids=[(spec.rule_id, spec.outcomes) for spec in RULES.values()])
    for pack in packs.all_packs:
        metrics.build_info.labels(version=__version__, rule_pack=f"{pack.name}@{pack.version}").set(1)
    health = Health()
    server = start_http_server(settings.metrics_port, registry, health, host=metrics_host or settings.metrics_host)
    shadow = None
    if candidate is not None:
        shadow = Shadow(
            Evaluator(candidate, evaluator.reference, worker_version=__version__),
            metrics,
            wire,
            topic=settings.shadow_decisions_topic,
        )
        metrics.start_shadow()
    worker = StreamWorker(
        settings, evaluator, wire, metrics, health, worker_version=__version__, on_decision=on_decision, shadow=shadow
    )
    log.info("settings", **settings.redacted(), worker_version=__version__)
    return App(worker=worker, metrics=metrics, health=health, server=server)
