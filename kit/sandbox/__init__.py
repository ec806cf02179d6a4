"""A local, faithful stand-in for eTrusted, with fault injection.

Point an integration at it offline (``etrusted-kit sandbox``), or run it inside tests
(:func:`kit.testing.running_sandbox`). It speaks the documented API with the documented status
codes and body shapes, accepts repeated events the way eTrusted does (a new ref, an invite
rejected as ``DUPLICATE``), and can fail on demand: error statuses, 429 with ``Retry-After``,
connections cut before or after the event was processed, answers that arrive too late.
"""

from __future__ import annotations

from kit.sandbox.app import Sandbox
from kit.sandbox.config import SEEDED_ACCOUNT_REF, SEEDED_CHANNEL_IDS, SandboxConfig
from kit.sandbox.faults import Fault, FaultKind, fault_from_json
from kit.sandbox.records import AcceptedEvent
from kit.sandbox.server import SandboxServer

__all__ = [
    "SEEDED_ACCOUNT_REF",
    "SEEDED_CHANNEL_IDS",
    "AcceptedEvent",
    "Fault",
    "FaultKind",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "fault_from_json",
]
