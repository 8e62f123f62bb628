"""The HTTP floor: the four routes bench/throughput.py calls, in plain Flask (the framework DESIGN.md's
API is built on), doing nothing but read the JSON body and answer JSON — no authentication, no
database, no engine. Served by the same gunicorn settings as bpmn_server (bench/driver.ServerProcess),
it measures what one request costs before any work of the server's own: client, socket, gunicorn,
Werkzeug and Flask. ``bench/throughput.py`` also calls it in process as WSGI (Flask's own cost,
whatever server runs it), which with bench/bare_http.py's round trips bounds the HTTP ratio.

    gunicorn -k gthread --threads 4 bench.empty_api:app
"""

from __future__ import annotations

import uuid

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/readyz")
def ready():
    return jsonify(status="ready")


@app.post("/api/v1/process-instances")
def start():
    body = request.get_json()
    return jsonify(id=str(uuid.uuid4()), key=body["key"], status="waiting"), 201


@app.get("/api/v1/tasks")
def tasks():
    return jsonify(items=[{"id": str(uuid.uuid4()), "instance_id": request.args["instanceId"]}], total=1)


@app.post("/api/v1/tasks/<task_id>/<action>")
def act(task_id: str, action: str):
    request.get_json()
    return jsonify(id=task_id, status="completed" if action == "complete" else "claimed")
