"""Only a delivery Shopify signed for this source's shop gets in, whatever else arrives."""

from __future__ import annotations

import pytest
from shopify_deliveries import RECEIVED, SECRET, SHOP, WEBHOOK_ID, adapter, delivery, payload, sign

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.adapters import load_adapter, normalise_headers
from kit.errors import PayloadError, VerificationError

# platforms.md §3.2: a synthetic vector computed with Python's hmac, independent of this kit.
VECTOR_SECRET = "shpss_test_secret_do_not_use"
VECTOR_BODY = b'{"id":820982911946154508,"name":"#9999","email":"jon@example.com"}'
VECTOR_SIGNATURE = "sfSaXmY9AJesvYMGCNaPOANdOyRKxSBwmukXvbVPhJ4="


def test_the_published_signed_vector_verifies() -> None:
    headers = normalise_headers(
        {"X-Shopify-Hmac-Sha256": VECTOR_SIGNATURE, "X-Shopify-Shop-Domain": SHOP}
    )
    adapter().verify(headers, VECTOR_BODY, [VECTOR_SECRET])


def test_a_signed_fixture_delivery_verifies() -> None:
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled")
    adapter().verify(headers, raw, [SECRET])


def reason_of(headers: dict[str, str], raw: bytes, secrets: list[str]) -> str:
    with pytest.raises(VerificationError) as caught:
        adapter().verify(headers, raw, secrets)
    for secret in secrets:
        assert secret not in str(caught.value)
    assert headers.get("x-shopify-hmac-sha256", "<none>") not in str(caught.value)
    return caught.value.reason


def test_a_tampered_body_is_refused() -> None:
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled")
    tampered = raw.replace(b'"test": false', b'"test": true ')
    assert tampered != raw
    assert reason_of(headers, tampered, [SECRET]) == "bad_signature"


def test_a_body_signed_with_another_secret_is_refused() -> None:
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled", secret="other")
    assert reason_of(headers, raw, [SECRET]) == "bad_signature"


def test_a_missing_signature_is_refused() -> None:
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled", hmac_sha256=None)
    assert reason_of(headers, raw, [SECRET]) == "missing_signature"


def test_an_empty_body_is_refused_even_when_signed() -> None:
    headers, _ = delivery(b"", "orders/fulfilled", hmac_sha256=sign(b""))
    assert reason_of(headers, b"", [SECRET]) == "empty_body"


@pytest.mark.parametrize("secrets", [["rotated-in", SECRET], [SECRET, "rotated-in"]])
def test_old_and_new_secret_both_verify_during_a_rotation(secrets: list[str]) -> None:
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled")
    adapter().verify(headers, raw, secrets)
    signed_new, raw_new = delivery(
        payload("order_fulfilled"), "orders/fulfilled", secret="rotated-in"
    )
    adapter().verify(signed_new, raw_new, secrets)


def test_a_delivery_for_another_shop_is_refused_though_signed() -> None:
    """One app secret signs the webhooks of every shop that installed the app."""
    headers, raw = delivery(
        payload("order_fulfilled"), "orders/fulfilled", shop_domain="other.myshopify.com"
    )
    assert reason_of(headers, raw, [SECRET]) == "wrong_shop"
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled", shop_domain=None)
    assert reason_of(headers, raw, [SECRET]) == "missing_shop"


def test_the_shop_domain_compares_without_case() -> None:
    headers, raw = delivery(
        payload("order_fulfilled"), "orders/fulfilled", shop_domain="Kit-Demo.MyShopify.com"
    )
    adapter().verify(headers, raw, [SECRET])
    configured_upper = ShopifyAdapter(source="s", config=ShopifyConfig(shop_domain=SHOP.upper()))
    configured_upper.verify(headers, raw, [SECRET])


def test_the_newer_unprefixed_headers_verify_too() -> None:
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled")
    unprefixed = {name.removeprefix("x-"): value for name, value in headers.items()}
    adapter().verify(unprefixed, raw, [SECRET])


def test_the_transport_ids_are_the_webhook_and_event_ids() -> None:
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled")
    identity = adapter().identify(headers, raw)
    assert identity.delivery_id == WEBHOOK_ID
    assert identity.event_id == "9a8b7c6d-0000-4000-8000-00000000e001"


def test_without_a_webhook_id_a_byte_identical_replay_is_still_recognised() -> None:
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled", webhook_id=None)
    first = adapter().identify(headers, raw)
    assert first.delivery_id.startswith("sha256:")
    assert adapter().identify(headers, raw) == first
    assert adapter().identify(headers, raw + b" ").delivery_id != first.delivery_id


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
    ],
)
def test_a_signed_body_that_is_no_json_object_is_a_payload_error(raw: bytes, message: str) -> None:
    headers, raw = delivery(raw, "orders/create")
    adapter().verify(headers, raw, [SECRET])
    with pytest.raises(PayloadError, match=message):
        adapter().parse(headers, raw, received_at=RECEIVED)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"email": 5}, "^email must be a string, got int"),
        ({"id": True}, "^id must be an id"),
        ({"id": None}, "^id is required"),
        ({"customer": [1]}, "^customer must be an object"),
        (
            {"line_items": [{"id": 2, "quantity": "2"}]},
            r"^line_items\[0\]\.quantity must be a whole",
        ),
        ({"line_items": [{"quantity": 2}]}, r"^line_items\[0\]\.id is required"),
        ({"created_at": "yesterday", "processed_at": None}, "^created_at is not an ISO 8601"),
        ({"created_at": None, "processed_at": None}, "neither processed_at nor created_at"),
        ({"total_price": "lots"}, "^total_price is not a decimal"),
        ({"test": "no"}, "^test must be true or false"),
        ({"name": None}, "no name for its transaction reference"),
    ],
)
def test_a_signed_order_of_the_wrong_shape_names_the_field(
    change: dict[str, object], message: str
) -> None:
    """A 400 that says which field is wrong, never a crash inside the adapter."""
    headers, raw = delivery({**payload("order_fulfilled"), **change}, "orders/create")
    with pytest.raises(PayloadError, match=message):
        adapter().parse(headers, raw, received_at=RECEIVED)


def test_a_delivery_without_a_topic_is_a_payload_error() -> None:
    headers, raw = delivery(payload("order_fulfilled"), "orders/fulfilled", topic=None)
    with pytest.raises(PayloadError, match="X-Shopify-Topic"):
        adapter().parse(headers, raw, received_at=RECEIVED)


def test_the_shopify_adapter_is_installed_under_its_name() -> None:
    plugin = load_adapter("shopify")
    config = plugin.config_type(shop_domain=SHOP)
    built = plugin.create(source="my-shop", config=config)
    assert (built.platform, built.account) == ("shopify", SHOP)
