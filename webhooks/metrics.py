"""Prometheus metrics of this API process (prometheus_client, its own registry)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("spacegroup_http_requests_total", "HTTP requests answered", ["method", "route", "status"],
                   registry=REGISTRY)
LATENCY = Histogram("spacegroup_http_request_seconds", "Time to answer a request", ["route"], registry=REGISTRY,
                    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))
PREDICTIONS = Counter("spacegroup_predictions_total", "Predictions answered", ["modality", "outcome"],
                      registry=REGISTRY)
STARTED = Gauge("spacegroup_process_start_time_seconds", "Start time of this API process", registry=REGISTRY)
STARTED.set(time.time())


def observe(method: str, route: str, status: int, seconds: float | None) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    if seconds is not None:
        LATENCY.labels(route).observe(seconds)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
