"""Validation findings: what is wrong with a model, where, and what to do about it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    """One problem found in a model, located by element id and line so a modeler can fix it."""

    rule: str
    severity: Severity
    message: str
    element_id: str | None = None
    line: int | None = None
    column: int | None = None
    process_id: str | None = None
    hint: str | None = None
    file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**data)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def errors_for_process(findings: list[Finding], process_id: str) -> list[Finding]:
    """Error-level findings that stop this process from starting (its own and document-wide ones)."""
    return [f for f in findings if f.severity == "error" and f.process_id in (None, process_id)]
