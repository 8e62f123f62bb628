"""``GET /metrics``: Prometheus text format — command counters and latency of this process, plus
figures read from the shared database at scrape time (open/overdue tasks, due timers, incidents,
outbox backlog, instances by status)."""

from __future__ import annotations

from flask import Response
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..metrics import REGISTRY
from ..store.figures import operational_figures
from .arguments import Blueprint
from .auth import services

blp = Blueprint("metrics", __name__, description="Monitoring")


class DatabaseFigures(Collector):
    """Gauges computed from the database each time Prometheus scrapes."""

    def __init__(self, services_of) -> None:
        self._services_of = services_of

    def collect(self):
        service = self._services_of()
        with service.database.read() as session:
            figures = operational_figures(session, service.clock.now())
        instances = GaugeMetricFamily("bpmn_server_instances", "Process instances by status", labels=["status"])
        for status, count in sorted(figures.instances_by_status.items()):
            instances.add_metric([status], count)
        yield instances
        for name, help_text, value in (
            ("bpmn_server_open_tasks", "Open or claimed human tasks", figures.open_tasks),
            ("bpmn_server_overdue_tasks", "Open tasks past their due date", figures.overdue_tasks),
            ("bpmn_server_waiting_timers", "Timers waiting to fire", figures.waiting_timers),
            ("bpmn_server_due_timers", "Timers due now and not yet fired", figures.due_timers),
            ("bpmn_server_open_incidents", "Incidents not yet resolved", figures.open_incidents),
            ("bpmn_server_outbox_backlog", "Notifications and webhooks waiting for delivery", figures.outbox_backlog),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(responses={200: {"description": "Prometheus text exposition format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}})
    def get(self):
        """Prometheus metrics of this process and of the shared database."""
        registry = CollectorRegistry()
        registry.register(DatabaseFigures(services))
        body = generate_latest(REGISTRY) + generate_latest(registry)
        return Response(body, mimetype=CONTENT_TYPE_LATEST)
