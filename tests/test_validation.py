"""Event and request-body validation: every rule by example, then properties of generated bodies."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest
from builders import event, order
from etrusted_examples import documented_event
from etrusted_openapi import request_validator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kit.errors import KitError, ValidationError
from kit.models import Event
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.validation import (
    channel_update_errors,
    event_errors,
    event_type_name_errors,
    invite_settings_update_errors,
    is_date,
    is_datetime,
    is_email,
    is_locale,
    validate_channel_update,
    validate_event_body,
    validate_event_type_name,
    validate_invite_settings_update,
)


def _valid() -> dict[str, Any]:
    """The documented EventRequest example (etrusted-api.md §5)."""
    return documented_event()


def _minimal() -> dict[str, Any]:
    return event(
        "o-1",
        email="a@example.com",
        type_="delivery",
        channel="chl-1",
        system="shop",
        system_version="1",
    )


def _paths(body: Any, **kwargs: Any) -> list[str]:
    return [e.path for e in event_errors(body, **kwargs)]


# -- examples ------------------------------------------------------------------------------


def test_documented_and_minimal_examples_pass() -> None:
    validate_event_body(_valid())
    validate_event_body(_minimal())
    assert event_errors(_valid()) == []


def test_a_body_with_everything_wrong_names_every_path() -> None:
    body = {
        "type": "",
        "customer": {"email": "not an e-mail", "firstName": 3, "mobile": None},
        "channel": {"id": " ", "type": "partner"},
        "transaction": {"reference": 12345, "date": "2017-01-01 13:30"},
        "system": None,
        "defaultLocale": "de-DE",
        "estimatedDeliveryDate": "2017-02-30",
        "products": [
            {"name": "ok", "sku": "ok", "url": "https://x.example/"},
            "not an object",
            {"name": "", "url": 7, "gtin": 1234567890123},
        ],
        "metadata": {"fine": "yes", "foo": 1, "bar": None},
    }
    with pytest.raises(ValidationError) as info:
        validate_event_body(body)
    assert list(info.value.paths) == [
        "type",
        "customer.email",
        "customer.firstName",
        "customer.mobile",
        "channel.id",
        "channel.type",
        "transaction.reference",
        "transaction.date",
        "system",
        "systemVersion",
        "defaultLocale",
        "estimatedDeliveryDate",
        "products[1]",
        "products[2].name",
        "products[2].sku",
        "products[2].url",
        "products[2].gtin",
        "metadata.foo",
        "metadata.bar",
    ]
    assert info.value.subject == "event"
    assert "customer.email: is not a valid e-mail address" in str(info.value)
    assert isinstance(info.value, KitError)


def test_missing_objects_are_reported_once_not_per_child() -> None:
    body = _minimal()
    del body["customer"], body["channel"], body["transaction"]
    assert _paths(body) == ["customer", "channel", "transaction"]
    body = {**_minimal(), "customer": "a@example.com", "channel": ["chl-1"], "transaction": None}
    messages = {e.path: e.message for e in event_errors(body)}
    assert messages == {
        "customer": "must be an object",
        "channel": "must be an object",
        "transaction": "must be an object",
    }


def test_missing_versus_wrong_type_messages() -> None:
    body = _minimal()
    del body["system"]
    body["systemVersion"] = 1.0
    messages = {e.path: e.message for e in event_errors(body)}
    assert messages == {"system": "is required", "systemVersion": "must be a non-empty string"}


@pytest.mark.parametrize("body", [None, [], "{}", 42, b"{}"])
def test_non_object_bodies(body: Any) -> None:
    assert _paths(body) == ["(root)"]
    with pytest.raises(ValidationError):
        validate_event_body(body)


def test_checkout_is_reserved_unless_allowed() -> None:
    body = {**_minimal(), "type": "checkout"}
    assert _paths(body) == ["type"]
    assert "reserved" in event_errors(body)[0].message
    validate_event_body(body, allow_checkout=True)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("de_DE", True),
        ("en_US", True),
        ("en_GB", True),
        ("nl_NL", True),
        ("en_150", True),
        ("es_419", True),
        ("fil_PH", True),
        ("de-DE", False),
        ("de", False),
        ("DE_de", False),
        ("de_de", False),
        ("en_1500", False),
        ("de_DE ", False),
        ("", False),
    ],
)
def test_default_locale(value: str, ok: bool) -> None:
    assert is_locale(value) is ok
    assert _paths({**_minimal(), "defaultLocale": value}) == ([] if ok else ["defaultLocale"])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2017-01-01T13:30:15.000Z", True),
        ("2017-01-01T13:30:15Z", True),
        ("2017-01-01T13:30:15.79Z", True),
        ("2017-01-01T13:30:15.123456789Z", True),
        ("2017-01-01T13:30:15+02:00", True),
        ("2017-01-01T13:30:15.5-11:30", True),
        ("2016-02-29T00:00:00Z", True),
        ("2017-02-29T00:00:00Z", False),
        ("2017-04-31T00:00:00Z", False),
        ("2017-01-01T24:00:00Z", False),
        ("2017-01-01T13:30:15", False),
        ("2017-01-01 13:30:15Z", False),
        ("2017-01-01T13:30:15+0200", False),
        ("2017-01-01", False),
        ("2017-01-01T13:30:15.Z", False),
    ],
)
def test_transaction_date_is_rfc3339(value: str, ok: bool) -> None:
    assert is_datetime(value) is ok
    body = _minimal()
    body["transaction"]["date"] = value
    assert _paths(body) == ([] if ok else ["transaction.date"])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2017-01-07", True),
        ("2016-02-29", True),
        ("2017-02-29", False),
        ("2017-13-01", False),
        ("2017-1-7", False),
        ("2017-01-07T00:00:00Z", False),
        ("07.01.2017", False),
    ],
)
def test_estimated_delivery_date_is_a_real_date(value: str, ok: bool) -> None:
    assert is_date(value) is ok
    assert _paths({**_minimal(), "estimatedDeliveryDate": value}) == (
        [] if ok else ["estimatedDeliveryDate"]
    )


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("john.doe@example.com", True),
        ("a+tag@sub.example.co.uk", True),
        ("jürgen@münchen.de", True),
        ("x@example.xn--p1ai", True),
        ("john.doe@example", False),
        ("john doe@example.com", False),
        ("john..doe@example.com", False),
        (".john@example.com", False),
        ("john@@example.com", False),
        ("@example.com", False),
        ("john@", False),
        ("john@example.c", False),
        ("a" * 250 + "@example.com", False),
    ],
)
def test_email_syntax(value: str, ok: bool) -> None:
    assert is_email(value) is ok
    body = _minimal()
    body["customer"]["email"] = value
    assert _paths(body) == ([] if ok else ["customer.email"])


def test_channel_type_enum_and_products_and_metadata_shapes() -> None:
    for channel_type in ("etrusted", "user_defined"):
        body = _minimal()
        body["channel"]["type"] = channel_type
        assert _paths(body) == []
    for bad in ("ETRUSTED", None, 1):
        body = _minimal()
        body["channel"]["type"] = bad
        assert _paths(body) == ["channel.type"]
    assert _paths({**_minimal(), "products": {"name": "n"}}) == ["products"]
    assert _paths({**_minimal(), "products": []}) == []
    assert _paths({**_minimal(), "metadata": ["a"]}) == ["metadata"]
    assert _paths({**_minimal(), "metadata": {}}) == []
    assert _paths({**_minimal(), "metadata": {1: "x"}}) == ["metadata.1"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2018-02-01T17:09:41.790Z", True),
        ("2018-02-01T17:09:41+01:00", True),
        ("yesterday", False),
        ("2018-02-01", False),
        (1517505000, False),
        (None, False),
    ],
)
def test_created_at_when_sent_is_an_rfc3339_date_time(value: Any, ok: bool) -> None:
    """eTrusted sets ``createdAt`` itself, yet ``EventRequest`` declares it a date-time and the
    documented example sends one: a malformed value is refused here, not by a 400 after enqueue."""
    assert _paths({**_minimal(), "createdAt": value}) == ([] if ok else ["createdAt"])


def test_unknown_fields_are_left_to_the_server() -> None:
    assert _paths({**_minimal(), "somethingNew": {"x": 1}}) == []


def test_event_type_names() -> None:
    for good in ("checkout", "after_sales", "order_status_from_shopify", "a1b", "x" * 255):
        validate_event_type_name(good)
    for bad in ("all", "ab", "After_sales", "_abc", "abc-", "a b c", "x" * 256, "abc\n", 5, None):
        assert [e.path for e in event_type_name_errors(bad)] == ["name"]
        with pytest.raises(ValidationError) as info:
            validate_event_type_name(bad)
        assert info.value.subject == "event type"
    validate_event_type_name("allx")


def test_invite_settings_updates() -> None:
    validate_invite_settings_update({})
    validate_invite_settings_update(
        {
            "enabled": True,
            "productInviteConfiguration": {
                "sendingDelayInDays": 0,
                "sendingTimeOfDay": "07:15:00Z",
                "inviteTemplateId": "tpl-1",
                "questionnaireTemplateId": "qst-1",
                "enabled": False,
            },
            "serviceInviteConfiguration": {"sendingDelayInDays": 180.0},
        }
    )
    bad = {
        "enabled": "yes",
        "productInviteConfiguration": {
            "sendingDelayInDays": 181,
            "sendingTimeOfDay": "7:15:00Z",
            "inviteTemplateId": "",
            "enabled": 1,
            "colour": "red",
        },
        "serviceInviteConfiguration": {
            "sendingDelayInDays": 2.5,
            "sendingTimeOfDay": "24:00:00Z",
            "questionnaireTemplateId": None,
        },
        "channelId": "chl-1",
    }
    assert [e.path for e in invite_settings_update_errors(bad)] == [
        "enabled",
        "productInviteConfiguration.sendingDelayInDays",
        "productInviteConfiguration.sendingTimeOfDay",
        "productInviteConfiguration.inviteTemplateId",
        "productInviteConfiguration.enabled",
        "productInviteConfiguration.colour",
        "serviceInviteConfiguration.sendingDelayInDays",
        "serviceInviteConfiguration.sendingTimeOfDay",
        "serviceInviteConfiguration.questionnaireTemplateId",
        "channelId",
    ]
    for delay in (-1, True, "3", float("nan"), float("inf")):
        errors = invite_settings_update_errors(
            {"serviceInviteConfiguration": {"sendingDelayInDays": delay}}
        )
        assert [e.path for e in errors] == ["serviceInviteConfiguration.sendingDelayInDays"]
    assert [e.path for e in invite_settings_update_errors({"serviceInviteConfiguration": 1})] == [
        "serviceInviteConfiguration"
    ]
    with pytest.raises(ValidationError) as info:
        validate_invite_settings_update([])
    assert info.value.paths == ("(root)",)


def test_channel_updates() -> None:
    validate_channel_update({"name": "shop", "locale": "en_US", "url": "https://x.example"})
    assert [e.path for e in channel_update_errors({"locale": "en-US", "logoUrl": 1})] == [
        "name",
        "logoUrl",
        "locale",
    ]
    with pytest.raises(ValidationError):
        validate_channel_update("shop")


# -- properties ----------------------------------------------------------------------------

_nonblank = st.text(min_size=1, max_size=20).filter(lambda s: not s.isspace())
_event_types = st.from_regex(r"[a-z0-9][-_a-z0-9]{1,12}[a-z0-9]", fullmatch=True).filter(
    lambda s: s not in ("checkout", "all")
)
_locales = st.from_regex(r"[a-z]{2,3}_(?:[A-Z]{2}|[0-9]{3})", fullmatch=True)
_offsets = st.sampled_from(["Z", "z", "+00:00", "+02:00", "-05:30", "+14:00", "-12:00"])


@st.composite
def _rfc3339(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    digits = draw(st.integers(min_value=0, max_value=9))
    fraction = f"{moment.microsecond:06d}{draw(st.integers(0, 999)):03d}"[:digits]
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    return text + (f".{fraction}" if digits else "") + draw(_offsets)


_products = st.fixed_dictionaries(
    {"name": _nonblank, "sku": _nonblank, "url": _nonblank},
    optional={k: st.text(max_size=10) for k in ("gtin", "imageUrl", "mpn", "brand")},
)


@st.composite
def valid_bodies(draw: st.DrawFn) -> dict[str, Any]:
    customer = draw(
        st.fixed_dictionaries(
            {"email": st.emails()},
            optional={
                k: st.text(max_size=10)
                for k in ("firstName", "lastName", "address", "mobile", "reference")
            },
        )
    )
    channel = draw(
        st.fixed_dictionaries(
            {"id": _nonblank}, optional={"type": st.sampled_from(["etrusted", "user_defined"])}
        )
    )
    transaction = draw(
        st.fixed_dictionaries({"reference": _nonblank}, optional={"date": _rfc3339()})
    )
    body = draw(
        st.fixed_dictionaries(
            {
                "type": _event_types,
                "system": _nonblank,
                "systemVersion": _nonblank,
            },
            optional={
                "defaultLocale": _locales,
                "estimatedDeliveryDate": st.dates().map(lambda d: d.isoformat()),
                "products": st.lists(_products, max_size=3),
                "metadata": st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
            },
        )
    )
    body.update(customer=customer, channel=channel, transaction=transaction)
    return body


@given(valid_bodies())
def test_generated_valid_bodies_always_pass_and_decode(body: dict[str, Any]) -> None:
    assert event_errors(body) == []
    validate_event_body(body)
    # Whatever validation lets through, the codec can read (validation is never looser).
    Event.from_body(body)


_REQUIRED_LEAVES = [
    ("type",),
    ("customer", "email"),
    ("channel", "id"),
    ("transaction", "reference"),
    ("system",),
    ("systemVersion",),
]
_REQUIRED_OBJECTS = ["customer", "channel", "transaction"]
_NOT_STRINGS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
_BLANKS = st.sampled_from(["", " ", "\t", "  \n "])
_NOT_OBJECTS = st.one_of(st.none(), st.text(max_size=5), st.integers(), st.lists(st.integers()))


def _set(body: dict[str, Any], keys: tuple[Any, ...], value: Any) -> None:
    target = body
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


def _remove(body: dict[str, Any], keys: tuple[Any, ...]) -> None:
    target = body
    for key in keys[:-1]:
        target = target[key]
    del target[keys[-1]]


@st.composite
def broken_bodies(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid body with exactly one required thing removed, blanked or mistyped."""
    body = copy.deepcopy(draw(valid_bodies()))
    target = draw(st.sampled_from(["leaf", "object", "product"]))
    how = draw(st.sampled_from(["remove", "blank", "mistype"]))
    if target == "object":
        key = draw(st.sampled_from(_REQUIRED_OBJECTS))
        if how == "remove":
            del body[key]
        else:
            body[key] = draw(_NOT_OBJECTS)
        return body, key
    if target == "product":
        products = body.setdefault("products", [])
        if not products:
            products.append(draw(_products))
        index = draw(st.integers(min_value=0, max_value=len(products) - 1))
        field = draw(st.sampled_from(["name", "sku", "url"]))
        keys: tuple[Any, ...] = ("products", index, field)
        path = f"products[{index}].{field}"
    else:
        keys = draw(st.sampled_from(_REQUIRED_LEAVES))
        path = ".".join(keys)
    if how == "remove":
        _remove(body, keys)
    elif how == "blank":
        _set(body, keys, draw(_BLANKS))
    else:
        _set(body, keys, draw(_NOT_STRINGS))
    return body, path


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(broken_bodies())
def test_one_broken_required_field_is_named_exactly(case: tuple[dict[str, Any], str]) -> None:
    body, path = case
    assert _paths(body) == [path]
    with pytest.raises(ValidationError) as info:
        validate_event_body(body)
    assert info.value.paths == (path,)


_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)
)
_junk = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = [
    "type",
    "customer",
    "channel",
    "transaction",
    "system",
    "systemVersion",
    "defaultLocale",
    "estimatedDeliveryDate",
    "products",
    "metadata",
]
_shaped_junk = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(_KEYS, _junk),
        "customer": st.dictionaries(
            st.sampled_from(["email", "firstName", "mobile", "x"]), _junk, max_size=4
        ),
        "products": st.lists(
            st.dictionaries(st.sampled_from(["name", "sku", "url", "gtin"]), _junk) | _junk,
            max_size=3,
        ),
    },
)


def _agrees(errors_of: Any, validate: Any, body: Any, **kwargs: Any) -> None:
    """``validate`` raises (only ValidationError) exactly when ``errors_of`` reports something."""
    errors = errors_of(body, **kwargs)
    if not errors:
        validate(body, **kwargs)
        return
    assert all(e.path and e.message for e in errors)
    with pytest.raises(ValidationError) as info:
        validate(body, **kwargs)
    assert info.value.errors == tuple(errors)


@given(st.one_of(_junk, _shaped_junk), st.booleans())
def test_junk_never_raises_anything_but_validation_error(body: Any, allow: bool) -> None:
    _agrees(event_errors, validate_event_body, body, allow_checkout=allow)
    _agrees(invite_settings_update_errors, validate_invite_settings_update, body)
    _agrees(channel_update_errors, validate_channel_update, body)
    _agrees(event_type_name_errors, validate_event_type_name, body)


@given(
    st.dictionaries(
        st.sampled_from(["enabled", "productInviteConfiguration", "serviceInviteConfiguration"]),
        _junk
        | st.dictionaries(
            st.sampled_from(["sendingDelayInDays", "sendingTimeOfDay", "enabled", "x"]), _junk
        ),
    )
)
def test_junk_invite_settings_updates_only_raise_validation_error(body: dict[str, Any]) -> None:
    _agrees(invite_settings_update_errors, validate_invite_settings_update, body)


# -- against the documented schema ------------------------------------------------------------

_EVENT_REQUEST = request_validator("events", "/events", "POST")


def _declared(schema: dict[str, Any], prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every property the schema declares, those of nested objects and of a product too."""
    out: list[tuple[Any, ...]] = []
    for name, sub in schema.get("properties", {}).items():
        path = (*prefix, name)
        out.append(path)
        if sub.get("type") == "object":
            out.extend(_declared(sub, path))
        elif sub.get("type") == "array":
            out.extend(_declared(sub["items"], (*path, 0)))
    return out


@pytest.mark.parametrize(
    "path", _declared(_EVENT_REQUEST.schema), ids=lambda p: ".".join(map(str, p))
)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(body=valid_bodies(), value=_junk)
def test_what_the_kit_accepts_the_documented_schema_accepts(
    path: tuple[Any, ...], body: dict[str, Any], value: Any
) -> None:
    """Any value in any property EventRequest declares: a body the kit's validator lets into
    the outbox is one eTrusted's schema accepts, never a 400 that leaves the entry dead."""
    if path[0] == "products":
        body["products"] = [{"name": "n", "sku": "s", "url": "https://x.example/"}]
    _set(body, path, value)
    if not event_errors(body, allow_checkout=True):
        assert [e.message for e in _EVENT_REQUEST.iter_errors(body)] == []


# -- what Outbox.prepare refuses --------------------------------------------------------------


def test_a_lone_surrogate_in_the_email_is_a_validation_error() -> None:
    """``Outbox.prepare`` refuses a lone surrogate in the e-mail (which json.loads accepts from a
    webhook body) with a ValidationError, the error callers handle, like anywhere else."""
    outbox = Outbox(InMemoryStorage())
    with pytest.raises(ValidationError):
        outbox.prepare(order(1, email="a\ud800b@example.com"))


def test_an_event_nested_too_deeply_to_encode_is_a_validation_error() -> None:
    """Unknown top-level fields pass validation, but one nested too deeply to encode makes
    ``Outbox.prepare`` raise the ValidationError callers handle, not a RecursionError."""
    body = event("deep-1")
    deep: list[Any] = []
    node = deep
    for _ in range(5000):
        node.append([])
        node = node[0]
    body["extra"] = deep
    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        Outbox(InMemoryStorage()).prepare(body)
