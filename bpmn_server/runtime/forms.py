"""Task forms: the fields a performer fills in, and the check of submitted data against them.

A form is the JSON kept on ``human_task.form``: ``{"key": formKey, "fields": [{id, label, type,
required, readonly, default, values, validation}]}``. Types are Camunda's (string, long, boolean,
date, enum) plus ``double``; numbers and booleans sent as text by HTML forms are accepted.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from ..errors import InvalidInput

_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0", ""}


def validate_submission(form: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
    """The values to store for a completed form, or ``InvalidInput`` listing every bad field."""
    data = dict(data or {})
    fields = form.get("fields") or []
    if not isinstance(data, dict):
        raise InvalidInput("form data must be an object of field values", errors=[])
    if not fields:
        return data  # a task without a declared form takes any variables
    errors: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    known = {f["id"] for f in fields}
    for name in data:
        if name not in known:
            errors.append({"field": name, "message": "is not a field of this form"})
    for field in fields:
        name = field["id"]
        present = name in data and data[name] is not None and data[name] != ""
        if field.get("readonly"):
            if field.get("default") is not None:
                values[name] = field["default"]
            continue
        if not present:
            if field.get("required"):
                errors.append({"field": name, "message": "is required"})
            elif field.get("default") not in (None, ""):
                try:
                    values[name] = _convert(field, field["default"])
                except ValueError:
                    values[name] = field["default"]
            continue
        try:
            values[name] = _convert(field, data[name])
        except ValueError as err:
            errors.append({"field": name, "message": str(err)})
    if errors:
        raise InvalidInput(
            f"the form has {len(errors)} invalid field{'s' if len(errors) != 1 else ''}: "
            + "; ".join(f"{e['field']} {e['message']}" for e in errors),
            errors=errors,
        )
    return values


def _convert(field: dict[str, Any], value: Any) -> Any:
    kind = (field.get("type") or "string").lower()
    rules = field.get("validation") or {}
    if kind in ("long", "integer", "int", "short"):
        result: Any = _integer(value)
        _bounds(result, rules)
    elif kind in ("double", "number", "float", "decimal"):
        result = _number(value)
        _bounds(result, rules)
    elif kind == "boolean":
        result = _boolean(value)
    elif kind == "date":
        result = _date(value)
    elif kind == "enum":
        allowed = [v["id"] for v in field.get("values") or []]
        if str(value) not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        result = str(value)
    else:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError("must be text")
        result = str(value)
        _lengths(result, rules)
    return result


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    raise ValueError("must be a whole number")


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError("must be a number")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false")


def _date(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        for candidate in (text, text[:-1] + "+00:00" if text.endswith("Z") else text):
            try:
                return datetime.fromisoformat(candidate).isoformat() if "T" in candidate else \
                    date.fromisoformat(candidate).isoformat()
            except ValueError:
                continue
        match = re.fullmatch(r"(\d{2})/(\d{2})/(\d{4})", text)  # Camunda's default dd/MM/yyyy
        if match:
            try:
                return date(int(match[3]), int(match[2]), int(match[1])).isoformat()
            except ValueError:
                pass
    raise ValueError("must be a date such as 2026-03-31")


def _bounds(value: float, rules: dict[str, str]) -> None:
    if "min" in rules and _limit(rules["min"]) is not None and value < _limit(rules["min"]):
        raise ValueError(f"must be at least {rules['min']}")
    if "max" in rules and _limit(rules["max"]) is not None and value > _limit(rules["max"]):
        raise ValueError(f"must be at most {rules['max']}")


def _lengths(value: str, rules: dict[str, str]) -> None:
    if "minlength" in rules and _limit(rules["minlength"]) is not None and len(value) < _limit(rules["minlength"]):
        raise ValueError(f"must be at least {rules['minlength']} characters long")
    if "maxlength" in rules and _limit(rules["maxlength"]) is not None and len(value) > _limit(rules["maxlength"]):
        raise ValueError(f"must be at most {rules['maxlength']} characters long")
    if rules.get("pattern"):
        try:
            if not re.fullmatch(rules["pattern"], value):
                raise ValueError(f"must match the pattern {rules['pattern']}")
        except re.error:
            pass


def _limit(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
