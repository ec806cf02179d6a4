"""etrusted-kit: exactly-once delivery of eTrusted review-invite events."""

from __future__ import annotations

__version__ = "0.1.0"
