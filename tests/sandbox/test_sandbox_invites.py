"""GET /channels/{id}/invites: newest first, cursor pagination, search, error answers."""

from __future__ import annotations

from typing import Any

import pytest
from sandbox_helpers import CHANNEL, OTHER_CHANNEL, Api, FakeClock, make_event
from yarl import URL

from kit.sandbox import SEEDED_ACCOUNT_REF

INVITES = f"/channels/{CHANNEL}/invites"


async def _post_orders(api: Api, clock: FakeClock, count: int) -> list[str]:
    refs = []
    for number in range(count):
        clock.advance(1)
        reply = await api.post_event(make_event(f"order-{number}", email=f"c{number}@example.com"))
        refs.append(reply.json["EventRef"])
    return refs


async def _follow(api: Api, link: str) -> dict[str, Any]:
    url = URL(link)
    assert url.path == INVITES
    reply = await api.call("GET", url.path, params=dict(url.query))
    assert reply.status == 200
    result: dict[str, Any] = reply.json
    return result


async def test_invite_shape(api: Api, clock: FakeClock) -> None:
    ref = (await api.post_event(make_event("order-1", defaultLocale="fr_FR"))).json["EventRef"]
    reply = await api.call("GET", INVITES)
    assert reply.status == 200
    body = reply.json
    assert body["totalElements"] == 0
    [invite] = body["items"]
    assert invite["id"].startswith("inv-")
    assert invite["_object"] == "Invite"
    assert invite["event"] == ref
    assert invite["accountRef"] == SEEDED_ACCOUNT_REF
    assert invite["channelRef"] == CHANNEL
    assert invite["locale"] == "fr_FR"
    assert invite["reviewType"] == "SERVICE_REVIEW"
    assert invite["customer"]["email"] == "jane.doe@example.com"
    assert invite["customer"]["id"].startswith("cst-")
    assert invite["transaction"]["id"].startswith("txn-")
    assert invite["transaction"]["reference"] == "order-1"
    assert invite["transaction"]["date"] == "2026-01-01T10:00:00.000Z"
    assert invite["status"] == {"name": "SCHEDULED"}
    assert invite["createdAt"] == "2026-01-01T00:00:00.000Z"
    assert body["paging"] == {
        "count": 1,
        "cursor": {"after": invite["id"], "before": invite["id"]},
        "links": {},
    }


async def test_walk_older_then_newer_pages(api: Api, clock: FakeClock) -> None:
    refs = await _post_orders(api, clock, 5)
    await api.post_event(make_event("elsewhere", channel=OTHER_CHANNEL))
    first = (await api.call("GET", INVITES, params={"count": "2"})).json
    assert [i["event"] for i in first["items"]] == [refs[4], refs[3]]
    assert first["paging"]["count"] == 2
    assert set(first["paging"]["links"]) == {"next"}
    second = await _follow(api, first["paging"]["links"]["next"])
    assert [i["event"] for i in second["items"]] == [refs[2], refs[1]]
    assert set(second["paging"]["links"]) == {"next", "previous"}
    third = await _follow(api, second["paging"]["links"]["next"])
    assert [i["event"] for i in third["items"]] == [refs[0]]
    assert third["paging"]["count"] == 1
    assert set(third["paging"]["links"]) == {"previous"}
    back = await _follow(api, third["paging"]["links"]["previous"])
    assert [i["event"] for i in back["items"]] == [refs[2], refs[1]]
    top = await _follow(api, back["paging"]["links"]["previous"])
    assert [i["event"] for i in top["items"]] == [refs[4], refs[3]]
    assert set(top["paging"]["links"]) == {"next"}


async def test_cursor_ends_and_before_the_newest(api: Api, clock: FakeClock) -> None:
    await _post_orders(api, clock, 3)
    items = (await api.call("GET", INVITES)).json["items"]
    past_the_end = await api.call("GET", INVITES, params={"after": items[-1]["id"]})
    assert past_the_end.json["items"] == []
    assert past_the_end.json["paging"] == {"count": 0, "cursor": {}, "links": {}}
    nothing_newer = await api.call("GET", INVITES, params={"before": items[0]["id"]})
    assert nothing_newer.json["items"] == []


async def test_default_page_is_twenty(api: Api, clock: FakeClock) -> None:
    refs = await _post_orders(api, clock, 23)
    page = (await api.call("GET", INVITES)).json
    assert [i["event"] for i in page["items"]] == refs[::-1][:20]
    assert URL(page["paging"]["links"]["next"]).query["count"] == "20"
    rest = await _follow(api, page["paging"]["links"]["next"])
    assert [i["event"] for i in rest["items"]] == refs[2::-1]


async def test_query_matches_reference_or_email(api: Api, clock: FakeClock) -> None:
    refs = await _post_orders(api, clock, 4)
    by_reference = (await api.call("GET", INVITES, params={"query": "order-2"})).json
    assert [i["event"] for i in by_reference["items"]] == [refs[2]]
    by_email = (await api.call("GET", INVITES, params={"query": "C3@Example.com"})).json
    assert [i["event"] for i in by_email["items"]] == [refs[3]]
    assert (await api.call("GET", INVITES, params={"query": "order-9"})).json["items"] == []
    # The search is per channel.
    other = await api.call("GET", f"/channels/{OTHER_CHANNEL}/invites", params={"query": "order-2"})
    assert other.json["items"] == []


async def test_query_pagination_keeps_the_filter(api: Api, clock: FakeClock) -> None:
    same_customer = []
    for number in range(3):
        clock.advance(1)
        await api.post_event(make_event(f"other-{number}", email="someone@example.com"))
        reply = await api.post_event(make_event(f"mine-{number}", email="me@example.com"))
        same_customer.append(reply.json["EventRef"])
    page = (await api.call("GET", INVITES, params={"query": "me@example.com", "count": "2"})).json
    assert [i["event"] for i in page["items"]] == same_customer[:0:-1]
    assert URL(page["paging"]["links"]["next"]).query["query"] == "me@example.com"
    rest = await _follow(api, page["paging"]["links"]["next"])
    assert [i["event"] for i in rest["items"]] == [same_customer[0]]


async def test_unknown_channel_is_404_without_body(api: Api) -> None:
    reply = await api.call("GET", "/channels/chl-nope/invites")
    assert (reply.status, reply.raw) == (404, b"")


@pytest.mark.parametrize(
    "params",
    [
        {"count": "many"},
        {"count": "0"},
        {"after": "inv-nope"},
        {"before": "inv-nope"},
        {"after": "x", "before": "y"},
    ],
)
async def test_bad_paging_parameters_are_400_without_body(
    api: Api, clock: FakeClock, params: dict[str, str]
) -> None:
    await _post_orders(api, clock, 1)
    reply = await api.call("GET", INVITES, params=params)
    assert (reply.status, reply.raw) == (400, b"")


async def test_a_cursor_from_another_channel_is_rejected(api: Api) -> None:
    await api.post_event(make_event("elsewhere", channel=OTHER_CHANNEL))
    [foreign] = (await api.call("GET", f"/channels/{OTHER_CHANNEL}/invites")).json["items"]
    reply = await api.call("GET", INVITES, params={"after": foreign["id"]})
    assert reply.status == 400
