"""Only a delivery Recharge signed with this store's client secret, recently, gets in: the
signature is checked by ``verify``, its age by ``parse`` against the moment the intake received
the delivery, so each check here runs both, as the intake does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from recharge_deliveries import NOW, SECRET, SIGNED_AT, accept, adapter, charge, delivery, raw

from adapters.recharge import SignatureScheme
from adapters.recharge.signing import parse_timestamped
from kit.adapters import normalise_headers
from kit.errors import VerificationError

# platforms.md §6.1: synthetic vectors computed with Python's hashlib/hmac, independent of this kit.
VECTOR_SECRET = "rc_test_client_secret"
VECTOR_BODY = b'{"charge":{"id":1001,"type":"recurring"}}'
VECTOR_LEGACY = "2ce7dacbb9030e29e1fc860a3f3804e29c0836e1508ad3cb50fc8ac4a4c46e74"
VECTOR_TIME = 1700000000
VECTOR_V1 = "6debc63e69dbb2913648497985d005b2652637194fddc9b4ca0f12a617ab1df4"


def test_the_published_legacy_vector_verifies() -> None:
    headers = normalise_headers({"X-Recharge-Hmac-Sha256": VECTOR_LEGACY})
    adapter().verify(headers, VECTOR_BODY, [VECTOR_SECRET])


def test_the_published_timestamped_vector_verifies_at_its_time() -> None:
    headers = normalise_headers({"X-Recharge-Webhook-Signature": f"t={VECTOR_TIME},v1={VECTOR_V1}"})
    received = datetime.fromtimestamp(VECTOR_TIME + 60, UTC)
    accept(headers, VECTOR_BODY, [VECTOR_SECRET], received_at=received)


def reason_of(headers: dict[str, str], data: bytes, secrets: list[str], **config: Any) -> str:
    with pytest.raises(VerificationError) as caught:
        accept(headers, data, secrets, **config)
    for secret in secrets:
        assert secret not in str(caught.value)
    for value in headers.values():
        assert "v1=" not in value or value.split("v1=")[1] not in str(caught.value)
    return caught.value.reason


@pytest.mark.parametrize("scheme", ["timestamped", "legacy"])
def test_a_tampered_body_is_refused(scheme: str) -> None:
    headers, data = delivery(charge(), scheme=scheme)
    tampered = data.replace(b'"recurring"', b'"checkout"')
    assert tampered != data
    assert reason_of(headers, tampered, [SECRET]) == "bad_signature"


@pytest.mark.parametrize("scheme", ["timestamped", "legacy"])
def test_a_body_signed_with_another_secret_is_refused(scheme: str) -> None:
    headers, data = delivery(charge(), secret="rc_someone_else", scheme=scheme)
    assert reason_of(headers, data, [SECRET]) == "bad_signature"


def test_a_timestamp_changed_after_signing_is_refused() -> None:
    """The time is signed too: moving it to look fresh breaks the signature."""
    headers, data = delivery(charge())
    headers["x-recharge-webhook-signature"] = headers["x-recharge-webhook-signature"].replace(
        f"t={SIGNED_AT}", f"t={SIGNED_AT + 1}"
    )
    assert reason_of(headers, data, [SECRET]) == "bad_signature"


def test_a_delivery_signed_longer_ago_than_the_tolerance_is_refused() -> None:
    """A captured delivery replayed later than Recharge's retries could come."""
    headers, data = delivery(charge(), signed_at=NOW - 48 * 3600 - 1)
    assert reason_of(headers, data, [SECRET]) == "stale_timestamp"
    headers, data = delivery(charge(), signed_at=NOW - 48 * 3600)
    accept(headers, data)
    headers, data = delivery(charge(), signed_at=NOW - 3601)
    assert reason_of(headers, data, [SECRET], tolerance="1h") == "stale_timestamp"


def test_a_delivery_signed_in_the_future_is_refused() -> None:
    headers, data = delivery(charge(), signed_at=NOW + 5 * 60 + 1)
    assert reason_of(headers, data, [SECRET]) == "future_timestamp"
    headers, data = delivery(charge(), signed_at=NOW + 5 * 60)
    accept(headers, data)


def test_a_missing_signature_or_an_empty_body_is_refused() -> None:
    headers, data = delivery(charge(), scheme="none")
    assert reason_of(headers, data, [SECRET]) == "missing_signature"
    headers, _ = delivery(b"")
    assert reason_of(headers, b"", [SECRET]) == "empty_body"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "t=abc,v1=00",
        f"t={SIGNED_AT}",
        "v1=zz",
        "garbage",
        "t=\u00b2,v1=00",  # a digit to str.isdigit(), not to int()
        f"t={SIGNED_AT},t={SIGNED_AT + 1},v1=00",
    ],
)
def test_a_malformed_timestamped_header_is_refused(value: str) -> None:
    """Whatever an unsigned sender puts in the header, the answer is a refusal (401), never a
    crash (500, which Recharge would retry for two days)."""
    headers, data = delivery(charge())
    headers["x-recharge-webhook-signature"] = value
    assert reason_of(headers, data, [SECRET]) == "bad_signature"


def test_entries_are_read_by_key_and_any_v1_may_match() -> None:
    """A future ``v2`` entry is ignored; with two ``v1`` (a rotation) either one verifies."""
    headers, data = delivery(charge())
    good = headers["x-recharge-webhook-signature"].split("v1=")[1]
    headers["x-recharge-webhook-signature"] = f"v2=abc, t={SIGNED_AT}, v1={'0' * 64}, v1={good}"
    accept(headers, data)
    signed = parse_timestamped(headers["x-recharge-webhook-signature"])
    assert signed.timestamp == SIGNED_AT
    assert len(signed.digests) == 2


@pytest.mark.parametrize("scheme", ["timestamped", "legacy"])
@pytest.mark.parametrize("secrets", [["rotated-in", SECRET], [SECRET, "rotated-in"]])
def test_old_and_new_secret_both_verify_during_a_rotation(scheme: str, secrets: list[str]) -> None:
    for secret in (SECRET, "rotated-in"):
        headers, data = delivery(charge(), secret=secret, scheme=scheme)
        accept(headers, data, secrets)


def test_the_timestamped_header_wins_when_both_are_sent() -> None:
    """A legacy digest beside a stale timestamped signature does not let the delivery in."""
    headers, data = delivery(charge(), scheme="both", signed_at=NOW - 49 * 3600)
    assert reason_of(headers, data, [SECRET]) == "stale_timestamp"


def test_signature_timestamped_refuses_a_legacy_only_delivery() -> None:
    """Stripping the timestamped header from a captured delivery leaves an undated legacy
    digest: a source set to ``timestamped`` does not accept that."""
    headers, data = delivery(charge(), scheme="both", signed_at=NOW - 49 * 3600)
    del headers["x-recharge-webhook-signature"]
    accept(headers, data)  # auto: the legacy digest is all there is
    reason = reason_of(headers, data, [SECRET], signature=SignatureScheme.TIMESTAMPED)
    assert reason == "missing_signature"


def test_signature_legacy_reads_only_the_legacy_header() -> None:
    headers, data = delivery(charge(), scheme="both", signed_at=NOW - 49 * 3600)
    accept(headers, data, signature="legacy")
    headers, data = delivery(charge(), scheme="timestamped")
    assert reason_of(headers, data, [SECRET], signature="legacy") == "missing_signature"
    assert raw(charge()) == data
