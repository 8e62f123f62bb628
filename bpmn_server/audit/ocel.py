"""OCEL 2.0 JSON export of the audit log, streamed in passes so memory does not grow with the log.

Objects: ``process_instance``, ``task``, ``user`` (people), ``system`` (timers, the engine…),
``group``, and business objects named by variables: a variable ``orderId = "A-17"`` set in a
variables-changed event becomes the object ``order:A-17`` of type ``order``. Each event relates to
its instance (``case``), actor (``actor``), task (``task``), group (``group``) and the business
objects it sets (``sets <variable>``).

The document is written objects first, then events, then the type lists, because the business
object types are only known after the objects pass (JSON does not order an object's members).
Every pass is one streamed query; de-duplication happens in SQL (DISTINCT / GROUP BY), or per
instance for tasks, never across the whole log in Python.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Text, and_, case, cast, func, or_, select, true
from sqlalchemy.orm import Session

from ..store import Database
from .events import VARIABLES_CHANGED, is_system_actor
from .query import EXPORT_COLUMNS, AuditFilter, chunked, stream_rows, table, timestamp_text

INSTANCE = "process_instance"
TASK = "task"
USER = "user"
SYSTEM = "system"
GROUP = "group"
_RESERVED = {INSTANCE, TASK, USER, SYSTEM, GROUP}

_BUSINESS_KEY = re.compile(r"^(?P<stem>[A-Za-z][A-Za-z0-9_]*?)(?:_id|_ID|Id|ID)$")

# event attributes (all values are strings in OCEL 2.0 JSON); name -> (column, OCEL type)
_EVENT_ATTRIBUTES = (
    ("sequence", "sequence", "integer"),
    ("lifecycle", "transition", "string"),
    ("element_id", "element_id", "string"),
    ("element_name", "element_name", "string"),
    ("element_type", "element_type", "string"),
    ("process_key", "definition_key", "string"),
    ("process_version", "definition_version", "integer"),
    ("data", "data", "string"),
)


def export_ocel(database: Database, filters: AuditFilter | None = None) -> Iterator[bytes]:
    """The OCEL 2.0 JSON document in UTF-8 chunks."""
    return chunked(_ocel_pieces(database, filters or AuditFilter()))


def _ocel_pieces(database: Database, filters: AuditFilter) -> Iterator[str]:
    business_types: set[str] = set()
    with database.read() as session:
        yield '{"objects":['
        separator = ""
        for obj in _objects(session, filters, business_types):
            yield separator + _dumps(obj)
            separator = ","
        yield '],"events":['
        separator = ""
        for row in stream_rows(session, select(*EXPORT_COLUMNS).where(*filters.conditions()).order_by(table.c.sequence)):
            yield separator + _event(row)
            separator = ","
        event_types = session.execute(
            select(table.c.event_type).where(*filters.conditions()).distinct().order_by(table.c.event_type)
        ).scalars()
        attributes = [{"name": name, "type": kind} for name, _, kind in _EVENT_ATTRIBUTES]
        yield '],"eventTypes":' + _dumps([{"name": name, "attributes": attributes} for name in event_types])
    yield ',"objectTypes":' + _dumps(_object_types(business_types)) + "}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_string = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept (C-accelerated)


def _object_types(business_types: set[str]) -> list[dict[str, Any]]:
    types = [
        {"name": INSTANCE, "attributes": [{"name": "process_key", "type": "string"},
                                          {"name": "process_version", "type": "integer"}]},
        {"name": TASK, "attributes": [{"name": "element_id", "type": "string"},
                                      {"name": "name", "type": "string"}]},
        {"name": USER, "attributes": []},
        {"name": SYSTEM, "attributes": []},
        {"name": GROUP, "attributes": []},
    ]
    types += [{"name": name, "attributes": []} for name in sorted(business_types)]
    return types


# --- object identities: one function each, used by the objects pass and the events pass alike ---

def instance_object(instance_id: str) -> str:
    return f"{INSTANCE}:{instance_id}"


def actor_object(actor: str) -> tuple[str, str]:
    """(object id, type) of an actor: ``user:alice``; system actors keep their name (``system:timer``)."""
    if is_system_actor(actor):
        return actor, SYSTEM
    return f"{USER}:{actor}", USER


def group_object(group: str) -> str:
    return f"{GROUP}:{group}"


def task_object(row) -> str | None:
    """The task an event is about: the runtime's task id from ``data``, else instance/element."""
    if not row.event_type.startswith("task-") or row.instance_id is None:
        return None
    data = _data(row)
    task_id = data.get("task_id") if isinstance(data, dict) else None
    return f"{TASK}:{task_id or row.instance_id + '/' + (row.element_id or '')}"


def _data(row) -> Any:
    """The event's data, parsed (the events pass reads it as JSON text)."""
    data = row.data
    return json.loads(data) if isinstance(data, str) else (data or {})


def business_type(variable: str) -> str | None:
    """``orderId`` / ``order_id`` -> ``order``; ``purchaseOrderId`` -> ``purchase_order``."""
    match = _BUSINESS_KEY.match(variable)
    if not match:
        return None
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", match["stem"]).lower().strip("_")
    return name + "_object" if name in _RESERVED else name


def _business_value(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def business_objects(row) -> list[tuple[str, str]]:
    """(object id, variable) of every business object a variables-changed event sets."""
    if row.event_type != VARIABLES_CHANGED:
        return []
    data = _data(row)
    changed = data.get("set") if isinstance(data, dict) else None
    if not isinstance(changed, dict):
        return []
    found = []
    for variable, value in changed.items():
        kind, text = business_type(variable), _business_value(value)
        if kind and text is not None:
            found.append((f"{kind}:{text}", variable))
    return found


# --- the objects pass ---

def _objects(session: Session, filters: AuditFilter, business_types: set[str]) -> Iterator[dict]:
    c = table.c
    where = filters.conditions()
    instances = (
        select(c.instance_id, func.min(c.definition_key), func.min(c.definition_version), func.min(c.timestamp))
        .where(c.instance_id.is_not(None), *where)
        .group_by(c.instance_id)
        .order_by(c.instance_id)
    )
    for instance_id, key, version, first_seen in session.execute(instances.execution_options(yield_per=2000)):
        attributes = []
        if key is not None:
            attributes.append({"name": "process_key", "value": key, "time": timestamp_text(first_seen, "microseconds")})
        if version is not None:
            attributes.append(
                {"name": "process_version", "value": str(version), "time": timestamp_text(first_seen, "microseconds")}
            )
        yield {"id": instance_object(instance_id), "type": INSTANCE, "attributes": attributes}

    yield from _task_objects(session, filters)

    for (actor,) in session.execute(select(c.actor).where(*where).distinct().order_by(c.actor)):
        object_id, kind = actor_object(actor)
        yield {"id": object_id, "type": kind}
    groups = select(c.group).where(c.group.is_not(None), *where).distinct().order_by(c.group)
    for (group,) in session.execute(groups):
        yield {"id": group_object(group), "type": GROUP}

    on_postgres = session.get_bind().dialect.name == "postgresql"
    for variable, value in session.execute(_business_query(session, filters)):
        kind = business_type(variable)
        text = _business_value(json.loads(value) if on_postgres else value)  # PostgreSQL gives JSON text
        if kind and text is not None:
            business_types.add(kind)
            yield {"id": f"{kind}:{text}", "type": kind}


def _task_objects(session: Session, filters: AuditFilter) -> Iterator[dict]:
    """One object per task, read instance by instance so that de-duplication stays per instance."""
    c = table.c
    statement = (
        select(c.instance_id, c.event_type, c.element_id, c.element_name, c.data, c.timestamp)
        .where(c.instance_id.is_not(None), c.event_type.like("task-%"), *filters.conditions())
        .order_by(c.instance_id, c.sequence)
    )
    current, seen = None, set()
    for row in stream_rows(session, statement):
        if row.instance_id != current:
            current, seen = row.instance_id, set()
        object_id = task_object(row)
        if object_id is None or object_id in seen:
            continue
        seen.add(object_id)
        time = timestamp_text(row.timestamp, "microseconds")
        attributes = [{"name": "element_id", "value": row.element_id or "", "time": time}]
        if row.element_name:
            attributes.append({"name": "name", "value": row.element_name, "time": time})
        yield {
            "id": object_id,
            "type": TASK,
            "attributes": attributes,
            "relationships": [{"objectId": instance_object(row.instance_id), "qualifier": "part of"}],
        }


def _business_query(session: Session, filters: AuditFilter):
    """DISTINCT (variable, value) pairs set by variables-changed events whose name ends in id."""
    c = table.c
    base = [c.event_type == VARIABLES_CHANGED, *filters.conditions()]
    if session.get_bind().dialect.name == "postgresql":
        changed = c.data["set"]
        pairs = func.json_each(
            case((func.json_typeof(changed) == "object", changed), else_=None)
        ).table_valued("key", "value")
        value_text = cast(pairs.c.value, Text)
        kind = func.json_typeof(pairs.c.value)
        return (
            select(pairs.c.key, value_text)
            .select_from(table)
            .join(pairs, true())
            .where(
                *base,
                pairs.c.key.ilike("%id"),
                or_(kind == "string", and_(kind == "number", value_text.regexp_match("^-?[0-9]+$"))),
            )
            .distinct()
            .order_by(pairs.c.key, value_text)
        )
    pairs = func.json_each(c.data, "$.set").table_valued("key", "value", "type")
    return (
        select(pairs.c.key, pairs.c.value)
        .select_from(table)
        .join(pairs, true())
        .where(*base, func.json_type(c.data, "$.set") == "object", pairs.c.key.like("%id"),
               pairs.c.type.in_(["text", "integer"]))
        .distinct()
        .order_by(pairs.c.key, pairs.c.value)
    )


# --- the events pass ---
_EVENT_ATTRIBUTE_NAMES = [name for name, _, _ in _EVENT_ATTRIBUTES]
_attribute_values = operator.attrgetter(*(column for _, column, _ in _EVENT_ATTRIBUTES))

# One event is written as JSON text directly (strings escaped by the json module's C encoder): the
# events pass is most of an export's time, and building a dict per event only to dump it doubled it.

def _event(row) -> str:
    """One OCEL 2.0 event as JSON text."""
    attributes = ",".join(
        f'{{"name":"{name}","value":{_string(str(value))}}}'  # OCEL 2.0 JSON values are strings
        for name, value in zip(_EVENT_ATTRIBUTE_NAMES, _attribute_values(row), strict=True)
        if value is not None and value != "{}"
    )
    relationships = []
    if row.instance_id is not None:
        relationships.append((instance_object(row.instance_id), "case"))
    relationships.append((actor_object(row.actor)[0], "actor"))
    task = task_object(row)
    if task is not None:
        relationships.append((task, "task"))
    if row.group is not None:
        relationships.append((group_object(row.group), "group"))
    for object_id, variable in business_objects(row):
        relationships.append((object_id, f"sets {variable}"))
    related = ",".join(f'{{"objectId":{_string(o)},"qualifier":{_string(q)}}}' for o, q in relationships)
    return (
        f'{{"id":{_string(row.event_id)},"type":{_string(row.event_type)},'
        f'"time":"{timestamp_text(row.timestamp, "microseconds")}",'
        f'"attributes":[{attributes}],"relationships":[{related}]}}'
    )
