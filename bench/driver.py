"""Drive real bpmn_server processes over HTTP: start gunicorn servers on a database, run clients
through start → claim → complete, and check what is stored afterwards. Used by bench/load.py and
by the fault suite (tests/test_faults.py)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent  # gunicorn imports bench.empty_api from here
PROCESS_KEY = "load_approval"
LOAD_MODEL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="load_defs"
    targetNamespace="http://bpmn-server.example/load">
  <bpmn:process id="{PROCESS_KEY}" name="Load approval" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="approve" name="Approve" camunda:candidateGroups="staff">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="approve"/>
    <bpmn:sequenceFlow id="f2" sourceRef="approve" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
""".encode()


def prepare_database(database_url: str, data_dir: Path) -> str:
    """Schema, the load model deployed, and a user in group ``staff``; returns that user's token."""
    from bpmn_server.services import Services
    from bpmn_server.settings import Settings

    services = Services(Settings(data_dir=data_dir, database_url=database_url, secret_key="load").resolved())
    services.create_schema()
    services.definitions.deploy(LOAD_MODEL, "load.bpmn", "admin")
    services.identity.create_user("loader", password="loader-pass", groups=["staff"])
    token = services.identity.create_token("loader", "load").token
    services.database.dispose()
    return token


@dataclass
class ServerProcess:
    """One gunicorn process serving bpmn_server (or another WSGI ``app``) on ``database_url``."""

    database_url: str
    data_dir: Path
    threads: int = 8
    app: str = "bpmn_server.wsgi:app"
    port: int = 0  # chosen by the system when the server starts
    process: subprocess.Popen | None = None
    # the server's stderr goes to a file: a pipe nobody reads fills up (64 KiB of logged tracebacks while
    # its database is down) and then every request thread blocks on the logging lock
    log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start gunicorn on a socket this process already listens on (``fd://``): requests queue in
        its backlog until the server accepts them, so readiness is one blocking request, no polling."""
        env = dict(os.environ, BPMN_SERVER_DATABASE_URL=self.database_url, BPMN_SERVER_DATA_DIR=str(self.data_dir),
                   BPMN_SERVER_SECRET_KEY="load", BPMN_SERVER_SCHEDULER="false", BPMN_SERVER_LOG_LEVEL="WARNING")
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.log = tempfile.TemporaryFile()
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            self.port = listener.getsockname()[1]
            self.process = subprocess.Popen(
                [str(gunicorn), "-w", "1", "-k", "gthread", "--threads", str(self.threads),
                 "-b", f"fd://{listener.fileno()}", "--log-level", "warning", self.app],
                env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log, pass_fds=(listener.fileno(),),
                start_new_session=True,  # a process group of its own, which kill() ends whole
            )
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=timeout) as response:
                if response.status == 200:
                    return self
        except OSError as error:
            self.kill()
            self.log.seek(0)
            raise RuntimeError(f"server did not become ready ({error}): "
                               f"{self.log.read().decode(errors='replace')[-2000:]}") from None
        raise RuntimeError("server did not become ready")

    def kill(self) -> None:
        """SIGKILL to gunicorn and its workers (its own process group): no shutdown hooks, requests in
        flight are cut off. (Killing gunicorn alone would leave its worker to finish them.)"""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def call(base: str, method: str, path: str, token: str, body: dict | None = None, *,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """One HTTP request over this thread's kept-alive connection to ``base``, as an integrator's HTTP
    client keeps one, with ``headers`` added; returns (status, JSON body); connection failures are status 0."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})}
    for _attempt in range(2):
        connection, reused = _connection(base)
        try:
            connection.request(method, f"/api/v1{path}", body=data, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            _forget(base)
            if reused and isinstance(error, _STALE_CONNECTION):
                continue  # the server had closed the idle connection before this request: send it on a new one
            return 0, {}
        if response.will_close:
            _forget(base)
        return response.status, json.loads(payload or b"{}")
    return 0, {}


_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
_kept = threading.local()


def _connection(base: str) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's connection to ``base`` and whether it was used before."""
    connections = _kept.__dict__.setdefault("connections", {})
    if base in connections:
        return connections[base], True
    parts = urllib.parse.urlsplit(base)
    connections[base] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    return connections[base], False


def _forget(base: str) -> None:
    connection = _kept.__dict__.get("connections", {}).pop(base, None)
    if connection is not None:
        connection.close()


@dataclass
class LoadResult:
    completed: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    started_ids: list[str] = field(default_factory=list)
    failures: list[tuple[int, str | None]] = field(default_factory=list)  # (status, problem type) per failed case
    lock: threading.Condition = field(default_factory=threading.Condition)  # notified on each completed case

    def wait_until_completed(self, count: int, timeout: float = 60.0) -> bool:
        """Block until ``count`` cases have completed (False if ``timeout`` passes first)."""
        with self.lock:
            return self.lock.wait_for(lambda: self.completed >= count, timeout)


def one_case(base: str, token: str, result: LoadResult, business_key: str) -> bool:
    """start → find the task → claim → complete; records the latency of the whole case, or the answer
    of the step that failed (status 200 there: the task list came back without the task). True when
    the case completed."""
    began = time.perf_counter()
    ok = False
    status, body = call(base, "POST", "/process-instances", token,
                        {"key": PROCESS_KEY, "businessKey": business_key, "variables": {"n": 1}})
    if status == 201:
        with result.lock:
            result.started_ids.append(body["id"])
        status, body = call(base, "GET", f"/tasks?instanceId={body['id']}", token)
        tasks = body.get("items", []) if status == 200 else []
        if tasks:
            status, body = call(base, "POST", f"/tasks/{tasks[0]['id']}/claim", token, {})
            if status == 200:
                status, body = call(base, "POST", f"/tasks/{tasks[0]['id']}/complete", token, {"data": {}})
                ok = status == 200
    with result.lock:
        if ok:
            result.completed += 1
            result.latencies.append(time.perf_counter() - began)
            result.lock.notify_all()
        else:
            result.errors += 1
            result.failures.append((status, body.get("type")))
    return ok


def drive(bases: list[str], token: str, *, clients: int, cases_per_client: int,
          stop: threading.Event | None = None) -> LoadResult:
    """``clients`` threads, each running ``cases_per_client`` cases against the servers in turn."""
    result = LoadResult()

    def client(number: int) -> None:
        for i in range(cases_per_client):
            if stop is not None and stop.is_set():
                return
            one_case(bases[(number + i) % len(bases)], token, result, f"c{number}-{i}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")
