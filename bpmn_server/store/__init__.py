"""Storage: SQLAlchemy models and the one place that opens and commits transactions."""

from .database import RETRY_AFTER_SECONDS, Database, is_database_lost
from .models import Base

__all__ = ["RETRY_AFTER_SECONDS", "Base", "Database", "is_database_lost"]
