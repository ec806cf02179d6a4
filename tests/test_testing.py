"""kit.testing.FakeDeliveryClient: the scripted client a flusher test can rely on.

The fake itself first (answers, gates, recorded calls, lookups), then with a real Flusher on an
in-memory outbox: what the fake promises is only worth something if the flusher reads it the
way it reads eTrusted.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from builders import CHANNEL, T0, key, order

from kit.errors import InDoubtError, NotFoundError, RetryableAPIError
from kit.flusher import Flusher, FlusherConfig
from kit.models import EventType, InviteSettings
from kit.outbox import Outbox, State
from kit.outbox.memory import InMemoryStorage
from kit.retry import Backoff
from kit.testing import Call, FakeDeliveryClient, Raise, Reply, WaitFor

FAST = FlusherConfig(
    poll_interval=0.01,
    backoff=Backoff(base=0.01, cap=0.05),
    reconcile_delay=0.0,
    reconcile_interval=0.01,
    reconcile_window=5.0,
)


def body(i: int) -> str:
    return json.dumps(order(i))


# -- answers ------------------------------------------------------------------------------


async def test_posts_are_accepted_under_fresh_refs_and_recorded() -> None:
    client = FakeDeliveryClient()
    first = await client.post_event_json(body(1))
    second = await client.post_event_json(body(2).encode())
    assert (first.event_ref, second.event_ref) == ("evt-1", "evt-2")
    assert client.posts == [body(1), body(2)]
    assert client.calls == [Call("post_event_json", body(1)), Call("post_event_json", body(2))]
    assert set(client.accepted) == {"evt-1", "evt-2"}
    assert client.accepted["evt-1"]["transaction"] == {"reference": "order-1"}


async def test_scripted_answers_come_first_then_the_default() -> None:
    refused = RetryableAPIError("eTrusted is down", status=503)
    client = FakeDeliveryClient(post_answer=Reply(event_ref="evt-always"))
    client.answer_posts(Raise(refused), Reply(event_ref="evt-mine"))
    with pytest.raises(RetryableAPIError) as raised:
        await client.post_event_json(body(1))
    assert raised.value is refused
    assert (await client.post_event_json(body(2))).event_ref == "evt-mine"
    assert (await client.post_event_json(body(3))).event_ref == "evt-always"
    assert list(client.accepted) == ["evt-mine", "evt-always"]  # the refused one was not kept


async def test_an_answer_lost_after_the_accept_keeps_the_event() -> None:
    client = FakeDeliveryClient()
    client.answer_posts(Raise(InDoubtError("the answer was lost"), accepted=True))
    with pytest.raises(InDoubtError):
        await client.post_event_json(body(1))
    assert list(client.accepted) == ["evt-1"]


async def test_a_gate_holds_the_call_until_it_is_set() -> None:
    gate = asyncio.Event()
    client = FakeDeliveryClient()
    client.answer_posts(WaitFor(gate, then=Reply(event_ref="evt-late")))
    post = asyncio.create_task(client.post_event_json(body(1)))
    async with asyncio.timeout(10):
        while not client.posts:  # the call arrived, and waits
            await asyncio.sleep(0)
    assert not post.done()
    gate.set()
    assert (await asyncio.wait_for(post, 10)).event_ref == "evt-late"
    assert client.cancelled == []


async def test_a_call_cancelled_at_its_gate_is_recorded_as_cancelled() -> None:
    client = FakeDeliveryClient(post_answer=WaitFor(asyncio.Event()))
    post = asyncio.create_task(client.post_event_json(body(1)))
    async with asyncio.timeout(10):
        while not client.posts:
            await asyncio.sleep(0)
    post.cancel()
    with pytest.raises(asyncio.CancelledError):
        await post
    assert client.cancelled == [Call("post_event_json", body(1))]
    assert client.accepted == {}


# -- event types and invite settings --------------------------------------------------------


async def test_event_types_are_the_known_names_all_active_unless_given() -> None:
    retired = EventType(id="ety-old", name="retired_touchpoint", active=False)
    client = FakeDeliveryClient(event_types=["order_shipped", retired])
    types = await client.list_event_types()
    assert [(t.name, t.active) for t in types] == [
        ("order_shipped", True),
        ("retired_touchpoint", False),
    ]
    assert await client.list_event_types("order_shipped") == [types[0]]
    settings = [InviteSettings(id="is-1", channel_id=CHANNEL, enabled=False)]
    assert await FakeDeliveryClient(invite_settings=settings).list_invite_settings() == settings


# -- lookups --------------------------------------------------------------------------------


async def test_a_lookup_finds_accepted_events_by_reference_or_email() -> None:
    client = FakeDeliveryClient(clock=lambda: T0)
    await client.post_event_json(body(1))
    await client.post_event_json(body(2))
    by_ref = [i async for i in client.iter_invites(CHANNEL, query="order-1")]
    by_email = [i async for i in client.iter_invites(CHANNEL, query="buyer2@example.com")]
    elsewhere = [i async for i in client.iter_invites("chl-elsewhere", query="order-1")]
    assert [i.event_ref for i in by_ref] == ["evt-1"]
    assert [i.event_ref for i in by_email] == ["evt-2"]
    assert elsewhere == []
    details = await client.get_event("evt-1")
    assert (details.id, details.type, details.created_at) == (
        "evt-1",
        "order_shipped",
        datetime.fromtimestamp(T0, UTC),
    )
    with pytest.raises(NotFoundError):
        await client.get_event("evt-unknown")
    assert [c.method for c in client.calls] == [
        "post_event_json",
        "post_event_json",
        "iter_invites",
        "iter_invites",
        "iter_invites",
        "get_event",
        "get_event",
    ]


async def test_lookups_follow_their_own_script() -> None:
    client = FakeDeliveryClient(lookup_answer=Raise(RetryableAPIError("down", status=503)))
    client.add_event(order(1), event_ref="evt-foreign")
    client.answer_lookups(Reply())
    assert [i.event_ref async for i in client.iter_invites(CHANNEL)] == ["evt-foreign"]
    with pytest.raises(RetryableAPIError):
        [i async for i in client.iter_invites(CHANNEL)]


# -- with a real flusher --------------------------------------------------------------------


async def test_a_flusher_delivers_through_the_fake() -> None:
    outbox = Outbox(InMemoryStorage())
    await outbox.enqueue_many([order(i) for i in range(3)])
    client = FakeDeliveryClient()
    stats = await asyncio.wait_for(Flusher(outbox, client, FAST).run_once(), 10)
    assert stats.delivered == 3
    refs = {e.event_ref for e in await outbox.entries()}
    assert refs == set(client.accepted) == {"evt-1", "evt-2", "evt-3"}


async def test_a_flusher_adopts_an_event_whose_answer_was_lost() -> None:
    outbox = Outbox(InMemoryStorage())
    await outbox.enqueue(order(1))
    client = FakeDeliveryClient()
    client.answer_posts(Raise(InDoubtError("the answer was lost"), accepted=True))
    flusher = Flusher(outbox, client, FAST)
    await asyncio.wait_for(flusher.run(until_drained=True), 10)
    entry = await outbox.get(key("order-1"))
    assert (entry.state, entry.event_ref, entry.adopted) == (State.DELIVERED, "evt-1", True)
    assert len(client.posts) == 1  # found, not sent again


async def test_a_flusher_parks_an_event_type_the_fake_does_not_know() -> None:
    outbox = Outbox(InMemoryStorage())
    await outbox.enqueue(order(1, type_="retired_touchpoint"))
    client = FakeDeliveryClient(event_types=["order_shipped"])
    await asyncio.wait_for(Flusher(outbox, client, FAST).run_once(), 10)
    (entry,) = await outbox.entries()
    assert entry.state is State.DEAD
    assert client.posts == []
