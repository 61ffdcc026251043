"""Prometheus metrics, on a registry owned by the app (so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.callbacks = Counter(
            "wecom_callbacks_total",
            "Callbacks by path and result",
            ["path", "result"],
            registry=self.registry,
        )
        self.sends = Counter(
            "wecom_sends_total",
            "Outbox send attempts by channel and result",
            ["channel", "result"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "wecom_outbox_depth", "Unsent outbox rows", registry=self.registry
        )
        self.outbox_oldest_age = Gauge(
            "wecom_outbox_oldest_age_seconds",
            "Age of the oldest unsent outbox row",
            registry=self.registry,
        )
        self.job_runs = Counter(
            "wecom_job_runs_total",
            "Scheduler job runs by job and result",
            ["job", "result"],
            registry=self.registry,
        )
        self.inbox_processed = Counter(
            "wecom_inbox_processed_total",
            "Inbox rows processed by result",
            ["result"],
            registry=self.registry,
        )
        self.loop_age = Gauge(
            "wecom_loop_last_success_age_seconds",
            "Seconds since each background loop's last successful round",
            ["loop"],
            registry=self.registry,
        )
        self.loop_running = Gauge(
            "wecom_loop_running",
            "1 while the background loop runs, 0 once it has stopped",
            ["loop"],
            registry=self.registry,
        )
        self.loop_errors = Counter(
            "wecom_loop_errors_total",
            "Failed rounds of each background loop",
            ["loop"],
            registry=self.registry,
        )
        self.archive_pulls = Counter(
            "wecom_archive_pulls_total",
            "Archive pulls by result (ok, error, busy: another replica held the lease)",
            ["result"],
            registry=self.registry,
        )
        self.archive_records = Counter(
            "wecom_archive_records_total",
            "Pulled archive records by result (accepted, ignored, duplicate, error)",
            ["result"],
            registry=self.registry,
        )
        self.archive_cursor = Gauge(
            "wecom_archive_cursor_seq",
            "The archive seq this replica last stored up to",
            registry=self.registry,
        )
