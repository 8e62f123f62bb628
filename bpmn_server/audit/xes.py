"""IEEE 1849-2016 XES export of the audit log: one trace per process instance, streamed.

The log declares the concept, lifecycle, org and time extensions, trace and event globals and
activity classifiers, and validates against the IEEE XSD (which has no target namespace, so none is
declared here). Events that belong to no instance (deployments, user administration) are not part of
any case and are left out; the OCEL and CSV exports carry them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlalchemy import select

from ..store import Database
from .events import COMPLETE, EVENT_TYPES
from .query import EXPORT_COLUMNS, AuditFilter, chunked, stream_rows, table, timestamp_text

EXTENSIONS = (
    ("Concept", "concept", "http://www.xes-standard.org/concept.xesext"),
    ("Lifecycle", "lifecycle", "http://www.xes-standard.org/lifecycle.xesext"),
    ("Organizational", "org", "http://www.xes-standard.org/org.xesext"),
    ("Time", "time", "http://www.xes-standard.org/time.xesext"),
)

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NEEDS_WORK = re.compile('[&<>"\x00-\x1f\ud800-\udfff\ufffe\uffff]')
_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)


def xml_attr(text: str) -> str:
    """Text safe inside a double-quoted XML attribute (characters XML forbids become U+FFFD)."""
    if _NEEDS_WORK.search(text) is None:  # the common case: nothing to escape
        return text
    return _INVALID_XML.sub("\ufffd", text).translate(_ESCAPES)


def export_xes(database: Database, filters: AuditFilter | None = None) -> Iterator[bytes]:
    """The XES document in UTF-8 chunks; memory stays flat however many events there are."""
    return chunked(_xes_pieces(database, filters or AuditFilter()))


def _header() -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<log xes.version="1849.2016">']
    lines += [f'\t<extension name="{n}" prefix="{p}" uri="{u}"/>' for n, p, u in EXTENSIONS]
    lines += [
        '\t<global scope="trace">',
        '\t\t<string key="concept:name" value="__INVALID__"/>',
        "\t</global>",
        '\t<global scope="event">',
        '\t\t<string key="concept:name" value="__INVALID__"/>',
        '\t\t<string key="lifecycle:transition" value="complete"/>',
        '\t\t<string key="org:resource" value="__INVALID__"/>',
        '\t\t<date key="time:timestamp" value="1970-01-01T00:00:00.000+00:00"/>',
        "\t</global>",
        '\t<classifier name="Activity" keys="concept:name"/>',
        '\t<classifier name="Activity_and_transition" keys="concept:name lifecycle:transition"/>',
        '\t<classifier name="Resource" keys="org:resource"/>',
        '\t<string key="concept:name" value="bpmn_server audit log"/>',
        '\t<string key="lifecycle:model" value="standard"/>',
    ]
    return "\n".join(lines) + "\n"


def _xes_pieces(database: Database, filters: AuditFilter) -> Iterator[str]:
    yield _header()
    statement = (
        select(*EXPORT_COLUMNS)
        .where(table.c.instance_id.is_not(None), *filters.conditions())
        .order_by(table.c.instance_id, table.c.sequence)
    )
    with database.snapshot() as session:
        current = None
        for row in stream_rows(session, statement):
            instance_id = row[4]  # EXPORT_FIELDS order
            if instance_id != current:
                if current is not None:
                    yield "\t</trace>\n"
                current = instance_id
                yield _trace_open(instance_id, row[5], row[6])
            yield _event(row)
        if current is not None:
            yield "\t</trace>\n"
    yield "</log>\n"


def _trace_open(instance_id: str, definition_key: str | None, definition_version: int | None) -> str:
    text = f'\t<trace>\n\t\t<string key="concept:name" value="{xml_attr(instance_id)}"/>\n'
    if definition_key is not None:
        text += f'\t\t<string key="bpmn:processKey" value="{xml_attr(definition_key)}"/>\n'
    if definition_version is not None:
        text += f'\t\t<int key="bpmn:processVersion" value="{int(definition_version)}"/>\n'
    return text


def activity_name(event_type: str, element_name: str | None, element_id: str | None) -> str:
    """concept:name of an event: the element for element lifecycle events, else the event type."""
    kind = EVENT_TYPES.get(event_type)
    if kind is not None and kind.activity:
        return element_name or element_id or event_type
    return event_type


def _event(row) -> str:
    """One XES event, from a row unpacked into locals: this runs once per exported event."""
    (sequence, event_id, timestamp, event_type, _, _, _, element_id, element_name, element_type,
     transition, actor, group, data, _, _) = row
    if transition is None:
        kind = EVENT_TYPES.get(event_type)
        transition = kind.transition if kind else COMPLETE
    optional = ""
    if group is not None:
        optional += f'\t\t\t<string key="org:group" value="{xml_attr(group)}"/>\n'
    if element_id is not None:
        optional += f'\t\t\t<string key="bpmn:elementId" value="{xml_attr(element_id)}"/>\n'
    if element_type is not None:
        optional += f'\t\t\t<string key="bpmn:elementType" value="{xml_attr(element_type)}"/>\n'
    if data and data != "{}":
        optional += f'\t\t\t<string key="audit:data" value="{xml_attr(data)}"/>\n'
    return (
        "\t\t<event>\n"
        f'\t\t\t<string key="concept:name" value="{xml_attr(activity_name(event_type, element_name, element_id))}"/>\n'
        f'\t\t\t<string key="lifecycle:transition" value="{xml_attr(transition)}"/>\n'
        f'\t\t\t<string key="org:resource" value="{xml_attr(actor)}"/>\n'
        f'\t\t\t<date key="time:timestamp" value="{timestamp_text(timestamp)}"/>\n'
        f'\t\t\t<string key="audit:eventType" value="{xml_attr(event_type)}"/>\n'
        f'\t\t\t<int key="audit:sequence" value="{int(sequence)}"/>\n'
        f'\t\t\t<id key="audit:eventId" value="{xml_attr(event_id)}"/>\n'
        f"{optional}\t\t</event>\n"
    )
