"""The append-only, hash-chained audit log: recording (chain), checking (verify) and exports."""

from .chain import record
from .verify import VerifyResult

__all__ = ["VerifyResult", "record"]
