"""Plain-language wording of BPMN details: durations, timer texts, conditions and event triggers."""

from __future__ import annotations

import re

from lxml import etree

from ..parser.namespaces import local_name, q

_DURATION = re.compile(
    r"^P(?:(?P<years>\d+(?:[.,]\d+)?)Y)?(?:(?P<months>\d+(?:[.,]\d+)?)M)?(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<days>\d+(?:[.,]\d+)?)D)?(?:T(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE,
)
_UNITS = (
    ("years", "year"), ("months", "month"), ("weeks", "week"), ("days", "day"),
    ("hours", "hour"), ("minutes", "minute"), ("seconds", "second"),
)
UNSPECIFIED = "a set time"  # a timer whose model gives no time (some tools export it empty)
_EXPRESSION = re.compile(r"^\s*[$#]\{(.*)\}\s*$", re.DOTALL)


def human_duration(text: str) -> str | None:
    """``P1D`` → ``1 day``, ``PT1H30M`` → ``1 hour 30 minutes``; None when not an ISO-8601 duration."""
    match = _DURATION.match(text.strip())
    if not match or text.strip().upper() in ("P", "PT"):
        return None
    parts = []
    for group, unit in _UNITS:
        value = match.group(group)
        if value is None:
            continue
        number = value.replace(",", ".")
        number = number.rstrip("0").rstrip(".") if "." in number else str(int(number))
        parts.append(f"{number} {unit}" + ("" if number == "1" else "s"))
    return " ".join(parts) or None


def strip_expression(text: str) -> str:
    """``${amount > 500}`` → ``amount > 500``; other text unchanged (trimmed)."""
    match = _EXPRESSION.match(text)
    return match.group(1).strip() if match else text.strip()


def readable_condition(text: str, limit: int = 160) -> str:
    """A condition as a person reads it: JUEL wrapping removed, ``&&``/``||``/``!`` as and/or/not."""
    expression = strip_expression(text)
    expression = re.sub(r"\s*&&\s*", " and ", expression)
    expression = re.sub(r"\s*\|\|\s*", " or ", expression)
    expression = re.sub(r"!(?!=)\s*", "not ", expression)
    expression = re.sub(r"\s+", " ", expression).strip()
    if len(expression) > limit:
        expression = expression[: limit - 1].rstrip() + "…"
    return expression


def timer_text(definition: etree._Element) -> tuple[str, str, int | None]:
    """(kind, readable value, repetitions) of a ``timerEventDefinition``.

    kind is ``duration``, ``date``, ``cycle`` or ``unknown``; repetitions is None for "no limit".
    """
    for kind in ("timeDuration", "timeDate", "timeCycle"):
        child = definition.find(q(kind))
        if child is None:
            continue
        raw = "".join(child.itertext()).strip()
        short = kind[4:].lower()
        if not raw:
            return short, UNSPECIFIED, None
        if _EXPRESSION.match(raw):
            return short, f"{strip_expression(raw)} (set when the process runs)", None
        if kind == "timeDuration":
            return short, human_duration(raw) or raw, None
        if kind == "timeDate":
            return short, raw.replace("T", " ", 1) if re.match(r"^\d{4}-\d\d-\d\dT", raw) else raw, None
        return ("cycle", *_cycle_text(raw))
    return "unknown", UNSPECIFIED, None


def _cycle_text(raw: str) -> tuple[str, int | None]:
    """``R3/P1D`` → (``1 day``, 3); ``R/PT1H`` → (``1 hour``, None); cron text kept as it is."""
    parts = raw.split("/")
    if parts[0].upper().startswith("R"):
        count = parts[0][1:]
        repetitions = int(count) if count.isdigit() else None
        duration = next((human_duration(p) for p in parts[1:] if human_duration(p)), None)
        return duration or raw, repetitions
    return (human_duration(raw) or f"the schedule “{raw}”"), None


def times(count: int) -> str:
    """``1`` → ``once``, ``2`` → ``twice``, ``3`` → ``3 times``."""
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


EVENT_KINDS = (
    "message", "timer", "error", "escalation", "signal", "conditional", "link", "terminate",
    "compensate", "cancel",
)


def event_definitions(event: etree._Element) -> list[etree._Element]:
    """The event's own definitions (``*EventDefinition`` children), in document order."""
    return [child for child in event if local_name(child.tag).endswith("EventDefinition")]


def event_kind(event: etree._Element) -> str:
    """``message``, ``timer``, … for an event with one definition; ``multiple`` or ``none`` otherwise."""
    definitions = event_definitions(event)
    refs = event.findall(q("eventDefinitionRef"))
    if len(definitions) + len(refs) > 1:
        return "multiple"
    if not definitions:
        return "none"
    return local_name(definitions[0].tag)[: -len("EventDefinition")]


def trigger_text(definition: etree._Element, names: dict[str, str]) -> str:
    """What a definition waits for or sends, in words: ``message “Invoice”``, ``5 days``…"""
    kind = local_name(definition.tag)[: -len("EventDefinition")]

    def ref_name(attribute: str, fallback: str) -> str:
        ref = definition.get(attribute)
        name = names.get(ref or "", "") if ref else ""
        return f"{fallback} “{name}”" if name else fallback

    if kind == "message":
        return ref_name("messageRef", "a message")
    if kind == "signal":
        return ref_name("signalRef", "a signal")
    if kind == "error":
        return ref_name("errorRef", "an error")
    if kind == "escalation":
        return ref_name("escalationRef", "an escalation")
    if kind == "timer":
        what, value, repetitions = timer_text(definition)
        if value == UNSPECIFIED:
            return "a timer"
        if what == "cycle":
            return f"every {value}" + (f" ({times(repetitions)})" if repetitions else "")
        if what == "date":
            return f"the date {value}"
        return value
    if kind == "conditional":
        condition = definition.find(q("condition"))
        text = "".join(condition.itertext()).strip() if condition is not None else ""
        return f"“{readable_condition(text)}” becomes true" if text else "a condition becomes true"
    if kind == "link":
        name = definition.get("name")
        return f"link “{name}”" if name else "a link"
    if kind == "compensate":
        return "compensation"
    if kind == "cancel":
        return "cancellation"
    if kind == "terminate":
        return "termination"
    return kind
