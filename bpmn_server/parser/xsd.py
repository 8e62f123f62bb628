"""XSD validation against the OMG BPMN 2.0 schema set shipped inside the SpiffWorkflow wheel.

The schema is compiled once per process and never reads anything outside the wheel's schema
folder: imports/includes are resolved only to files in that folder, the network is off, and an
instance document's ``xsi:schemaLocation`` is ignored (a compiled schema never assembles more).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import SpiffWorkflow
from lxml import etree

from .document import BpmnDocument
from .findings import Finding
from .namespaces import BPMN, BPMNDI, DC, DI, XSI

SCHEMA_DIR = Path(SpiffWorkflow.__file__).resolve().parent / "bpmn" / "parser" / "schema"
MAIN_SCHEMA = "BPMN20.xsd"

# Readable prefixes for the standard namespaces, whatever prefix the file itself uses.
STANDARD_PREFIXES = {BPMN: "bpmn", BPMNDI: "bpmndi", DC: "dc", DI: "di", XSI: "xsi"}

_CLARK = re.compile(r"\{([^{}]*)\}([\w.\-]+)")
_lock = threading.Lock()
_schema: etree.XMLSchema | None = None


class SchemaUnavailable(RuntimeError):
    """The BPMN XSD files are missing from the installed SpiffWorkflow (a broken installation)."""


class _SchemaFolderResolver(etree.Resolver):
    """Resolves schema imports to files of the schema folder only; anything else resolves to nothing."""

    def resolve(self, system_url, public_id, context):
        name = Path(str(system_url).replace("file://", "")).name
        candidate = (SCHEMA_DIR / name).resolve()
        if candidate.parent == SCHEMA_DIR and candidate.is_file():
            return self.resolve_filename(str(candidate), context)
        return self.resolve_string("", context)


def bpmn_schema() -> etree.XMLSchema:
    """The compiled BPMN 2.0 schema (compiled on first use, then shared)."""
    global _schema
    if _schema is None:
        with _lock:
            if _schema is None:
                _schema = _compile()
    return _schema


def _compile() -> etree.XMLSchema:
    main = SCHEMA_DIR / MAIN_SCHEMA
    if not main.is_file():
        raise SchemaUnavailable(f"BPMN 2.0 XSD not found at {main}; reinstall SpiffWorkflow")
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(_SchemaFolderResolver())
    return etree.XMLSchema(etree.parse(str(main), parser))


def validate_xsd(document: BpmnDocument) -> list[Finding]:
    """Every XSD error of the document, with line, element id and a message a modeler can read."""
    schema = bpmn_schema()
    # The compiled schema is shared; its error log is not, so one validation runs at a time.
    with _lock:
        schema.validate(document.tree)
        entries = list(schema.error_log)
    prefixes = _prefixes(document.root)
    findings = []
    for entry in entries:
        element = _element_of(document, entry)
        findings.append(
            Finding(
                rule="xsd",
                severity="error",
                message=readable(entry.message, prefixes),
                element_id=_nearest_id(element),
                line=entry.line or (element.sourceline if element is not None else None),
                process_id=_process_id(element),
                hint=_hint(entry),
                file=document.name,
            )
        )
    return findings


def readable(message: str, prefixes: dict[str, str] | None = None) -> str:
    """``{http://www.omg.org/spec/BPMN/20100524/MODEL}task`` -> ``bpmn:task`` (and likewise for others)."""
    known = {**(prefixes or {}), **STANDARD_PREFIXES}

    def short(match: re.Match[str]) -> str:
        namespace, local = match.group(1), match.group(2)
        if not namespace:
            return local
        prefix = known.get(namespace)
        return f"{prefix}:{local}" if prefix else match.group(0)

    return _CLARK.sub(short, message.strip())


def _prefixes(root: etree._Element) -> dict[str, str]:
    """Namespace -> prefix as the document declares them on its root (the usual place)."""
    return {ns: prefix for prefix, ns in root.nsmap.items() if prefix}


def _element_of(document: BpmnDocument, entry: etree._LogEntry) -> etree._Element | None:
    """The element an XSD error is about, from libxml2's node path, falling back to its line."""
    path = entry.path
    if path:
        try:
            namespaces = {p: ns for p, ns in document.root.nsmap.items() if p}
            found = document.tree.xpath(path, namespaces=namespaces)
            if found and isinstance(found[0], etree._Element):
                return found[0]
        except (etree.XPathError, TypeError):
            pass
    if entry.line:
        for element in document.root.iter(etree.Element):
            if element.sourceline == entry.line:
                return element
    return None


def _nearest_id(element: etree._Element | None) -> str | None:
    while element is not None:
        element_id = element.get("id")
        if element_id:
            return element_id
        element = element.getparent()
    return None


def _process_id(element: etree._Element | None) -> str | None:
    while element is not None:
        if element.tag == f"{{{BPMN}}}process":
            return element.get("id")
        element = element.getparent()
    return None


def _hint(entry: etree._LogEntry) -> str | None:
    message = entry.message
    if "This element is not expected" in message:
        return (
            "BPMN fixes the order of child elements; move the element to its place, or put vendor "
            "data inside bpmn:extensionElements"
        )
    if "is not allowed" in message and "attribute" in message:
        return "only attributes of another namespace (vendor extensions) may be added to a BPMN element"
    if "is required but missing" in message:
        return "add the missing attribute"
    if "xs:ID" in message or "xs:QName" in message or "xs:IDREF" in message:
        return "ids must start with a letter or underscore and contain no spaces or colons"
    return None
