"""Only a delivery Stripe signed with a configured secret, within the tolerance of when the
intake took it in, gets past the Stripe adapter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from adapters.stripe import StripeAdapter, StripeConfig, samples
from adapters.stripe.signature import sign
from kit.adapters import load_adapter, normalise_headers
from kit.errors import PayloadError, VerificationError

# platforms.md §5.2: a synthetic vector computed with Python's hmac, independent of this kit.
VECTOR_SECRET = "whsec_test_secret"
VECTOR_BODY = b'{"id":"evt_test_1","object":"event","type":"invoice.paid"}'
VECTOR_HEADER = "t=1700000000,v1=3e3e661992c26c45d9105cbea450acc1a34f8c6dbafbd891f858c6fd9054fe3e"
VECTOR_AT = datetime.fromtimestamp(1700000000, UTC)

SECRET = "whsec_kit_test_secret_do_not_use"
OTHER = "whsec_kit_other_secret_do_not_use"


def adapter(**config: object) -> StripeAdapter:
    return StripeAdapter(source="billing", config=StripeConfig(**config))  # type: ignore[arg-type]


def headers(value: str) -> dict[str, str]:
    return normalise_headers({"Stripe-Signature": value})


def reason(value: str | None, raw: bytes, secrets: list[str]) -> str:
    found = {} if value is None else headers(value)
    with pytest.raises(VerificationError) as caught:
        adapter().verify(found, raw, secrets)
    return caught.value.reason


def test_the_reference_vector_verifies_and_parses_at_its_own_time() -> None:
    stripe = adapter()
    stripe.verify(headers(VECTOR_HEADER), VECTOR_BODY, [VECTOR_SECRET])
    # The vector's body has no data.object: the signature and timestamp pass, the body is
    # then judged on its own (an invoice.paid without an invoice is a bad payload).
    with pytest.raises(PayloadError, match=r"data\.object"):
        stripe.parse(headers(VECTOR_HEADER), VECTOR_BODY, received_at=VECTOR_AT)


def test_the_signature_is_hmac_sha256_over_t_dot_raw_body() -> None:
    assert sign(VECTOR_BODY, VECTOR_SECRET, 1700000000) == VECTOR_HEADER


def test_any_matching_v1_is_accepted_during_a_roll() -> None:
    good = VECTOR_HEADER.split("v1=")[1]
    rolled = f"t=1700000000,v1={'0' * 64},v1={good},v0=deadbeef"
    adapter().verify(headers(rolled), VECTOR_BODY, [VECTOR_SECRET])
    # Unknown keys and a malformed v1 next to the good one change nothing.
    noisy = f"t=1700000000, v1=not-hex, x=1, v1={good}"
    adapter().verify(headers(noisy), VECTOR_BODY, [VECTOR_SECRET])


def test_any_configured_secret_is_accepted() -> None:
    adapter().verify(headers(VECTOR_HEADER), VECTOR_BODY, [OTHER, VECTOR_SECRET])


@pytest.mark.parametrize(
    ("value", "raw", "secrets", "expected"),
    [
        (None, VECTOR_BODY, [VECTOR_SECRET], "missing_signature"),
        ("", VECTOR_BODY, [VECTOR_SECRET], "missing_signature"),
        (VECTOR_HEADER, VECTOR_BODY + b" ", [VECTOR_SECRET], "bad_signature"),
        (VECTOR_HEADER, VECTOR_BODY.replace(b"evt_test_1", b"evt_test_2"), [VECTOR_SECRET],
         "bad_signature"),
        (VECTOR_HEADER, VECTOR_BODY, [OTHER], "bad_signature"),
        (VECTOR_HEADER, VECTOR_BODY, [], "bad_signature"),
        (VECTOR_HEADER.replace("t=1700000000", "t=1700000001"), VECTOR_BODY, [VECTOR_SECRET],
         "bad_signature"),
        (VECTOR_HEADER.split(",")[1], VECTOR_BODY, [VECTOR_SECRET], "bad_signature"),
        ("t=1700000000", VECTOR_BODY, [VECTOR_SECRET], "bad_signature"),
        ("t=1700000000,v0=" + "0" * 64, VECTOR_BODY, [VECTOR_SECRET], "bad_signature"),
        ("t=-5," + VECTOR_HEADER.split(",")[1], VECTOR_BODY, [VECTOR_SECRET], "bad_signature"),
        ("t=1700000000,t=1700000000," + VECTOR_HEADER.split(",")[1], VECTOR_BODY,
         [VECTOR_SECRET], "bad_signature"),
    ],
    ids=[
        "no header", "blank header", "tampered body (a byte)", "tampered body (an id)",
        "wrong secret", "no secret", "tampered timestamp", "no t", "no v1", "only v0",
        "negative t", "two t",
    ],
)  # fmt: skip
def test_a_delivery_not_signed_with_a_configured_secret_is_refused(
    value: str | None, raw: bytes, secrets: list[str], expected: str
) -> None:
    assert reason(value, raw, secrets) == expected


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        (timedelta(seconds=301), "stale_timestamp"),
        (timedelta(days=3), "stale_timestamp"),
        (timedelta(seconds=-301), "future_timestamp"),
        (timedelta(hours=-1), "future_timestamp"),
    ],
)
def test_a_timestamp_outside_the_tolerance_is_refused_either_way(
    drift: timedelta, expected: str
) -> None:
    with pytest.raises(VerificationError) as caught:
        adapter().parse(headers(VECTOR_HEADER), VECTOR_BODY, received_at=VECTOR_AT + drift)
    assert caught.value.reason == expected


def test_a_timestamp_on_the_edge_of_the_tolerance_passes_and_the_tolerance_is_configurable() -> (
    None
):
    event = samples.invoice_paid()
    raw = json.dumps(event).encode()
    at = 1741600000
    value = sign(raw, SECRET, at)
    received = datetime.fromtimestamp(at, UTC)
    for drift in (timedelta(seconds=300), timedelta(seconds=-300)):
        adapter().parse(headers(value), raw, received_at=received + drift)
    with pytest.raises(VerificationError):
        adapter(tolerance="1m").parse(
            headers(value), raw, received_at=received + timedelta(seconds=61)
        )
    adapter(tolerance="10m").parse(headers(value), raw, received_at=received + timedelta(minutes=9))


def test_the_adapter_is_installed_as_stripe() -> None:
    plugin = load_adapter("stripe")
    assert plugin.config_type is StripeConfig
    made = plugin.create(source="billing", config=StripeConfig(account="acct_1Kit"))
    assert (made.platform, made.account) == ("stripe", "acct_1Kit")
    assert plugin.create(source="billing", config=StripeConfig()).account == "billing"


def test_a_redelivery_repeats_the_event_id() -> None:
    raw = json.dumps(samples.invoice_paid(event_id="evt_1Again")).encode()
    assert adapter().identify({}, raw).delivery_id == "evt_1Again"
    assert adapter().identify({}, b"not json").delivery_id.startswith("sha256:")
