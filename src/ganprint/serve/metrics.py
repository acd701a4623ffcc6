"""Prometheus metrics of one server process (prometheus_client, text format at GET /metrics).

With several worker processes (`--workers N`) each process counts its own requests; the server
then runs prometheus_client's multi-process mode (PROMETHEUS_MULTIPROC_DIR, set by `ganprint
serve`) so that /metrics, whichever worker answers it, reports the sum over all workers.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the app)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The server's counters and histograms, in a registry of their own (not the global one)."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("ganprint_requests", "HTTP requests answered, by route and status code.",
                                ["route", "method", "status"], registry=r)  # fmt: skip
        self.latency = Histogram("ganprint_request_duration_seconds", "Time from request to response, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.images = Counter("ganprint_images", "Images read, by endpoint and model.", ["endpoint", "model"],
                              registry=r)  # fmt: skip
        self.verdicts = Counter("ganprint_verdicts", "Verdicts given, by endpoint and verdict.",
                                ["endpoint", "verdict"], registry=r)  # fmt: skip
        self.errors = Counter("ganprint_errors", "Requests answered with an error, by kind (the JSON 'kind').",
                              ["kind"], registry=r)  # fmt: skip
        self.batch_size = Histogram("ganprint_decoder_batch_images", "Images per decoder call (requests batched "
                                    "together).", ["model"], buckets=BATCH_BUCKETS, registry=r)  # fmt: skip

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format: this process's, or all workers' in multi-process mode."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)
            return generate_latest(combined)
        return generate_latest(self.registry)
