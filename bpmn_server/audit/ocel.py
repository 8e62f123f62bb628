"""OCEL 2.0 JSON export of the audit log, streamed in passes so memory does not grow with the log.

Objects: ``process_instance``, ``task``, ``user`` (people), ``system`` (timers, the engine…),
``group``, and business objects named by variables: a variable ``orderId = "A-17"`` set in a
variables-changed event becomes the object ``order:A-17`` of type ``order``. Each event relates to
its instance (``case``), actor (``actor``), task (``task``), group (``group``) and the business
objects it sets (``sets <variable>``); a task relates to its instance (``part of``).

The document is written objects first, then events, then the type lists, because the business
object types are only known after the objects pass (JSON does not order an object's members).
Every pass is one streamed query; de-duplication happens in SQL (DISTINCT / GROUP BY), never across
the whole log in Python.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import String, Text, and_, case, cast, func, literal, literal_column, or_, select, true
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

# Event attributes: (OCEL name, OCEL type). All values are strings in OCEL 2.0 JSON.
_EVENT_ATTRIBUTES = (
    ("sequence", "integer"),
    ("lifecycle", "string"),
    ("element_id", "string"),
    ("element_name", "string"),
    ("element_type", "string"),
    ("process_key", "string"),
    ("process_version", "integer"),
    ("data", "string"),
)

_string = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept (C-accelerated)


def export_ocel(database: Database, filters: AuditFilter | None = None) -> Iterator[bytes]:
    """The OCEL 2.0 JSON document in UTF-8 chunks."""
    return chunked(_ocel_pieces(database, filters or AuditFilter()))


def _ocel_pieces(database: Database, filters: AuditFilter) -> Iterator[str]:
    business_types: set[str] = set()
    with database.snapshot() as session:
        yield '{"objects":['
        separator = ""
        for obj in _objects(session, filters, business_types):
            yield separator + _dumps(obj)
            separator = ","
        yield '],"events":['
        separator = ""
        events = (
            select(*EXPORT_COLUMNS, _task_id().label("task_id"))
            .where(*filters.conditions())
            .order_by(table.c.sequence)
        )
        for row in stream_rows(session, events):
            yield separator + _event(row)
            separator = ","
        event_types = session.execute(
            select(table.c.event_type).where(*filters.conditions()).distinct().order_by(table.c.event_type)
        ).scalars()
        attributes = [{"name": name, "type": kind} for name, kind in _EVENT_ATTRIBUTES]
        yield '],"eventTypes":' + _dumps([{"name": name, "attributes": attributes} for name in event_types])
    yield ',"objectTypes":' + _dumps(_object_types(business_types)) + "}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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


def actor_object(actor: str) -> str:
    """The object id of an actor: ``user:alice``; system actors keep their name (``system:timer``)."""
    return actor if is_system_actor(actor) else f"{USER}:{actor}"


def group_object(group: str) -> str:
    return f"{GROUP}:{group}"


def task_object(task_key: Any) -> str:
    """The object id of a task, from ``_task_key()``: the runtime's task id, else instance/element."""
    return f"{TASK}:{task_key}"


def _task_id():
    """The runtime's task id (``data.task_id``) as text, read by the database, not by Python."""
    return cast(table.c.data["task_id"].as_string(), String)


def _task_key():
    """What identifies a task: its task id, else ``<instance>/<element>`` (SQL expression)."""
    c = table.c
    fallback = c.instance_id + literal("/") + func.coalesce(c.element_id, "")
    return func.coalesce(_task_id(), fallback)


def _is_task_event():
    c = table.c
    return and_(c.instance_id.is_not(None), c.event_type.like("task-%"))


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


def business_objects(data: Any) -> list[tuple[str, str]]:
    """(object id, variable) of every business object a variables-changed event's data sets."""
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
    for instance_id, key, version, first_seen in stream_rows(session, instances):
        attributes = []
        if key is not None:
            attributes.append({"name": "process_key", "value": key, "time": timestamp_text(first_seen, "microseconds")})
        if version is not None:
            attributes.append(
                {"name": "process_version", "value": str(version), "time": timestamp_text(first_seen, "microseconds")}
            )
        yield {"id": instance_object(instance_id), "type": INSTANCE, "attributes": attributes}

    yield from _task_objects(session, filters)

    actors = select(c.actor).where(*where).distinct().order_by(c.actor)
    for (actor,) in stream_rows(session, actors):
        yield {"id": actor_object(actor), "type": SYSTEM if is_system_actor(actor) else USER}
    groups = select(c.group).where(c.group.is_not(None), *where).distinct().order_by(c.group)
    for (group,) in stream_rows(session, groups):
        yield {"id": group_object(group), "type": GROUP}

    yield from _business_objects(session, filters, business_types)


def _task_objects(session: Session, filters: AuditFilter) -> Iterator[dict]:
    """One object per task: the database groups a task's events together."""
    c = table.c
    key = _task_key()
    statement = (
        select(c.instance_id, key, func.min(c.element_id), func.min(c.element_name), func.min(c.timestamp))
        .where(_is_task_event(), *filters.conditions())
        .group_by(c.instance_id, key)
        .order_by(c.instance_id, key)
    )
    for instance_id, task_key, element_id, element_name, first_seen in stream_rows(session, statement):
        time = timestamp_text(first_seen, "microseconds")
        attributes = [{"name": "element_id", "value": element_id or "", "time": time}]
        if element_name:
            attributes.append({"name": "name", "value": element_name, "time": time})
        yield {
            "id": task_object(task_key),
            "type": TASK,
            "attributes": attributes,
            "relationships": [{"objectId": instance_object(instance_id), "qualifier": "part of"}],
        }


def _business_objects(session: Session, filters: AuditFilter, business_types: set[str]) -> Iterator[dict]:
    """One object per (type, value) named by an ``…Id`` variable.

    The query yields distinct (value, variable) pairs ordered by value; two variables of one type
    (``orderId`` and ``order_id``) can name the same object, so repeats are dropped among the rows of
    one value — a handful at most, never the whole log.
    """
    on_postgres = session.get_bind().dialect.name == "postgresql"
    current, kinds = None, set()
    for text_value, variable, raw in stream_rows(session, _business_query(session, filters)):
        value = _business_value(json.loads(raw) if on_postgres else raw)  # PostgreSQL gives JSON text
        kind = business_type(variable)
        if kind is None or value is None:
            continue
        if text_value != current:
            current, kinds = text_value, set()
        if kind in kinds:
            continue
        kinds.add(kind)
        business_types.add(kind)
        yield {"id": f"{kind}:{value}", "type": kind}


def _business_query(session: Session, filters: AuditFilter):
    """DISTINCT (value as text, variable, value) set by variables-changed events, names ending in id."""
    c = table.c
    base = [c.event_type == VARIABLES_CHANGED, *filters.conditions()]
    if session.get_bind().dialect.name == "postgresql":
        changed = c.data["set"]
        pairs = func.json_each(
            case((func.json_typeof(changed) == "object", changed), else_=None)
        ).table_valued("key", "value")
        raw = cast(pairs.c.value, Text)
        kind = func.json_typeof(pairs.c.value)
        text_value = pairs.c.value.op("#>>")(literal_column("'{}'"))  # unquoted: "17" and 17 meet
        return (
            select(text_value, pairs.c.key, raw)
            .select_from(table)
            .join(pairs, true())
            .where(
                *base,
                pairs.c.key.ilike("%id"),
                or_(kind == "string", and_(kind == "number", raw.regexp_match("^-?[0-9]+$"))),
            )
            .distinct()
            .order_by(text_value, pairs.c.key, raw)
        )
    pairs = func.json_each(c.data, "$.set").table_valued("key", "value", "type")
    text_value = cast(pairs.c.value, Text)
    return (
        select(text_value, pairs.c.key, pairs.c.value)
        .select_from(table)
        .join(pairs, true())
        .where(*base, func.json_type(c.data, "$.set") == "object", pairs.c.key.like("%id"),
               pairs.c.type.in_(["text", "integer"]))
        .distinct()
        .order_by(text_value, pairs.c.key, pairs.c.value)
    )


# --- the events pass ---
# One event is written as JSON text directly (strings escaped by the json module's C encoder), from
# a row unpacked into locals: this runs once per event and is most of an export's time.

def _event(row) -> str:
    """One OCEL 2.0 event as JSON text."""
    (sequence, event_id, timestamp, event_type, instance_id, definition_key, definition_version,
     element_id, element_name, element_type, transition, actor, group, data, _, _, task_id) = row
    values = (sequence, transition, element_id, element_name, element_type, definition_key,
              definition_version, None if data == "{}" else data)
    attributes = ",".join(
        f'{{"name":"{name}","value":{_string(str(value))}}}'
        for (name, _), value in zip(_EVENT_ATTRIBUTES, values, strict=True)
        if value is not None
    )
    relationships = []
    if instance_id is not None:
        relationships.append((instance_object(instance_id), "case"))
    relationships.append((actor_object(actor), "actor"))
    if instance_id is not None and event_type.startswith("task-"):
        key = task_id if task_id is not None else f"{instance_id}/{element_id or ''}"  # as _task_key()
        relationships.append((task_object(key), "task"))
    if group is not None:
        relationships.append((group_object(group), "group"))
    if event_type == VARIABLES_CHANGED and data:
        for object_id, variable in business_objects(json.loads(data)):
            relationships.append((object_id, f"sets {variable}"))
    related = ",".join(f'{{"objectId":{_string(o)},"qualifier":{_string(q)}}}' for o, q in relationships)
    return (
        f'{{"id":{_string(event_id)},"type":{_string(event_type)},'
        f'"time":"{timestamp_text(timestamp, "microseconds")}",'
        f'"attributes":[{attributes}],"relationships":[{related}]}}'
    )
