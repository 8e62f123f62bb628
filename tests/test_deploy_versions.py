"""Versions on both databases: the same bytes give the same version, a changed file the next one,
concurrent deploys of one new file make one version, and ``bpmn-server deploy`` says what it did."""

from __future__ import annotations

import io
import json
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bpmn_server.cli import main
from bpmn_server.store.models import AuditEvent, Deployment, ProcessDefinition

from .conftest import DIAGRAMS_DIR
from .models import definitions, linear_process


def deploy(client, auth, source: bytes, name: str = "simple.bpmn"):
    return client.post("/api/v1/deployments", headers=auth, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(source), name)})


def counts(services) -> tuple[int, int, int]:
    """(deployments, definitions, model-deployed audit events) in the database."""
    with services.database.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Deployment)),
            session.scalar(select(func.count()).select_from(ProcessDefinition)),
            session.scalar(select(func.count()).select_from(AuditEvent)
                           .where(AuditEvent.event_type == "model-deployed")),
        )


def test_same_bytes_twice_give_the_same_version(services):
    first = services.definitions.deploy(linear_process(), "a.bpmn", "owner")
    again = services.definitions.deploy(linear_process(), "a.bpmn", "owner")
    assert (first.created, again.created) == (True, False)
    assert [(d.key, d.version) for d in again.definitions] == [("simple", 1)]
    assert counts(services) == (1, 1, 1)


def test_a_changed_file_gives_the_next_version_and_old_versions_keep_their_bytes(services):
    sources = [linear_process(label=f"Step {n}") for n in range(1, 4)]
    versions = [services.definitions.deploy(source, "a.bpmn", "owner").definitions[0].version for source in sources]
    assert versions == [1, 2, 3]
    for version, source in zip(versions, sources, strict=True):
        assert services.definitions.source_of(services.definitions.get("simple", version)) == source
    # deploying version 1's bytes again is a redeploy of version 1, not version 4
    assert services.definitions.deploy(sources[0], "a.bpmn", "owner").definitions[0].version == 1
    assert services.definitions.get("simple").version == 3


def test_versions_count_per_key(services):
    services.definitions.deploy(linear_process("alpha", label="x"), "alpha.bpmn", "owner")
    services.definitions.deploy(linear_process("alpha", label="y"), "alpha.bpmn", "owner")
    both = definitions("""
  <bpmn:process id="alpha" isExecutable="true"><bpmn:startEvent id="s1"/></bpmn:process>
  <bpmn:process id="beta" isExecutable="false"><bpmn:startEvent id="s2"/></bpmn:process>""")
    result = services.definitions.deploy(both, "both.bpmn", "owner")
    assert [(d.key, d.version) for d in result.definitions] == [("alpha", 3), ("beta", 1)]


def test_api_versions_list_get_and_download_byte_identical(client, auth):
    sources = [linear_process(label="first"), linear_process(label="second").replace(b"\n", b"\r\n")]
    assert [deploy(client, auth, source).status_code for source in sources] == [201, 201]
    again = deploy(client, auth, sources[1])
    assert again.status_code == 200 and again.json["definitions"][0]["version"] == 2
    listed = client.get("/api/v1/process-definitions?key=simple", headers=auth).json
    assert [d["version"] for d in listed["items"]] == [1, 2] and listed["total"] == 2
    for version, source in enumerate(sources, start=1):
        one = client.get(f"/api/v1/process-definitions/simple/versions/{version}", headers=auth).json
        assert one["version"] == version and one["error_count"] == 0
        xml = client.get(one["links"]["xml"], headers=auth)
        assert xml.status_code == 200 and xml.data == source


def _race(count: int, target) -> list[BaseException]:
    """Run ``target`` in ``count`` threads released at the same moment; return what they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            target()
        except BaseException as error:  # reported by the caller
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_deploys_of_one_new_file_make_one_version(services, round_):
    source = linear_process(f"race_{round_}", label=f"round {round_}")
    results = []
    errors = _race(2, lambda: results.append(services.definitions.deploy(source, "race.bpmn", "owner")))
    assert errors == []
    assert sorted(result.created for result in results) == [False, True]
    assert {result.deployment.id for result in results} == {results[0].deployment.id}
    assert [[(d.key, d.version) for d in result.definitions] for result in results] == [[(f"race_{round_}", 1)]] * 2
    assert counts(services) == (1, 1, 1)


# -- the command line -------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch, settings, tmp_path):
    """Point ``bpmn-server`` at the test database."""
    monkeypatch.setenv("BPMN_SERVER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BPMN_SERVER_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("BPMN_SERVER_SECRET_KEY", "cli-test")


def test_cli_deploy_prints_key_version_and_findings(cli_env, services, tmp_path):
    broken = definitions("""
  <bpmn:process id="broken" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="end"/>
    <bpmn:endEvent id="end"/>
    <bpmn:task id="orphan"/>
  </bpmn:process>""")
    path = tmp_path / "broken.bpmn"
    path.write_bytes(broken)
    result = CliRunner().invoke(main, ["deploy", str(path), "--as", "alice"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{path}: deployed as deployment 1"
    assert lines[1] == "  broken version 1 (executable, cannot start: 1 errors; 1 findings)"
    assert lines[2].startswith(f"    {path}:8: error unreachable-node [orphan] ")
    again = CliRunner().invoke(main, ["deploy", str(path)])
    assert again.output.splitlines()[0] == f"{path}: unchanged (the same file was deployed before) as deployment 1"
    definition = services.definitions.get("broken", 1)
    assert definition.owner == "alice" and definition.error_count == 1


def test_cli_deploys_a_folder_and_reports_refused_files(cli_env, services, tmp_path):
    (tmp_path / "good.bpmn").write_bytes(linear_process("good"))
    (tmp_path / "evil.bpmn").write_bytes(b'<?xml version="1.0"?>\n<!DOCTYPE x SYSTEM "http://example.invalid/x">\n<x/>')
    result = CliRunner().invoke(main, ["deploy", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1
    report = {entry["file"].rsplit("/", 1)[-1]: entry for entry in json.loads(result.stdout)["files"]}
    assert report["good.bpmn"]["status"] == "deployed"
    assert [(d["key"], d["version"], d["startable"]) for d in report["good.bpmn"]["definitions"]] == [("good", 1, True)]
    assert report["evil.bpmn"]["status"] == "refused"
    assert (report["evil.bpmn"]["type"], report["evil.bpmn"]["line"]) == ("hostile-document", 2)
    assert [d.key for d in services.definitions.list_definitions().items] == ["good"]


def test_cli_deploys_the_example_diagrams(cli_env, services):
    result = CliRunner().invoke(main, ["deploy", str(DIAGRAMS_DIR)])
    assert result.exit_code == 0, result.output
    deployed = services.definitions.list_definitions().items
    assert len(deployed) == len(list(DIAGRAMS_DIR.glob("*.bpmn")))
    assert all(d.error_count == 0 and d.executable for d in deployed)
    assert "0 findings" in result.output and "cannot start" not in result.output
