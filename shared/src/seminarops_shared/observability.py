"""Prometheus metrics, one registry per service app (no process-global state, so tests
can build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """Operational metrics every service exposes at ``/metrics``. No personal data in labels."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        labels = {"service": service}
        r = self.registry
        self.events_processed = Counter(
            "seminarops_events_processed",
            "Consumed records by outcome (processed, duplicate, ignored, dead_lettered).",
            ["service", "topic", "type", "outcome"],
            registry=r,
        )
        self.event_processing_seconds = Histogram(
            "seminarops_event_processing_seconds",
            "Time to apply one consumed batch, observed once per event in it.",
            ["service", "topic"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.event_age_seconds = Histogram(
            "seminarops_event_age_seconds",
            "From the record's timestamp to the end of its processing (end-to-end lag).",
            ["service", "topic"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dlq_records = Counter(
            "seminarops_dlq_records",
            "Records sent to a dead-letter topic.",
            ["service", "topic", "reason_kind"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "seminarops_consumer_lag",
            "Records not yet consumed, per partition of this replica's assignment.",
            ["service", "group", "topic", "partition"],
            registry=r,
        )
        self.offset_gaps = Counter(
            "seminarops_offset_gaps",
            "Polls whose records jumped past an offset, by what was done: fetched again,"
            " or accepted (the hole stayed for KAFKA_OFFSET_GAP_PATIENCE_S).",
            ["service", "topic", "outcome"],
            registry=r,
        )
        self.transient_retries = Counter(
            "seminarops_transient_retries",
            "Batches retried after a transient error (database or broker unavailable).",
            ["service", "topic"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "seminarops_outbox_backlog",
            "Outbox entries not yet published.",
            ["service"],
            registry=r,
        ).labels(**labels)
        self.outbox_published = Counter(
            "seminarops_outbox_published", "Outbox entries published.", ["service"], registry=r
        ).labels(**labels)
        self.http_requests = Counter(
            "seminarops_http_requests",
            "HTTP requests by route template and status.",
            ["service", "method", "route", "status"],
            registry=r,
        )
        self.http_requests_shed = Counter(
            "seminarops_http_requests_shed",
            "HTTP requests answered 503 at once because too many were in flight.",
            ["service"],
            registry=r,
        ).labels(**labels)
        self.http_request_seconds = Histogram(
            "seminarops_http_request_seconds",
            "HTTP request duration by route template.",
            ["service", "method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def processed(self, *, topic: str, event_type: str, outcome: str, count: int = 1) -> None:
        self.events_processed.labels(self.service, topic, event_type, outcome).inc(count)
