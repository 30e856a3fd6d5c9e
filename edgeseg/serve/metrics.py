"""Prometheus metrics of one app, in a registry of its own (several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class ServeMetrics:
    """Requests by endpoint and status, latency, batch sizes, queue depth, requests in flight."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edgeseg_requests",
            "HTTP requests by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "edgeseg_request_seconds",
            "Time from request to response of /v1/segment",
            ["format"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "edgeseg_batch_size", "Images per model run", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.inference = Histogram(
            "edgeseg_inference_seconds",
            "Duration of one model run (one batch)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.client_gone = Counter(
            "edgeseg_client_gone",
            "Requests whose client disconnected before the response",
            registry=self.registry,
        )
        self.in_flight = Gauge("edgeseg_in_flight", "Requests being handled", registry=self.registry)
        depth = Gauge("edgeseg_queue_depth", "Images waiting for a model run", registry=self.registry)
        depth.set_function(queue_depth)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.inference.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
