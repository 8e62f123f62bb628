"""Storage: SQLAlchemy models and the one place that opens and commits transactions."""

from .database import Database
from .models import Base

__all__ = ["Base", "Database"]
