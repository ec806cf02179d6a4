"""etrusted-kit: exactly-once delivery of eTrusted review-invite events.

The names most applications need are re-exported here; everything else lives in its module
(``kit.outbox``, ``kit.flusher``, ``kit.client``, ``kit.models``, ``kit.sandbox``,
``kit.testing``).
"""

from __future__ import annotations

from kit.client import ETrustedClient
from kit.config import ClientConfig
from kit.errors import ETrustedError, KitError, StorageError, ValidationError
from kit.flusher import Flusher, FlusherConfig, InDoubtPolicy
from kit.models import Event
from kit.outbox import Outbox, storage_from_url
from kit.outbox.types import State

__version__ = "0.1.0"

__all__ = [
    "ClientConfig",
    "ETrustedClient",
    "ETrustedError",
    "Event",
    "Flusher",
    "FlusherConfig",
    "InDoubtPolicy",
    "KitError",
    "Outbox",
    "State",
    "StorageError",
    "ValidationError",
    "__version__",
    "storage_from_url",
]
