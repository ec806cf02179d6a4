"""Only deliveries signed with a configured webhook secret, from this store, get through;
the unsigned creation ping is let through to be acknowledged."""

from __future__ import annotations

import pytest
from woocommerce_deliveries import SECRET, adapter, delivery, order, ping, sign, wp_json

from kit.errors import VerificationError

# platforms.md §7.1: a synthetic vector computed with Python's hmac.
VECTOR_SECRET = "wc_test_secret"
VECTOR_BODY = b'{"id":727,"status":"completed"}'
VECTOR_SIGNATURE = "uajJIIX+sAqsCpdagexuOZ9f93IsHYQcS9crXOq5NpM="


def reason(exc: pytest.ExceptionInfo[VerificationError]) -> str:
    return exc.value.reason


def test_the_published_vector_verifies() -> None:
    headers, raw = delivery(VECTOR_BODY, signature=VECTOR_SIGNATURE)
    adapter().verify(headers, raw, [VECTOR_SECRET])


def test_a_signed_order_verifies_over_the_exact_bytes_woocommerce_sends() -> None:
    """The body keeps WordPress's escaped slashes; re-serialised JSON would not verify."""
    headers, raw = delivery(order())
    assert b"\\/" in raw
    adapter().verify(headers, raw, [SECRET])
    reencoded = wp_json(order()).replace(b"\\/", b"/")
    with pytest.raises(VerificationError):
        adapter().verify(headers, reencoded, [SECRET])


def test_a_tampered_body_is_refused() -> None:
    headers, raw = delivery(order())
    tampered = raw.replace(b'"total":"75.70"', b'"total":"0.01"')
    assert tampered != raw
    with pytest.raises(VerificationError) as caught:
        adapter().verify(headers, tampered, [SECRET])
    assert reason(caught) == "bad_signature"


def test_the_wrong_secret_is_refused_without_naming_it() -> None:
    headers, raw = delivery(order(), secret="another-webhooks-secret")
    with pytest.raises(VerificationError) as caught:
        adapter().verify(headers, raw, [SECRET])
    assert reason(caught) == "bad_signature"
    assert SECRET not in str(caught.value)
    assert "1 configured secrets" in str(caught.value)


def test_a_missing_signature_is_refused() -> None:
    headers, raw = delivery(order(), signature=None)
    with pytest.raises(VerificationError) as caught:
        adapter().verify(headers, raw, [SECRET])
    assert reason(caught) == "missing_signature"


def test_an_empty_body_is_refused() -> None:
    headers, _ = delivery(order())
    with pytest.raises(VerificationError) as caught:
        adapter().verify(headers, b"", [SECRET])
    assert reason(caught) == "empty_body"


@pytest.mark.parametrize("signed_with", ["old-secret", "new-secret"])
def test_either_secret_verifies_during_a_rotation(signed_with: str) -> None:
    headers, raw = delivery(order(), secret=signed_with)
    adapter().verify(headers, raw, ["old-secret", "new-secret"])


def test_a_delivery_from_another_store_is_refused() -> None:
    """The same secret reused by two stores does not let one store's orders into the other."""
    headers, raw = delivery(order(), source="https://other-shop.example/")
    with pytest.raises(VerificationError) as caught:
        adapter().verify(headers, raw, [SECRET])
    assert reason(caught) == "wrong_store"


def test_a_store_that_sends_no_source_header_is_accepted() -> None:
    """WooCommerce before 2.6 sends no X-WC-Webhook-Source; the signature still decides."""
    headers, raw = delivery(order(), source=None)
    adapter().verify(headers, raw, [SECRET])


def test_the_source_header_is_compared_by_host_without_case() -> None:
    headers, raw = delivery(order(), source="https://KIT-Shop.example/blog/")
    adapter().verify(headers, raw, [SECRET])


def test_the_creation_ping_passes_without_a_signature() -> None:
    headers, raw = ping("14")
    adapter().verify(headers, raw, [SECRET])


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"webhook_id=14&x=1", id="extra-field"),
        pytest.param(b"webhook_id=abc", id="not-a-number"),
        pytest.param(b'{"webhook_id":14}', id="json"),
    ],
)
def test_a_body_that_is_not_exactly_a_ping_needs_a_signature(raw: bytes) -> None:
    headers, _ = ping()
    with pytest.raises(VerificationError) as caught:
        adapter().verify(headers, raw, [SECRET])
    assert reason(caught) == "missing_signature"


def test_a_ping_shaped_body_with_a_topic_is_verified_like_any_delivery() -> None:
    """A forged "ping" cannot smuggle a topic past the signature check."""
    headers, raw = delivery(b"webhook_id=14", signature="AAAA")
    with pytest.raises(VerificationError) as caught:
        adapter().verify(headers, raw, [SECRET])
    assert reason(caught) == "bad_signature"
    assert sign(raw) != "AAAA"
