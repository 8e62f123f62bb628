"""Lossless import: every MIWG reference model round-trips byte for byte, any encoding and prefix
imports, and hostile or unusable XML is refused with a precise error — through the Python API, the
REST API and the command line — with nothing stored."""

from __future__ import annotations

import dataclasses
import io
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy import func, select

from bpmn_server.cli.validate import validate_command
from bpmn_server.errors import BpmnServerError, DocumentTooLarge, HostileDocument, InvalidDocument
from bpmn_server.parser.document import BpmnDocument
from bpmn_server.parser.validation import validate
from bpmn_server.store.models import Deployment, ProcessDefinition

from .conftest import CONFORMANCE_DIR
from .models import linear_process

MIWG_NAMES = sorted(path.name for path in (CONFORMANCE_DIR / "miwg-reference").glob("*.bpmn"))
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
PROBLEM = "application/problem+json"


# -- the MIWG reference set -------------------------------------------------------------------------


def test_the_miwg_reference_set_has_its_21_models(miwg_dir: Path):
    assert len(list(miwg_dir.glob("*.bpmn"))) == 21


@pytest.mark.parametrize("name", MIWG_NAMES)
def test_miwg_model_imports_validates_and_exports_byte_identical(miwg_dir: Path, name: str):
    source = (miwg_dir / name).read_bytes()
    document = BpmnDocument.load(source, name)
    assert document.export() == source
    assert document.processes(), "every reference model has at least one process"
    findings = validate(document)
    assert [f for f in findings if f.rule == "xsd"] == [], "the reference models are schema-valid"
    assert [f for f in findings if f.rule == "rule-failed"] == [], "no check crashed"
    assert all(f.line for f in findings if f.element_id), "located findings carry a line"


# -- encodings, BOM, line ends, prefixes --------------------------------------------------------------

NAME = "Prüfung – Bestätigen"


def _variant(kind: str) -> bytes:
    text = linear_process(label=NAME).decode("utf-8")
    if kind == "utf-8":
        return text.encode("utf-8")
    if kind == "utf-8 with BOM":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if kind == "CRLF":
        return text.replace("\n", "\r\n").encode("utf-8")
    if kind == "ISO-8859-1":
        return text.replace("–", "-").replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("latin-1")
    if kind == "windows-1252":
        return text.replace('encoding="UTF-8"', 'encoding="windows-1252"').encode("cp1252")
    if kind == "UTF-16 with BOM":
        return text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    if kind == "semantic: prefix":
        return text.replace("bpmn:", "semantic:").replace("xmlns:bpmn=", "xmlns:semantic=").encode()
    if kind == "bpmn2: prefix":
        return text.replace("bpmn:", "bpmn2:").replace("xmlns:bpmn=", "xmlns:bpmn2=").encode()
    if kind == "default namespace":
        return text.replace("<bpmn:", "<").replace("</bpmn:", "</").replace("xmlns:bpmn=", "xmlns=").encode()
    raise AssertionError(kind)


VARIANTS = ["utf-8", "utf-8 with BOM", "CRLF", "ISO-8859-1", "windows-1252", "UTF-16 with BOM",
            "semantic: prefix", "bpmn2: prefix", "default namespace"]


@pytest.mark.parametrize("kind", VARIANTS)
def test_encodings_and_prefixes_import_losslessly(kind: str):
    source = _variant(kind)
    document = BpmnDocument.load(source, "variant.bpmn")
    expected = NAME.replace("–", "-") if kind == "ISO-8859-1" else NAME
    assert document.element("work").get("name") == expected
    assert [p.id for p in document.processes()] == ["simple"]
    assert document.export() == source
    assert validate(document) == [], "the same model in another spelling has the same (no) findings"


@pytest.mark.parametrize("kind", ["ISO-8859-1", "UTF-16 with BOM", "CRLF"])
def test_a_non_utf8_file_deploys_and_downloads_byte_identical(client, auth, kind):
    source = _variant(kind)
    response = client.post("/api/v1/deployments", headers=auth, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(source), "variant.bpmn")})
    assert response.status_code == 201, response.json
    xml = client.get("/api/v1/process-definitions/simple/versions/1/xml", headers=auth)
    assert xml.data == source


@pytest.mark.parametrize("declared", ["UTF-8", "ISO-8859-1", "windows-1252", "UTF-16"])
def test_text_is_read_in_the_encoding_it_declares(declared):
    """A str (from a form field or the modeler) is encoded as its declaration says, not blindly as UTF-8."""
    text = _variant("utf-8").decode("utf-8").replace('encoding="UTF-8"', f'encoding="{declared}"')
    document = BpmnDocument.load(text, "text.bpmn")
    assert document.element("work").get("name") == NAME
    assert validate(document) == []


def test_doctype_text_inside_documentation_is_not_mistaken_for_one():
    source = linear_process().replace(
        b"<bpmn:documentation>Purpose of Simple.</bpmn:documentation>",
        b"<bpmn:documentation textFormat=\"text/html\"><![CDATA[<!DOCTYPE html><p>Purpose</p>]]>"
        b"</bpmn:documentation>",
    )
    document = BpmnDocument.load(source, "html-doc.bpmn")
    assert document.processes()[0].documentation.startswith("<!DOCTYPE html>")


# -- hostile and unusable input ---------------------------------------------------------------------

VALID_BODY = linear_process().split(b"\n", 1)[1]  # without the XML declaration
TRUNCATED = linear_process()[: linear_process().index(b"</bpmn:process>")]
LIMITS = {"max_bytes": 64 * 1024, "max_depth": 50, "max_elements": 2000}


def _deep(levels: int) -> bytes:
    return (f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="d" targetNamespace="x">'.encode()
            + b"<bpmn:extensionElements>" + b"<v>" * levels + b"</v>" * levels
            + b"</bpmn:extensionElements></bpmn:definitions>")


def _many(elements: int) -> bytes:
    return (f'<bpmn:definitions xmlns:bpmn="{BPMN_NS}" id="d" targetNamespace="x">'
            f'<bpmn:process id="p">{"<bpmn:task/>" * elements}</bpmn:process></bpmn:definitions>').encode()


# name, bytes, error class, problem type, HTTP status, rule id in the CLI, line reported
HOSTILE = [
    ("xxe external entity",
     b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
     + VALID_BODY.replace(b"Purpose of Simple.", b"&xxe;"),
     HostileDocument, "hostile-document", 422, "hostile-xml", 2),
    ("parameter entity",
     b'<?xml version="1.0"?>\n<!DOCTYPE d [\n<!ENTITY % remote SYSTEM "http://example.invalid/x.dtd">\n%remote;\n]>\n'
     + VALID_BODY,
     HostileDocument, "hostile-document", 422, "hostile-xml", 2),
    ("billion laughs",
     b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
     + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1 if i > 1 else "") + ";") * 10}">'.encode()
                for i in range(1, 10))
     + b"]>\n" + VALID_BODY.replace(b"Purpose of Simple.", b"&lol9;"),
     HostileDocument, "hostile-document", 422, "hostile-xml", 2),
    ("external DTD",
     b'<?xml version="1.0"?>\n<!-- exported -->\n<!DOCTYPE bpmn:definitions SYSTEM "http://example.invalid/bpmn.dtd">\n'
     + VALID_BODY,
     HostileDocument, "hostile-document", 422, "hostile-xml", 3),
    ("too deep", _deep(60), DocumentTooLarge, "document-too-large", 413, "too-large", 1),
    ("too many elements", _many(2500), DocumentTooLarge, "document-too-large", 413, "too-large", 1),
    ("too large", linear_process().replace(b"Purpose of Simple.", b"x" * (70 * 1024)),
     DocumentTooLarge, "document-too-large", 413, "too-large", None),
    ("not XML", b"%PDF-1.7\nthis is not xml", InvalidDocument, "invalid-document", 422, "not-well-formed", 1),
    ("truncated XML", TRUNCATED, InvalidDocument, "invalid-document", 422, "not-well-formed",
     TRUNCATED.count(b"\n") + 1),
    ("not BPMN", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
     InvalidDocument, "invalid-document", 422, "not-bpmn", 2),
    ("BPMN element but not definitions",
     f'<bpmn:process xmlns:bpmn="{BPMN_NS}" id="p"/>'.encode(),
     InvalidDocument, "invalid-document", 422, "not-bpmn", 1),
    ("empty", b"", InvalidDocument, "invalid-document", 422, "not-well-formed", 1),
]
HOSTILE_IDS = [case[0] for case in HOSTILE]


@pytest.mark.parametrize(("case", "source", "error", "slug", "status", "rule", "line"), HOSTILE, ids=HOSTILE_IDS)
def test_python_api_refuses_with_the_right_error(case, source, error, slug, status, rule, line):
    with pytest.raises(error) as raised:
        BpmnDocument.load(source, "bad.bpmn", **LIMITS)
    assert type(raised.value) is error, "the most precise error type, not a parent class"
    assert raised.value.type == slug and raised.value.status == status
    assert "bad.bpmn" in raised.value.detail
    if line is not None:
        assert raised.value.line == line


def test_limits_are_the_deciding_factor():
    """The same deep/large files load when the limits allow them (so the refusal is the limit's)."""
    assert BpmnDocument.load(_deep(40), "ok.bpmn", **LIMITS).root is not None
    assert BpmnDocument.load(_many(1500), "ok.bpmn", **LIMITS).root is not None


@pytest.fixture
def limited_services(settings, database, clock):
    """Services whose limits are small enough to test without megabytes of XML."""
    from bpmn_server.services import Services

    small = dataclasses.replace(settings, max_upload_bytes=LIMITS["max_bytes"], max_xml_depth=LIMITS["max_depth"],
                                max_xml_elements=LIMITS["max_elements"])
    return Services(small, database=database, clock=clock)


@pytest.fixture
def limited_client(limited_services):
    from bpmn_server import create_app

    return create_app(services=limited_services, testing=True).test_client()


@pytest.fixture
def limited_auth(limited_services) -> dict[str, str]:
    return {"Authorization": f"Bearer {limited_services.identity.bootstrap_admin().token}"}


def _stored(services) -> tuple[int, int]:
    with services.database.read() as session:
        return (session.scalar(select(func.count()).select_from(Deployment)),
                session.scalar(select(func.count()).select_from(ProcessDefinition)))


@pytest.mark.parametrize(("case", "source", "error", "slug", "status", "rule", "line"), HOSTILE, ids=HOSTILE_IDS)
def test_rest_deploy_refuses_with_problem_json_and_stores_nothing(
    limited_client, limited_auth, limited_services, case, source, error, slug, status, rule, line
):
    limited_client.post("/api/v1/deployments", headers=limited_auth, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(linear_process("kept")), "kept.bpmn")})
    before = _stored(limited_services)
    response = limited_client.post("/api/v1/deployments", headers=limited_auth, content_type="multipart/form-data",
                                   data={"file": (io.BytesIO(source), "bad.bpmn")})
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    assert response.json["type"] == f"/problems/{slug}"
    assert "bad.bpmn" in response.json["detail"]
    if line is not None:
        assert response.json["line"] == line
    if status == 413:
        assert response.json["limit"] == LIMIT_NAMES[case]
    assert _stored(limited_services) == before == (1, 1)
    listed = limited_client.get("/api/v1/process-definitions", headers=limited_auth).json
    assert [d["key"] for d in listed["items"]] == ["kept"]


LIMIT_NAMES = {"too deep": "depth", "too many elements": "elements", "too large": "bytes"}


@pytest.mark.parametrize(("case", "source", "error", "slug", "status", "rule", "line"), HOSTILE, ids=HOSTILE_IDS)
def test_rest_validation_refuses_the_same_files(limited_client, limited_auth, case, source, error, slug, status,
                                                 rule, line):
    response = limited_client.post("/api/v1/validations", data=source,
                                   headers={**limited_auth, "Content-Type": "application/xml"})
    assert (response.status_code, response.mimetype) == (status, PROBLEM)
    assert response.json["type"] == f"/problems/{slug}"


def test_a_body_far_over_the_limit_is_refused_before_parsing(limited_client, limited_auth, limited_services):
    response = limited_client.post("/api/v1/deployments", data=b"<x>" + b" " * (512 * 1024) + b"</x>",
                                   headers={**limited_auth, "Content-Type": "application/xml"})
    assert response.status_code == 413 and response.mimetype == PROBLEM
    assert response.json["type"] == "/problems/request-too-large"
    assert _stored(limited_services) == (0, 0)


# the CLI applies the default limits; the over-limit files are covered by the next test
UNDER_DEFAULT_LIMITS = [case for case in HOSTILE if not case[0].startswith("too")]


@pytest.mark.parametrize(("case", "source", "error", "slug", "status", "rule", "line"), UNDER_DEFAULT_LIMITS,
                         ids=[case[0] for case in UNDER_DEFAULT_LIMITS])
def test_cli_validate_reports_the_refusal_and_exits_1(tmp_path, case, source, error, slug, status, rule, line):
    path = tmp_path / "bad.bpmn"
    path.write_bytes(source)
    result = CliRunner().invoke(validate_command, [str(path)])
    assert result.exit_code == 1, result.output
    first = result.output.splitlines()[0]
    location = f"{path}:{line}" if line else f"{path}"
    assert first.startswith(location), first
    assert f"error {rule} " in first
    assert "1 errors" in result.output.splitlines()[-1]


def test_cli_reports_files_over_the_default_limits(tmp_path):
    (tmp_path / "huge.bpmn").write_bytes(
        linear_process().replace(b"Purpose of Simple.", b"x" * (10 * 1024 * 1024 + 1)))
    (tmp_path / "deep.bpmn").write_bytes(_deep(300))
    result = CliRunner().invoke(validate_command, [str(tmp_path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith(f"{tmp_path / 'huge.bpmn'}: error too-large") and "limit is 10485760 bytes" in line
               for line in lines), result.output
    assert any(line.startswith(f"{tmp_path / 'deep.bpmn'}:1:") and "error too-large" in line
               and "deeper than 256 levels" in line for line in lines), result.output


# -- robustness: random damage never escapes as anything but a documented error ----------------------


def _miwg_sources() -> list[bytes]:
    return [(CONFORMANCE_DIR / "miwg-reference" / name).read_bytes() for name in MIWG_NAMES]


def _delete_elements(source: bytes, seed: int, count: int) -> bytes:
    root = etree.fromstring(source)
    rng = random.Random(seed)
    for _ in range(count):
        candidates = [e for e in root.iter() if e.getparent() is not None]
        if not candidates:
            break
        victim = rng.choice(candidates)
        victim.getparent().remove(victim)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@st.composite
def damaged_models(draw) -> bytes:
    sources = _miwg_sources()
    source = draw(st.sampled_from(sources))
    kind = draw(st.sampled_from(["flip", "truncate", "delete", "flip+delete"]))
    if kind in ("delete", "flip+delete"):
        source = _delete_elements(source, draw(st.integers(0, 2**32)), draw(st.integers(1, 12)))
    if kind in ("flip", "flip+delete"):
        data = bytearray(source)
        for _ in range(draw(st.integers(1, 16))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        source = bytes(data)
    if kind == "truncate":
        source = source[: draw(st.integers(0, len(source)))]
    return source


@pytest.mark.skipif(not MIWG_NAMES, reason="MIWG reference models not found")
@hypothesis_settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_models())
def test_damaged_models_raise_only_documented_errors(source: bytes):
    try:
        document = BpmnDocument.load(source, "damaged.bpmn")
    except BpmnServerError as err:
        assert isinstance(err, InvalidDocument)
        assert err.detail
        return
    assert document.export() == source
    findings = validate(document)
    assert not [f for f in findings if f.rule == "rule-failed"], [f.message for f in findings]
    assert all(f.severity in ("error", "warning", "info") and f.message for f in findings)
