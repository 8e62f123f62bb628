"""Who is acting: a signed-in user with their groups, or the system (timers, messages)."""

from __future__ import annotations

from dataclasses import dataclass, field

SYSTEM_TIMER = "system:timer"
SYSTEM_MESSAGE = "system:message"
SYSTEM_SCHEDULER = "system:scheduler"


@dataclass(frozen=True)
class Principal:
    """The actor of a command; ``username`` is what the audit log records."""

    username: str
    groups: frozenset[str] = field(default_factory=frozenset)
    is_admin: bool = False

    @property
    def is_system(self) -> bool:
        return self.username.startswith("system:")

    def in_any(self, groups: list[str] | set[str] | frozenset[str]) -> bool:
        return bool(self.groups.intersection(groups))


def system_principal(name: str = SYSTEM_TIMER) -> Principal:
    """The principal for work the server does by itself; it may do anything the engine needs."""
    return Principal(username=name, is_admin=True)
