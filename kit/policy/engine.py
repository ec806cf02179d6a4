"""The trigger policy as a pure function: history + new event -> decisions.

:func:`decide` reads no clock and no database. The journal hands it the stream's earlier events
and decisions, which outbox keys still wait (could be withdrawn or changed), and when the other
invites to the customer's e-mail are due, for the throttle; the intake then carries out the
decisions in the same transaction that journals them.

How a decision is found, per configured trigger and its key:

1. Replay the key's earlier decisions: was it enqueued, cancelled, throttled, skipped?
2. Fold all events, the new one included, into the stream's state (:mod:`kit.policy.state`);
   the state does not depend on the order the events arrived in.
3. Compare what the state asks for with what the key already has:

   * not enqueued, the trigger has fired: :class:`Skipped` with the first reason that rules it
     out (cancelled, refunded, an exclusion, no channel), else :class:`Throttled` when the
     customer had an invite within ``per_customer``, else :class:`Enqueue`;
   * enqueued and still waiting: :class:`Cancel` when something now rules it out,
     :class:`Amend` when its products, timing or estimated delivery date changed;
   * enqueued and already gone: :class:`Recorded` (``already_sent``): nothing is undone;
   * enqueued once: never again, whatever status the order enters twice or goes back through.

   An order stream that holds a renewal belongs to the renewal triggers: the order triggers
   skip it (``subscription_renewal_order``) and withdraw an order invite still waiting, and a
   renewal whose order's invite already left is skipped (``order_invite_sent``), so one
   renewal order never brings its customer two invites, whichever report came first.

4. An event that changed nothing is :class:`Stale` when it is older than what the stream held,
   else :class:`Recorded`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import attrs

from kit.domain import (
    CustomerErasureRequested,
    DomainEvent,
    LineItem,
    OrderDelivered,
    OrderFacts,
    OrderFulfilled,
    Skip,
    SkipReason,
    SubscriptionRenewed,
)
from kit.mapping import BodyFacts
from kit.policy import renewals, rules
from kit.policy.config import SUBSCRIPTION_TRIGGERS, PolicyConfig, Trigger, TriggerOn
from kit.policy.decisions import (
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
)
from kit.policy.state import Happened, StreamState, fold


@attrs.frozen(kw_only=True)
class History:
    """What the journal knows about the stream before the new event.

    ``waiting``: keys whose outbox entries have not been claimed for sending, so a
    :class:`Cancel` or :class:`Amend` can still take effect. ``customer_invites``: when each
    invite to the customer's e-mail from any *other* stream is due, for ``per_customer``.
    ``charges``: the same subscription's charges in other streams, for the renewal policy.
    """

    events: tuple[DomainEvent, ...] = ()
    decisions: tuple[Decision, ...] = ()
    waiting: frozenset[str] = frozenset()
    customer_invites: tuple[datetime, ...] = ()
    charges: tuple[renewals.Charge, ...] = ()


@attrs.frozen
class _Entry:
    """What earlier decisions did to one key."""

    enqueued: bool = False
    final: bool = False  # cancelled or throttled: nothing will ever change it again
    products: tuple[LineItem, ...] = ()
    send_after: datetime | None = None
    estimated_delivery_date: date | None = None
    last_skip: tuple[SkipReason, str | None] | None = None
    notes: frozenset[tuple[Note, str | None]] = frozenset()


def _replay(decisions: Sequence[Decision], key: str) -> _Entry:
    entry = _Entry()
    for decision in decisions:
        if getattr(decision, "key", None) != key:
            continue
        if isinstance(decision, Enqueue):
            entry = attrs.evolve(
                entry,
                enqueued=True,
                products=decision.facts.products,
                send_after=decision.send_after,
                estimated_delivery_date=decision.facts.estimated_delivery_date,
            )
        elif isinstance(decision, Amend):
            entry = attrs.evolve(
                entry,
                products=decision.products,
                send_after=decision.send_after,
                estimated_delivery_date=decision.estimated_delivery_date,
            )
        elif isinstance(decision, Cancel | Throttled):
            entry = attrs.evolve(entry, final=True)
        elif isinstance(decision, Skipped):
            entry = attrs.evolve(entry, last_skip=(decision.reason, decision.detail))
        elif isinstance(decision, Recorded):
            entry = attrs.evolve(entry, notes=entry.notes | {(decision.note, decision.detail)})
    return entry


@attrs.frozen
class _Plan:
    """What the state asks of one trigger's entry."""

    channel_id: str
    send_after: datetime
    products: tuple[LineItem, ...]
    estimated_delivery_date: date | None


def _reported(trigger: Trigger, state: StreamState) -> Happened | None:
    """When the trigger fired (the moment its delay counts from), if it has."""
    if trigger.on in SUBSCRIPTION_TRIGGERS:
        if state.charge is None or not renewals.fires_on(trigger, state.charge):
            return None
        return state.earliest(SubscriptionRenewed.kind)
    if trigger.on is TriggerOn.ORDER_FULFILLED:
        # A delivery report implies the shipment, should its own webhook be lost.
        return state.earliest(OrderFulfilled.kind, OrderDelivered.kind)
    if trigger.on is TriggerOn.ORDER_DELIVERED:
        delivered = state.earliest(OrderDelivered.kind)
        if delivered is not None or trigger.delivered_fallback is None:
            return delivered
        return state.earliest(OrderFulfilled.kind)
    return state.earliest(trigger.on.value)


def _blocked(config: PolicyConfig, state: StreamState) -> Skip | None:
    if state.cancelled:
        return Skip(SkipReason.CANCELLED)
    if state.disputed:
        return Skip(SkipReason.DISPUTED)
    if state.fully_refunded:
        return Skip(SkipReason.REFUNDED)
    if state.order is None:
        return Skip(SkipReason.NO_ORDER_FACTS, "no delivery has described the order yet")
    excluded = rules.exclusion(config, state.order, state.refunds)
    if excluded is not None:
        return excluded
    if rules.channel(config, state.order) is None:
        return Skip(SkipReason.NO_CHANNEL, f"no channel for locale {state.order.locale!r}")
    return None


def _is_renewal(state: StreamState) -> bool:
    return state.charge is not None and state.charge.renewal != 0


def _order_invite_sent(config: PolicyConfig, history: History, event: DomainEvent) -> Skip | None:
    """An order trigger's invite for this stream that left before the renewal was known."""
    for trigger in config.triggers:
        if trigger.on in SUBSCRIPTION_TRIGGERS:
            continue
        key = dedupe_key(event.platform, event.account, event.stream, trigger.event_type)
        entry = _replay(history.decisions, key)
        if entry.enqueued and not entry.final and key not in history.waiting:
            return Skip(SkipReason.ORDER_INVITE_SENT, f"event type {trigger.event_type!r}")
    return None


def _plan(
    config: PolicyConfig, trigger: Trigger, state: StreamState, order: OrderFacts, fired: Happened
) -> _Plan:
    channel_id = rules.channel(config, order)
    assert channel_id is not None  # _blocked() skipped the order otherwise
    is_fallback = trigger.on is TriggerOn.ORDER_DELIVERED and OrderDelivered.kind not in state.first
    if is_fallback:
        assert trigger.delivered_fallback is not None  # _reported() fired only with one
        send_after = fired.at + trigger.delivered_fallback
    else:
        send_after = fired.at + rules.delay(config, trigger, order)
    if trigger.on is TriggerOn.ORDER_DELIVERED and not is_fallback:
        estimated: date | None = fired.at.date()
    else:
        estimated = fired.shipment.estimated_delivery if fired.shipment else None
    return _Plan(
        channel_id=channel_id,
        send_after=send_after,
        products=rules.products(config, order, state.refunds),
        estimated_delivery_date=estimated,
    )


def _nearest_invite(
    invites: Sequence[datetime], send_after: datetime, window: timedelta | None
) -> datetime | None:
    """The customer's other invite nearest to ``send_after`` when it is within ``window``
    (either way): every invite counts, as one due far off says nothing of those in between."""
    if window is None or not invites:
        return None
    nearest = min(invites, key=lambda at: abs(send_after - at))
    return nearest if abs(send_after - nearest) < window else None


def _note_once(entry: _Entry, key: str, note: Note, detail: str | None) -> list[Decision]:
    """A note for a key is journaled once, not again for every later event."""
    if (note, detail) in entry.notes:
        return []
    return [Recorded(note=note, key=key, detail=detail)]


def _decide_trigger(
    config: PolicyConfig,
    trigger: Trigger,
    state: StreamState,
    history: History,
    event: DomainEvent,
) -> list[Decision]:
    key = dedupe_key(event.platform, event.account, event.stream, trigger.event_type)
    entry = _replay(history.decisions, key)
    if entry.final:
        return []
    fired = _reported(trigger, state)
    if fired is None:
        return []
    if trigger.on not in SUBSCRIPTION_TRIGGERS and _is_renewal(state):
        block: Skip | None = Skip(SkipReason.SUBSCRIPTION_RENEWAL_ORDER)
    else:
        block = _blocked(config, state)
    if block is None and state.charge is not None:
        block = renewals.selection(trigger, state.charge, history.charges)
    if block is None and trigger.on is TriggerOn.SUBSCRIPTION_RENEWED:
        block = _order_invite_sent(config, history, event)
    waiting = key in history.waiting
    if not entry.enqueued:
        if block is not None:
            if entry.last_skip == (block.reason, block.detail):
                return []
            return [Skipped(key=key, reason=block.reason, detail=block.detail)]
        assert state.order is not None  # _blocked() skipped the order otherwise
        plan = _plan(config, trigger, state, state.order, fired)
        near = _nearest_invite(history.customer_invites, plan.send_after, trigger.per_customer)
        if near is not None:
            return [Throttled(key=key, last_invite_at=near)]
        facts = BodyFacts(
            platform=event.platform,
            account=event.account,
            stream=event.stream,
            order=state.order,
            products=plan.products,
            estimated_delivery_date=plan.estimated_delivery_date,
        )
        return [
            Enqueue(
                key=key,
                event_type=trigger.event_type,
                channel_id=plan.channel_id,
                facts=facts,
                send_after=plan.send_after,
            )
        ]
    if block is not None:
        if waiting:
            return [Cancel(key=key, reason=block.reason)]
        return _note_once(entry, key, Note.ALREADY_SENT, block.reason.value)
    assert state.order is not None  # _blocked() skipped the order otherwise
    plan = _plan(config, trigger, state, state.order, fired)
    planned = (plan.products, plan.send_after, plan.estimated_delivery_date)
    if planned == (entry.products, entry.send_after, entry.estimated_delivery_date):
        return []
    if waiting:
        return [
            Amend(
                key=key,
                products=plan.products,
                send_after=plan.send_after,
                estimated_delivery_date=plan.estimated_delivery_date,
            )
        ]
    return _note_once(entry, key, Note.ALREADY_SENT, "products or timing changed")


def decide(config: PolicyConfig, history: History, event: DomainEvent) -> list[Decision]:
    """Every decision the new ``event`` leads to; never empty, so nothing passes unrecorded."""
    if isinstance(event, CustomerErasureRequested):
        return [Recorded(note=Note.ERASURE)]
    state = fold((*history.events, event))
    out: list[Decision] = []
    for trigger in config.triggers:
        out.extend(_decide_trigger(config, trigger, state, history, event))
    if out:
        return out
    before = fold(history.events).newest_at
    if before is not None and event.occurred_at < before:
        return [Stale(newest_at=before)]
    return [Recorded(note=Note.NOTHING_TO_DO)]


def order_email(history: History, event: DomainEvent) -> str | None:
    """The customer's e-mail as the policy will see it: what the journal looks up for
    ``History.customer_invites`` before calling :func:`decide`."""
    order = fold((*history.events, event)).order
    return order.email if order is not None else None


__all__ = ["History", "decide", "order_email"]
