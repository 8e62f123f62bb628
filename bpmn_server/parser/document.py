"""The lossless BPMN document: an lxml tree kept exactly as imported, plus an index by id.

This is what is stored, exported and published. Loading refuses only what is not usable at all:
files over the size limit, XML that is not well-formed, hostile constructs (DOCTYPE/entities,
external references), excessive nesting, or a root that is not ``bpmn:definitions``.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass
from functools import cached_property

from lxml import etree

from ..errors import DocumentTooLarge, HostileDocument, InvalidDocument
from .namespaces import BPMN, CAMUNDA, local_name, namespace_of, q

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_DEPTH = 256
DEFAULT_MAX_ELEMENTS = 200_000
LIBXML_MAX_DEPTH = 256  # libxml2's own nesting limit while XML_PARSE_HUGE is off

FLOW_NODE_TAGS = frozenset(
    {
        "task", "userTask", "manualTask", "serviceTask", "scriptTask", "businessRuleTask", "sendTask",
        "receiveTask", "callActivity", "subProcess", "transaction", "adHocSubProcess",
        "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
        "exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway",
    }
)


@dataclass(frozen=True)
class ProcessInfo:
    """What the repository needs to know about one ``bpmn:process`` of a document."""

    id: str
    name: str | None
    is_executable: bool
    documentation: str | None
    line: int | None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=False,
    )


class BpmnDocument:
    """A parsed BPMN file that can always give back the exact bytes it came from."""

    def __init__(self, source: bytes, tree: etree._ElementTree, name: str = "model.bpmn") -> None:
        self.source = source
        self.tree = tree
        self.root = tree.getroot()
        self.name = name
        self.modified = False

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        source: bytes | str,
        name: str = "model.bpmn",
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
    ) -> BpmnDocument:
        """Parse bytes as a BPMN document, or raise a typed error with line and column."""
        if isinstance(source, str):
            source = _text_to_bytes(source, name)
        if len(source) > max_bytes:
            raise DocumentTooLarge(
                f"{name} is {len(source)} bytes; the limit is {max_bytes} bytes", limit="bytes"
            )
        if not source.strip():
            raise InvalidDocument(f"{name} is empty", line=1, column=1)
        _refuse_doctype(source, name)
        try:
            tree = etree.ElementTree(etree.fromstring(source, _parser()))
        except etree.XMLSyntaxError as err:
            line, column = err.position if err.position else (err.lineno, None)
            if "Excessive depth" in (err.msg or ""):
                # libxml2 stops at 256 levels itself (XML_PARSE_HUGE stays off on purpose)
                raise DocumentTooLarge(
                    f"{name} nests elements deeper than {min(max_depth, LIBXML_MAX_DEPTH)} levels",
                    line=line, column=column, limit="depth",
                ) from None
            raise InvalidDocument(f"{name} is not well-formed XML: {err.msg}", line=line, column=column) from None
        except ValueError as err:  # lxml refuses some inputs before libxml2 sees them
            raise InvalidDocument(f"{name} cannot be read as XML: {err}", line=1, column=1) from None
        docinfo = tree.docinfo
        if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
            raise HostileDocument(f"{name} declares a DOCTYPE; BPMN files never need one", line=1, column=1)
        root = tree.getroot()
        if root.tag != q("definitions"):
            ns = namespace_of(root.tag)
            hint = "" if ns == BPMN else f" (root namespace is '{ns or 'none'}', expected '{BPMN}')"
            raise InvalidDocument(
                f"{name} is not a BPMN 2.0 model: the root element is <{local_name(root.tag)}>"
                f", not <bpmn:definitions>{hint}",
                line=root.sourceline,
                column=1,
                reason="not-bpmn",
            )
        _check_size(root, name, max_depth, max_elements)
        return cls(source, tree, name)

    # -- export ------------------------------------------------------------------------------
    def export(self) -> bytes:
        """The document's bytes: the original ones unless it was edited through ``mark_modified``."""
        if not self.modified:
            return self.source
        encoding = self.tree.docinfo.encoding or "UTF-8"
        return etree.tostring(self.tree, xml_declaration=True, encoding=encoding)

    def mark_modified(self) -> None:
        """Call after changing the tree so that ``export`` serializes it instead of the original."""
        self.modified = True
        self.__dict__.pop("elements_by_id", None)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source).hexdigest()

    # -- lookup ------------------------------------------------------------------------------
    @cached_property
    def elements_by_id(self) -> dict[str, etree._Element]:
        """Every element with an ``id`` attribute (first occurrence wins; see ``duplicate_ids``)."""
        index: dict[str, etree._Element] = {}
        for element in self.root.iter(etree.Element):
            element_id = element.get("id")
            if element_id is not None and element_id not in index:
                index[element_id] = element
        return index

    def element(self, element_id: str) -> etree._Element | None:
        return self.elements_by_id.get(element_id)

    def duplicate_ids(self) -> dict[str, list[etree._Element]]:
        """Ids used by more than one element, with every element using them."""
        seen: dict[str, list[etree._Element]] = {}
        for element in self.root.iter(etree.Element):
            element_id = element.get("id")
            if element_id is not None:
                seen.setdefault(element_id, []).append(element)
        return {key: value for key, value in seen.items() if len(value) > 1}

    def bpmn_elements(self, local: str) -> list[etree._Element]:
        """All BPMN-namespace elements with this local name, anywhere in the document."""
        return list(self.root.iter(q(local)))

    @property
    def process_elements(self) -> list[etree._Element]:
        return self.root.findall(q("process"))

    def processes(self) -> list[ProcessInfo]:
        """The top-level processes, in document order."""
        return [
            ProcessInfo(
                id=p.get("id") or "",
                name=p.get("name"),
                is_executable=xsd_true(p.get("isExecutable")),
                documentation=documentation_text(p),
                line=p.sourceline,
            )
            for p in self.process_elements
        ]

    @property
    def exporter(self) -> str | None:
        """The tool that wrote the file: ``exporter``/``exporterVersion``, or a guess from namespaces."""
        exporter = self.root.get("exporter")
        if exporter:
            version = self.root.get("exporterVersion")
            return f"{exporter} {version}" if version else exporter
        namespaces = set(self.root.nsmap.values())
        for marker, tool in (
            (CAMUNDA, "Camunda Modeler"),
            ("http://www.signavio.com", "Signavio"),
            ("http://www.trisotech.com/2014/triso/bpmn", "Trisotech"),
            ("http://www.trisotech.com/to", "Trisotech"),
            ("http://www.boc-group.com", "ADONIS"),
            ("http://spiffworkflow.org/bpmn/schema/1.0/core", "SpiffArena"),
        ):
            if any(ns and ns.startswith(marker) for ns in namespaces):
                return tool
        return None

    def line_of(self, element_id: str) -> int | None:
        element = self.element(element_id)
        return element.sourceline if element is not None else None


def xsd_true(value: str | None) -> bool:
    """An ``xsd:boolean`` attribute read as the schema does: ``true`` and ``1`` are true."""
    return (value or "").strip().lower() in ("true", "1")


def documentation_text(element: etree._Element) -> str | None:
    """The concatenated text of an element's direct ``bpmn:documentation`` children, if any."""
    parts = ["".join(doc.itertext()).strip() for doc in element.findall(q("documentation"))]
    text = "\n\n".join(part for part in parts if part)
    return text or None


def _refuse_doctype(source: bytes, name: str) -> None:
    """Refuse a DOCTYPE (internal or external DTD, entities) before the parser sees it.

    Only the prolog is searched — a DOCTYPE cannot appear anywhere else — so documentation that
    quotes ``<!DOCTYPE html>`` inside CDATA is not mistaken for one. The parser is configured not to
    resolve entities or load DTDs anyway; this check makes the refusal explicit (XXE, billion laughs).
    """
    text = _prolog_text(source)
    match = _PROLOG_DOCTYPE.match(text)
    if match is None:
        return
    start = match.start("doctype")
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    raise HostileDocument(
        f"{name} declares a DOCTYPE at line {line}; DTDs, entities and external references are refused "
        "(XXE / entity-expansion protection)",
        line=line,
        column=column,
    )


# XML declaration, then whitespace, comments and processing instructions, then a DOCTYPE.
# Atomic groups: each comment/PI ends at its first terminator, so a miss costs one pass, not one per "-->".
_PROLOG_DOCTYPE = re.compile(
    r"\A\ufeff?(?>(?:<\?xml\b.*?\?>)?)(?>(?:\s+|<!--.*?-->|<\?.*?\?>)*)(?P<doctype><!DOCTYPE\b)",
    re.DOTALL | re.IGNORECASE,
)
_PROLOG_BYTES = 1024 * 1024


def _prolog_text(source: bytes) -> str:
    """The start of the file as text, decoded well enough to find markup (UTF-16/32 included)."""
    head = source[:_PROLOG_BYTES]
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if head.startswith(bom):
            return head[len(bom):].decode(codec, errors="replace")
    if head[:2] == b"<\x00":
        return head.decode("utf-16-le", errors="replace")
    if head[:2] == b"\x00<":
        return head.decode("utf-16-be", errors="replace")
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    return head.decode("latin-1")  # every ASCII-compatible encoding keeps markup characters as they are


_DECLARED_ENCODING = re.compile(r"""\A<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")


def _text_to_bytes(text: str, name: str) -> bytes:
    """Text as the bytes its XML declaration promises (UTF-8 without one), so the parser reads it right."""
    text = text.removeprefix("\ufeff")
    declared = _DECLARED_ENCODING.match(text)
    encoding = declared.group(1) if declared else "utf-8"
    try:
        return text.encode(encoding, errors="xmlcharrefreplace")
    except LookupError:
        raise InvalidDocument(f"{name} declares the unknown encoding '{encoding}'", line=1, column=1) from None


def _check_size(root: etree._Element, name: str, max_depth: int, max_elements: int) -> None:
    """Refuse more than ``max_elements`` elements or nesting deeper than ``max_depth`` (counted in C)."""
    count = int(root.xpath("count(//*)"))
    if count > max_elements:
        last = root.xpath(f"(//*)[{max_elements + 1}]")
        raise DocumentTooLarge(
            f"{name} has {count} XML elements; the limit is {max_elements}",
            line=last[0].sourceline if last else None,
            limit="elements",
        )
    if max_depth >= LIBXML_MAX_DEPTH:
        return  # libxml2 refused deeper documents while parsing
    too_deep = root.xpath(f"({'/*' * (max_depth + 1)})[1]")
    if too_deep:
        raise DocumentTooLarge(
            f"{name} nests elements deeper than {max_depth} levels", line=too_deep[0].sourceline, limit="depth"
        )
