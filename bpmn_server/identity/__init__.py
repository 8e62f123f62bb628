"""Users, groups, memberships, API tokens and the principal every command acts as."""

from .principal import SYSTEM_MESSAGE, SYSTEM_TIMER, Principal, system_principal

__all__ = ["Principal", "SYSTEM_MESSAGE", "SYSTEM_TIMER", "system_principal"]
