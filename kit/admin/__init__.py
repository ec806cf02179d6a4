"""The admin listener of ``serve``: liveness, readiness and metrics, on a port of its own."""

from __future__ import annotations

from kit.admin.health import Check, Readiness, readiness
from kit.admin.routes import install

__all__ = ["Check", "Readiness", "install", "readiness"]
