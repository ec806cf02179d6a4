"""What the flusher tells the operator about results and outages (one place for the rule).

A passing outage (the database or eTrusted unreachable, 5xx) logs one warning per failed try,
with the reason and the wait before the next, and one info line when it is over. No traceback:
those are for bugs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kit.flusher.config import FlusherConfig
from kit.flusher.decisions import Decision, Label
from kit.outbox.types import Claimed, Dead, Delivered, Retry
from kit.redact import mask_emails

logger = logging.getLogger("kit.flusher")

_RESEND = Label.RESEND  # read once per result: a module constant (enum lookups are slow on 3.11)


class Outage:
    """Consecutive failed tries of one kind, and the line that says they are over."""

    def __init__(self, over: str, action: str) -> None:
        self._over = over  # logged with the number of failed tries
        self._action = action
        self.failures = 0

    def failed(self, message: str, *args: object, action: str) -> None:
        self.failures += 1
        logger.warning(message, *args, extra={"action": action})

    def ended(self) -> None:
        if self.failures:
            logger.info(self._over, self.failures, extra={"action": self._action})
            self.failures = 0


class Reporter:
    """Logs what a decision means for the operator."""

    def __init__(self, config: FlusherConfig) -> None:
        self._config = config
        self.database = Outage(
            "the database is available again after %d failed tries", "claim_recovered"
        )
        self.etrusted = Outage(
            "eTrusted accepts events again after %d failed tries", "etrusted_recovered"
        )

    def decision(self, item: Claimed, decision: Decision, *, clock: Callable[[], float]) -> None:
        outcome = decision.outcome
        if decision.asked_wait is not None:
            logger.warning(
                "eTrusted asked to wait %g s; waiting %g s (retry_after_max) instead",
                decision.asked_wait,
                self._config.retry_after_max,
                extra={"action": "retry_after_capped"},
            )
        # 429s and refused credentials have a pause of their own, logged once by the holds.
        if (
            isinstance(outcome, Retry)
            and decision.pace is None
            and not decision.credentials_refused
        ):
            self.etrusted.failed(
                "sending %s failed (%s); trying again in %.1f s",
                item.key,
                decision.error,
                max(0.0, outcome.due_at - clock()),
                action="retry",
            )
        elif isinstance(outcome, Delivered):
            self.etrusted.ended()
            if outcome.adopted:
                logger.info(
                    "%s: reconciliation found the event in eTrusted (ref %s); adopted it",
                    item.key,
                    outcome.event_ref,
                    extra={"action": "adopted", "key": item.key, "event_ref": outcome.event_ref},
                )
        elif isinstance(outcome, Dead):
            # An operator has to act on each of these (retry or drop): never below WARNING.
            reason = mask_emails(outcome.reason)  # a server's message may quote the payload
            logger.warning(
                "%s parked as dead: %s",
                item.key,
                reason,
                extra={"action": "dead", "key": item.key, "reason": reason},
            )
        if decision.label is _RESEND:
            logger.warning(decision.error, extra={"action": "blind_resend", "key": item.key})

    def claim_failed(self, exc: Exception, wait: float) -> None:
        self.database.failed(
            "the database is unavailable (%s); trying again in %.1f s (try %d)",
            exc,
            wait,
            self.database.failures + 1,
            action="claim_failed",
        )
