"""Health, readiness, Prometheus metrics, request ids and JSON logs — what an operator watches."""

from __future__ import annotations

import json
import logging

from bpmn_server import logs
from bpmn_server.metrics import measured_command

from .models import linear_process


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readiness_fails_with_problem_when_database_is_gone(client, services, monkeypatch):
    monkeypatch.setattr(services.database, "ping", lambda: False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"


def test_metrics_report_database_figures_and_commands(client, services, auth):
    client.post("/api/v1/deployments", data=linear_process("metrics_demo"), headers={**auth, "Content-Type": "application/xml"})
    with measured_command("test-kind"):
        pass
    body = client.get("/metrics").get_data(as_text=True)
    assert 'bpmn_server_commands_total{kind="test-kind",outcome="ok"}' in body
    assert "bpmn_server_open_tasks 0.0" in body
    assert "bpmn_server_due_timers 0.0" in body
    assert 'bpmn_server_http_requests_total{method="POST",status="201"}' in body


def test_request_id_is_echoed_or_made_up(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made_up = client.get("/healthz").headers["X-Request-ID"]
    assert len(made_up) == 32 and made_up != "abc-123"


def test_json_log_lines_carry_request_and_instance_ids():
    record = logging.makeLogRecord({"name": "bpmn_server.runtime", "levelname": "INFO", "msg": "task %s done",
                                    "args": ("t1",), "instance_id": "i-42"})
    token = logs.request_id.set("r-7")
    try:
        line = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.request_id.reset(token)
    assert line["message"] == "task t1 done"
    assert line["request_id"] == "r-7" and line["instance_id"] == "i-42"
    assert line["level"] == "info" and line["time"].endswith("+00:00")
