"""The metric names the dashboard and alerts are built on are the ones the worker exports."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from worker.observability import Metrics

from .catalogue import WORKER_METRICS


def test_catalogue_matches_the_workers_metrics() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    # prometheus_client names counter families without the _total its samples carry.
    exported = {
        family.name + "_total" if family.type == "counter" else family.name: family.type
        for family in registry.collect()
    }
    assert exported == dict(WORKER_METRICS)
