"""The admin listener of ``serve``, on a port of its own: liveness, readiness, metrics and
the operator page."""

from __future__ import annotations

from kit.admin.health import Check, Readiness, readiness
from kit.admin.hosts import refuse_other_hosts
from kit.admin.page import PageSources, install_page
from kit.admin.routes import MACHINE_PATHS, install

__all__ = [
    "MACHINE_PATHS",
    "Check",
    "PageSources",
    "Readiness",
    "install",
    "install_page",
    "readiness",
    "refuse_other_hosts",
]
