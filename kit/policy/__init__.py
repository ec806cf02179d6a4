"""The trigger policy: which domain events become which eTrusted invites, when, for whom.

Pure functions over values (:func:`decide`), configured per source (:class:`PolicyConfig`);
the journal feeds them a stream's history and stores the decisions they return.
"""

from __future__ import annotations

from kit.policy.config import (
    DEFAULT_RENEWAL_PER_CUSTOMER,
    DEFAULT_RENEWALS,
    DEFAULT_TRIGGERS,
    SUBSCRIPTION_TRIGGERS,
    ConsentMode,
    Exclusions,
    PolicyConfig,
    Renewals,
    Trigger,
    TriggerOn,
    duration,
)
from kit.policy.decisions import (
    DECISION_TYPES,
    Amend,
    Cancel,
    Decision,
    Enqueue,
    Note,
    Recorded,
    Skipped,
    Stale,
    Throttled,
    dedupe_key,
    dump_decision,
    load_decision,
)
from kit.policy.engine import History, decide, order_email
from kit.policy.renewals import Charge
from kit.policy.state import StreamState, fold

__all__ = [
    "DECISION_TYPES",
    "DEFAULT_RENEWALS",
    "DEFAULT_RENEWAL_PER_CUSTOMER",
    "DEFAULT_TRIGGERS",
    "SUBSCRIPTION_TRIGGERS",
    "Amend",
    "Cancel",
    "Charge",
    "ConsentMode",
    "Decision",
    "Enqueue",
    "Exclusions",
    "History",
    "Note",
    "PolicyConfig",
    "Recorded",
    "Renewals",
    "Skipped",
    "Stale",
    "StreamState",
    "Throttled",
    "Trigger",
    "TriggerOn",
    "decide",
    "dedupe_key",
    "dump_decision",
    "duration",
    "fold",
    "load_decision",
    "order_email",
]
