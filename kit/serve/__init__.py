"""``serve``: the webhook intake of every configured source and the flusher, as one service.

:class:`Service` is the runner (the CLI's ``etrusted-kit serve`` is a thin shell around it, and
an application can run it without the CLI); :class:`ServeSettings` says where it listens and
how long requests may take to finish when it stops. Reference: ``docs/serve.md``.
"""

from __future__ import annotations

from kit.serve.listener import Address
from kit.serve.service import Listening, Route, Service
from kit.serve.settings import ServeSettings

__all__ = ["Address", "Listening", "Route", "ServeSettings", "Service"]
