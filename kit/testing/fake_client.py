"""A fake eTrusted client for flusher tests: scripted answers, recorded calls, no HTTP.

:class:`FakeDeliveryClient` implements what :class:`~kit.flusher.Flusher` needs from a client
(``post_event_json``, ``list_event_types``, ``list_invite_settings``) and what reconciliation
needs (``iter_invites``, ``get_event``). Each POST and each invite lookup is answered by the
next scripted answer, or by the default one: :class:`Reply` (202, or the invites eTrusted
holds), :class:`Raise` (a given error, as the real client raises it) or :class:`WaitFor` (hold
the call on an :class:`asyncio.Event` the test sets). Events accepted by a POST are kept, so a
lookup finds them again the way eTrusted's invites do.

Use the sandbox (:func:`kit.testing.running_sandbox`) to test HTTP, tokens and eTrusted's
answers; use this fake where a test must decide the order in which things happen.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import attrs

from kit.codec import from_wire
from kit.errors import NotFoundError
from kit.models import (
    EventAccepted,
    EventDetails,
    EventType,
    Invite,
    InviteCustomer,
    InviteSettings,
    InviteTransaction,
)


@attrs.frozen
class Reply:
    """Answer as eTrusted would: a POST is accepted under ``event_ref`` (default: ``evt-N`` for
    the N-th POST) and kept; a lookup lists the invites of the events eTrusted holds."""

    event_ref: str | None = None


@attrs.frozen
class Raise:
    """Raise ``error`` (a :mod:`kit.errors` error, as the real client would). With ``accepted``
    a POST's event is kept all the same: eTrusted accepted it, and the answer was lost."""

    error: Exception
    accepted: bool = False


@attrs.frozen
class WaitFor:
    """Hold the call until ``gate`` is set, then answer as ``then`` says."""

    gate: asyncio.Event
    then: Reply | Raise = Reply()


Answer = Reply | Raise | WaitFor


@attrs.frozen
class Call:
    """One call the client received: the method, and what it was asked for (the body of a
    POST, the channel of an invite lookup, the ref of an event, the name of an event type)."""

    method: str
    argument: str | None = None


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _text(body: bytes | str) -> str:
    return body if isinstance(body, str) else body.decode()


class FakeDeliveryClient:
    """A scripted stand-in for :class:`~kit.client.ETrustedClient` in flusher tests.

    ``event_types``: the names eTrusted knows, all active (pass :class:`EventType` values for
    inactive ones). ``post_answer`` / ``lookup_answer``: how POSTs and invite lookups are
    answered when no scripted answer is left. ``clock`` stamps accepted events (``createdAt``).
    """

    def __init__(
        self,
        *,
        event_types: Iterable[str | EventType] = ("checkout", "order_shipped"),
        invite_settings: Iterable[InviteSettings] = (),
        post_answer: Answer = Reply(),
        lookup_answer: Answer = Reply(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.event_types = [
            t if isinstance(t, EventType) else EventType(id=f"ety-{i}", name=t, active=True)
            for i, t in enumerate(event_types, start=1)
        ]
        self.invite_settings = list(invite_settings)
        self.post_answer = post_answer
        self.lookup_answer = lookup_answer
        self._clock = clock
        self._post_script: deque[Answer] = deque()
        self._lookup_script: deque[Answer] = deque()
        # ref -> the event as eTrusted stores it; a POSTed body is parsed only when looked up
        self._events: dict[str, dict[str, Any] | tuple[str, float]] = {}
        self._posted = 0
        self.calls: list[Call] = []
        self.cancelled: list[Call] = []  # calls cancelled while they waited on a gate

    # -- scripting -------------------------------------------------------------------------

    def answer_posts(self, *answers: Answer) -> None:
        """Answer the next POSTs with ``answers``, in order; then ``post_answer`` again."""
        self._post_script.extend(answers)

    def answer_lookups(self, *answers: Answer) -> None:
        """Answer the next invite lookups with ``answers``, in order; then ``lookup_answer``."""
        self._lookup_script.extend(answers)

    def add_event(self, body: dict[str, Any], *, event_ref: str) -> None:
        """Make eTrusted hold an event it got elsewhere (another source, an earlier run)."""
        self._events[event_ref] = {**body, "id": event_ref, "createdAt": _stamp(self._clock())}

    # -- what the test reads ---------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def posts(self) -> list[str]:
        """The body of every POST received, in order (answered or not)."""
        return [c.argument or "" for c in self.calls_to("post_event_json")]

    @property
    def accepted(self) -> dict[str, dict[str, Any]]:
        """The events eTrusted holds, by ref: accepted POSTs and :meth:`add_event`."""
        return {ref: self._event(ref) for ref in self._events}

    # -- the client ------------------------------------------------------------------------

    async def post_event_json(self, body: bytes | str) -> EventAccepted:
        text = _text(body)
        self._posted += 1
        ref = f"evt-{self._posted}"
        answer = await self._answer(
            Call("post_event_json", text), self._post_script, self.post_answer
        )
        if isinstance(answer, Raise):
            if answer.accepted:
                self._events[ref] = (text, self._clock())
            raise answer.error
        ref = answer.event_ref or ref
        self._events[ref] = (text, self._clock())
        return EventAccepted(event_ref=ref)

    async def list_event_types(self, name: str | None = None) -> list[EventType]:
        await self._answer(Call("list_event_types", name), deque(), Reply())
        return [t for t in self.event_types if name is None or t.name == name]

    async def list_invite_settings(self) -> list[InviteSettings]:
        await self._answer(Call("list_invite_settings"), deque(), Reply())
        return list(self.invite_settings)

    async def iter_invites(
        self, channel_id: str, *, query: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Invite]:
        answer = await self._answer(
            Call("iter_invites", channel_id), self._lookup_script, self.lookup_answer
        )
        if isinstance(answer, Raise):
            raise answer.error
        for ref in list(self._events):
            event = self._event(ref)
            if (event.get("channel") or {}).get("id") != channel_id:
                continue
            reference = (event.get("transaction") or {}).get("reference")
            email = (event.get("customer") or {}).get("email")
            if query is not None and query not in (reference, email):
                continue  # eTrusted's query matches references and e-mails
            yield Invite(
                id=f"inv-{ref}",
                event_ref=ref,
                transaction=InviteTransaction(reference=reference),
                customer=InviteCustomer(email=email),
                channel_ref=channel_id,
            )

    async def get_event(self, ref: str) -> EventDetails:
        await self._answer(Call("get_event", ref), deque(), Reply())
        if ref not in self._events:
            raise NotFoundError(f"no event {ref}", status=404)
        return from_wire(EventDetails, self._event(ref))

    # -- inside ----------------------------------------------------------------------------

    async def _answer(self, call: Call, script: deque[Answer], default: Answer) -> Reply | Raise:
        self.calls.append(call)
        answer = script.popleft() if script else default
        if isinstance(answer, WaitFor):
            try:
                await answer.gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(call)
                raise
            return answer.then
        await asyncio.sleep(0)  # a real client yields to the event loop at least once
        return answer

    def _event(self, ref: str) -> dict[str, Any]:
        stored = self._events[ref]
        if isinstance(stored, tuple):
            text, created = stored
            stored = self._events[ref] = {
                **json.loads(text),
                "id": ref,
                "createdAt": _stamp(created),
            }
        return stored
