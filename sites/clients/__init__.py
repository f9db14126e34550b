"""Clients of external systems, one small module each (base URL and timeout from settings, typed errors).

Nothing outside this package speaks HTTP to a market or weather source.
"""

from .errors import SourceDataError, SourceError, SourceRequestRejected, SourceUnavailable

__all__ = ["SourceDataError", "SourceError", "SourceRequestRejected", "SourceUnavailable"]
