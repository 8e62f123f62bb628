"""The model repository: deploy, versions, deduplication, export byte for byte, retire."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bpmn_server.errors import Forbidden, HostileDocument, InvalidDocument, InvalidInput, NotFound
from bpmn_server.identity import Principal

from .models import definitions, linear_process


def test_deploy_creates_version_one_with_findings(services):
    result = services.definitions.deploy(linear_process(), "simple.bpmn", "owner")
    assert result.created
    [definition] = result.definitions
    assert (definition.key, definition.version, definition.executable) == ("simple", 1, True)
    assert definition.error_count == 0
    assert services.definitions.get("simple").version == 1


def test_same_bytes_return_the_existing_version(services):
    first = services.definitions.deploy(linear_process(), "a.bpmn", "owner")
    again = services.definitions.deploy(linear_process(), "renamed.bpmn", "someone-else")
    assert not again.created
    assert again.deployment.id == first.deployment.id
    assert [d.version for d in again.definitions] == [1]


def test_changed_file_becomes_next_version(services):
    services.definitions.deploy(linear_process(label="Do it"), "a.bpmn", "owner")
    result = services.definitions.deploy(linear_process(label="Do it now"), "a.bpmn", "owner")
    assert result.created and result.definitions[0].version == 2
    page = services.definitions.list_definitions(key="simple")
    assert [d.version for d in page.items] == [1, 2]
    assert services.definitions.get("simple").version == 2
    assert services.definitions.get("simple", 1).version == 1


def test_export_is_byte_identical(services):
    source = linear_process().replace(b"\n", b"\r\n")
    result = services.definitions.deploy(source, "crlf.bpmn", "owner")
    assert services.definitions.source_of(result.definitions[0]) == source


def test_every_process_of_a_file_becomes_a_definition(services):
    source = definitions("""
  <bpmn:process id="one" isExecutable="true"><bpmn:startEvent id="s1"/></bpmn:process>
  <bpmn:process id="two" isExecutable="false"><bpmn:startEvent id="s2"/></bpmn:process>""")
    result = services.definitions.deploy(source, "two.bpmn", "owner")
    assert [(d.key, d.executable) for d in result.definitions] == [("one", True), ("two", False)]


def test_model_with_findings_still_deploys_with_the_findings_attached(services):
    broken = definitions("""
  <bpmn:process id="broken" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="nowhere"/>
  </bpmn:process>""")
    result = services.definitions.deploy(broken, "broken.bpmn", "owner")
    [definition] = result.definitions
    assert definition.error_count >= 1
    rules = {f["rule"] for f in definition.findings}
    assert "dangling-reference" in rules
    assert any(f.get("element_id") == "f1" and f.get("line") for f in definition.findings)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (b"<bpmn:definitions", InvalidDocument),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>', HostileDocument),
        (b'<root xmlns="urn:other"/>', InvalidDocument),
    ],
)
def test_unusable_files_are_refused_and_nothing_is_stored(services, source, error):
    with pytest.raises(error):
        services.definitions.deploy(source, "bad.bpmn", "owner")
    assert services.definitions.list_definitions().total == 0


def test_file_without_process_is_refused(services):
    with pytest.raises(InvalidInput):
        services.definitions.deploy(definitions(""), "empty.bpmn", "owner")


def test_unknown_key_or_version_is_not_found(services):
    services.definitions.deploy(linear_process(), "a.bpmn", "owner")
    with pytest.raises(NotFound):
        services.definitions.get("missing")
    with pytest.raises(NotFound):
        services.definitions.get("simple", 7)


def test_retire_hides_version_from_latest_but_keeps_it(services):
    services.definitions.deploy(linear_process(label="a"), "a.bpmn", "owner")
    services.definitions.deploy(linear_process(label="b"), "a.bpmn", "owner")
    services.definitions.retire("simple", 2, Principal("owner"))
    assert services.definitions.get("simple").version == 1
    assert services.definitions.get("simple", 2).retired_at is not None
    latest = services.definitions.list_definitions(latest_only=True, include_retired=False)
    assert [(d.key, d.version) for d in latest.items] == [("simple", 1)]


def test_only_owner_or_admin_retires(services):
    services.definitions.deploy(linear_process(), "a.bpmn", "owner")
    with pytest.raises(Forbidden):
        services.definitions.retire("simple", 1, Principal("intruder"))
    services.definitions.retire("simple", 1, Principal("boss", is_admin=True))


def test_deploy_is_audited(services):
    services.definitions.deploy(linear_process(), "a.bpmn", "owner")
    page = services.audit.list_events(Principal("auditor", is_admin=True), event_type="model-deployed")
    assert [(e.actor, e.definition_key, e.definition_version) for e in page.items] == [("owner", "simple", 1)]


def test_concurrent_deploys_of_one_key_get_consecutive_versions(services):
    sources = [linear_process(label=f"variant {i}") for i in range(6)]
    errors: list[BaseException] = []

    def deploy(source: bytes) -> None:
        try:
            services.definitions.deploy(source, "a.bpmn", "owner")
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=deploy, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    versions = [d.version for d in services.definitions.list_definitions(key="simple").items]
    assert versions == [1, 2, 3, 4, 5, 6]


def test_concurrent_deploys_of_the_same_file_deduplicate(services):
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(services.definitions.deploy(linear_process(), "a", "o")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert len({r.deployment.id for r in results}) == 1
    assert services.definitions.list_definitions().total == 1


def test_miwg_models_deploy_and_export_unchanged(services, miwg_dir: Path):
    for path in sorted(miwg_dir.glob("*.bpmn")):
        source = path.read_bytes()
        result = services.definitions.deploy(source, path.name, "owner")
        assert result.definitions, path.name
        for definition in result.definitions:
            assert services.definitions.source_of(definition) == source


def test_betsy_models_deploy(services, betsy_dir: Path):
    files = sorted((betsy_dir / "bpmn").rglob("*.bpmn"))
    assert len(files) >= 100
    for path in files:
        result = services.definitions.deploy(path.read_bytes(), path.name, "owner")
        assert result.definitions, path.name
