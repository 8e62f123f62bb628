"""Prometheus metrics every layer may update: commands by kind and outcome, and their latency.

State figures (open tasks, due and overdue timers, incidents, outbox backlog) are read from the
database when ``/metrics`` is scraped (api/metrics.py), so they are right on every node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

COMMANDS = Counter(
    "bpmn_server_commands",
    "Commands run (start instance, complete task, fire timer, correlate message, deploy …)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
COMMAND_SECONDS = Histogram(
    "bpmn_server_command_seconds",
    "Time one command takes, from load to commit",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "bpmn_server_http_requests", "HTTP requests answered", ["method", "status"], registry=REGISTRY
)


@contextmanager
def measured_command(kind: str) -> Iterator[None]:
    """Count one command of ``kind`` and time it; an exception counts as outcome ``error``."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        COMMANDS.labels(kind=kind, outcome=outcome).inc()
        COMMAND_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)
