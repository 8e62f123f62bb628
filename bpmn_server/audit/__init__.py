"""The append-only, hash-chained audit log: recording (chain), checking (verify) and exports."""

from .chain import record, record_many
from .verify import VerifyResult

__all__ = ["VerifyResult", "record", "record_many"]
