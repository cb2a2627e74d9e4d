"""The worker's public metric names, as the deployment artefacts may use them.

The worker's observability module is the source; dashboards and alerts are built on these names,
and test_catalogue.py fails when the two differ, so a rename there cannot silently blank a panel.
"""

from __future__ import annotations

from collections.abc import Mapping

WORKER_METRICS: Mapping[str, str] = {
    "j7507_records_consumed_total": "counter",
    "j7507_claims_decided_total": "counter",
    "j7507_rule_findings_total": "counter",
    "j7507_dead_letters_total": "counter",
    "j7507_claim_processing_seconds": "histogram",
    "j7507_end_to_end_latency_seconds": "histogram",
    "j7507_consumer_lag_records": "gauge",
    "j7507_last_commit_timestamp_seconds": "gauge",
    "j7507_loop_heartbeat_timestamp_seconds": "gauge",
    "j7507_assigned_partitions": "gauge",
    "j7507_rebalances_total": "counter",
    "j7507_context_entries": "gauge",
    "j7507_context_restore_seconds": "histogram",
    "j7507_late_context_records_total": "counter",
    "j7507_build_info": "gauge",
    "j7507_shadow_decisions_total": "counter",
    "j7507_shadow_rule_findings_total": "counter",
    "j7507_shadow_errors_total": "counter",
}

_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def exposed_series_names() -> frozenset[str]:
    """Names a scrape of the worker can return: histograms expose _bucket, _sum and _count."""
    names: set[str] = set()
    for name, kind in WORKER_METRICS.items():
        if kind == "histogram":
            names.update(name + suffix for suffix in _HISTOGRAM_SERIES)
        else:
            names.add(name)
    return frozenset(names)


def base_metric(series: str) -> str:
    """The catalogue name a series belongs to (j7507_x_seconds_bucket -> j7507_x_seconds)."""
    for suffix in _HISTOGRAM_SERIES:
        stem = series.removesuffix(suffix)
        if stem != series and WORKER_METRICS.get(stem) == "histogram":
            return stem
    return series
