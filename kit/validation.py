"""Checks of request bodies against the documented eTrusted rules, on the camelCase wire dict.

Events are validated before they enter the outbox, so a body that eTrusted would refuse with a
400 is reported to the caller at once, with every offending field, instead of being parked as
dead hours later. This sits on the bulk-enqueue path: regexes are compiled once, the common
(valid) case allocates nothing but the result list, and nothing here raises anything but
:class:`kit.errors.ValidationError`, whatever junk it is given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, TypeGuard

from kit.errors import FieldError, ValidationError

RESERVED_EVENT_TYPE = "checkout"

_EMAIL = re.compile(
    r"[^\s@\"(),:;<>\[\\\].]+(?:\.[^\s@\"(),:;<>\[\\\].]+)*"  # local part, no empty labels
    r"@(?:[^\W_][-\w]*\.)+(?:[^\W\d_]{2,}|[Xx][Nn]--[-\w]+)\Z"  # labels, TLD (or punycode)
)
# Java locale: language, underscore, ISO country or UN M.49 numeric region (``en_150``).
_LOCALE = re.compile(r"[a-z]{2,3}_(?:[A-Z]{2}|[0-9]{3})\Z")
_DATETIME = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\Z"
)
_DATE = re.compile(r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])\Z")
_EVENT_TYPE_NAME = re.compile(r"(?!all\Z)[a-z0-9][-_a-z0-9]{1,253}[a-z0-9]\Z")
_TIME_OF_DAY = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z\Z")

_MAX_EMAIL = 254
_CHANNEL_TYPES = frozenset({"etrusted", "user_defined"})
_CUSTOMER_OPTIONAL = ("firstName", "lastName", "address", "mobile", "reference")
_PRODUCT_REQUIRED = ("name", "sku", "url")
_PRODUCT_OPTIONAL = ("gtin", "imageUrl", "mpn", "brand")
_INVITE_CONFIG_KEYS = frozenset(
    {
        "sendingDelayInDays",
        "sendingTimeOfDay",
        "inviteTemplateId",
        "questionnaireTemplateId",
        "enabled",
    }
)
_INVITE_SETTINGS_KEYS = frozenset(
    {"enabled", "productInviteConfiguration", "serviceInviteConfiguration"}
)

_REQUIRED = "is required"
_NOT_OBJECT = "must be an object"
_NOT_STRING = "must be a string"
_NOT_NONEMPTY = "must be a non-empty string"


def _valid_day(value: str) -> bool:
    """The regexes allow day 31 in every month; check the calendar only when it matters."""
    if value[8:10] <= "28":
        return True
    try:
        date(int(value[0:4]), int(value[5:7]), int(value[8:10]))
    except ValueError:
        return False
    return True


def is_email(value: str) -> bool:
    return len(value) <= _MAX_EMAIL and _EMAIL.match(value) is not None


def is_locale(value: str) -> bool:
    return _LOCALE.match(value) is not None


def is_datetime(value: str) -> bool:
    """RFC 3339 date-time (``2017-01-01T13:30:15.000Z``, any fraction digits, Z or offset)."""
    return _DATETIME.match(value) is not None and _valid_day(value)


def is_date(value: str) -> bool:
    """A real calendar date ``yyyy-MM-dd``."""
    return _DATE.match(value) is not None and _valid_day(value)


def _required_string(
    obj: Mapping[str, Any], key: str, path: str, errors: list[FieldError]
) -> str | None:
    value = obj.get(key)
    if isinstance(value, str):
        if value and not value.isspace():
            return value
        errors.append(FieldError(path, "must not be blank"))
        return None
    if value is None and key not in obj:
        errors.append(FieldError(path, _REQUIRED))
    else:
        errors.append(FieldError(path, _NOT_NONEMPTY))
    return None


def _is_mapping(value: Any) -> TypeGuard[Mapping[Any, Any]]:
    # ``type() is dict`` first: isinstance against the Mapping ABC costs several times more.
    return type(value) is dict or isinstance(value, Mapping)


def _required_object(
    obj: Mapping[str, Any], key: str, errors: list[FieldError]
) -> Mapping[str, Any] | None:
    value = obj.get(key)
    if _is_mapping(value):
        return value
    errors.append(FieldError(key, _REQUIRED if key not in obj else _NOT_OBJECT))
    return None


def _optional_strings(
    obj: Mapping[str, Any], keys: tuple[str, ...], prefix: str, errors: list[FieldError]
) -> None:
    for key in keys:
        if key in obj and not isinstance(obj[key], str):
            errors.append(FieldError(prefix + key, _NOT_STRING))


def _string(obj: Mapping[str, Any], key: str, path: str, errors: list[FieldError]) -> str | None:
    """:func:`_required_string` with the valid case inline: no call, no allocation."""
    value = obj.get(key)
    if type(value) is str and value and not value.isspace():
        return value
    return _required_string(obj, key, path, errors)


def event_errors(body: Any, *, allow_checkout: bool = False) -> list[FieldError]:
    """Every rule broken by an event wire body; empty when it may be sent."""
    if not _is_mapping(body):
        return [FieldError("(root)", "must be a JSON object")]
    errors: list[FieldError] = []

    event_type = _string(body, "type", "type", errors)
    if event_type == RESERVED_EVENT_TYPE and not allow_checkout:
        errors.append(
            FieldError("type", "'checkout' is reserved for the Trustbadge; use your own type")
        )

    customer = _required_object(body, "customer", errors)
    if customer is not None:
        email = _string(customer, "email", "customer.email", errors)
        if email is not None and not is_email(email):
            errors.append(FieldError("customer.email", "is not a valid e-mail address"))
        _optional_strings(customer, _CUSTOMER_OPTIONAL, "customer.", errors)

    channel = _required_object(body, "channel", errors)
    if channel is not None:
        _string(channel, "id", "channel.id", errors)
        if "type" in channel:
            channel_type = channel["type"]
            if not isinstance(channel_type, str) or channel_type not in _CHANNEL_TYPES:
                errors.append(FieldError("channel.type", "must be 'etrusted' or 'user_defined'"))

    transaction = _required_object(body, "transaction", errors)
    if transaction is not None:
        _string(transaction, "reference", "transaction.reference", errors)
        if "date" in transaction:
            when = transaction["date"]
            if not isinstance(when, str) or not is_datetime(when):
                errors.append(
                    FieldError(
                        "transaction.date",
                        "must be an RFC 3339 date-time such as 2017-01-01T13:30:15.000Z",
                    )
                )

    _string(body, "system", "system", errors)
    _string(body, "systemVersion", "systemVersion", errors)

    if "defaultLocale" in body:
        locale = body["defaultLocale"]
        if not isinstance(locale, str) or not is_locale(locale):
            errors.append(FieldError("defaultLocale", "must be a Java locale such as de_DE"))

    if "estimatedDeliveryDate" in body:
        delivery = body["estimatedDeliveryDate"]
        if not isinstance(delivery, str) or not is_date(delivery):
            errors.append(
                FieldError("estimatedDeliveryDate", "must be a real date in the form yyyy-MM-dd")
            )

    if "createdAt" in body:
        # Set by eTrusted, yet declared a date-time in EventRequest (and in its example).
        created = body["createdAt"]
        if not isinstance(created, str) or not is_datetime(created):
            errors.append(
                FieldError(
                    "createdAt", "must be an RFC 3339 date-time such as 2018-02-01T17:09:41.790Z"
                )
            )

    if "products" in body:
        products = body["products"]
        if type(products) is list or isinstance(products, list | tuple):
            for index, product in enumerate(products):
                if not _is_mapping(product):
                    errors.append(FieldError(f"products[{index}]", _NOT_OBJECT))
                    continue
                # Paths are only built for a failing product: the valid case stays cheap.
                for key in _PRODUCT_REQUIRED:
                    value = product.get(key)
                    if type(value) is not str or not value or value.isspace():
                        _required_string(product, key, f"products[{index}].{key}", errors)
                for key in _PRODUCT_OPTIONAL:
                    if key in product and not isinstance(product[key], str):
                        errors.append(FieldError(f"products[{index}].{key}", _NOT_STRING))
        else:
            errors.append(FieldError("products", "must be an array"))

    if "metadata" in body:
        metadata = body["metadata"]
        if _is_mapping(metadata):
            for key, value in metadata.items():
                if type(key) is str and type(value) is str:
                    continue
                if not isinstance(key, str):
                    errors.append(FieldError(f"metadata.{key!r}", "keys must be strings"))
                elif not isinstance(value, str):
                    errors.append(FieldError(f"metadata.{key}", _NOT_STRING))
        else:
            errors.append(FieldError("metadata", _NOT_OBJECT))

    return errors


def validate_event_body(body: Mapping[str, Any], *, allow_checkout: bool = False) -> None:
    """Raise :class:`ValidationError` naming every offending field of an event wire body."""
    errors = event_errors(body, allow_checkout=allow_checkout)
    if errors:
        raise ValidationError(errors, subject="event")


def event_type_name_errors(name: Any) -> list[FieldError]:
    if not isinstance(name, str):
        return [FieldError("name", _NOT_STRING)]
    if _EVENT_TYPE_NAME.match(name) is None:
        return [
            FieldError(
                "name",
                "must be 3-255 characters of a-z, 0-9, '-' and '_', start and end with a "
                "letter or digit, and not be 'all'",
            )
        ]
    return []


def validate_event_type_name(name: Any) -> None:
    errors = event_type_name_errors(name)
    if errors:
        raise ValidationError(errors, subject="event type")


def _invite_configuration_errors(config: Any, path: str, errors: list[FieldError]) -> None:
    if not isinstance(config, Mapping):
        errors.append(FieldError(path, _NOT_OBJECT))
        return
    for key, value in config.items():
        sub = f"{path}.{key}"
        if key not in _INVITE_CONFIG_KEYS:
            errors.append(FieldError(sub, "is not a known field"))
        elif key == "sendingDelayInDays":
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= 180
                or value != int(value)
            ):
                errors.append(FieldError(sub, "must be a whole number of days from 0 to 180"))
        elif key == "sendingTimeOfDay":
            if not isinstance(value, str) or _TIME_OF_DAY.match(value) is None:
                errors.append(FieldError(sub, "must be a UTC time HH:mm:ssZ such as 07:15:00Z"))
        elif key == "enabled":
            if not isinstance(value, bool):
                errors.append(FieldError(sub, "must be a boolean"))
        elif not isinstance(value, str) or not value:
            errors.append(FieldError(sub, _NOT_NONEMPTY))


def invite_settings_update_errors(body: Any) -> list[FieldError]:
    """Rules for both ``PATCH /invite-settings`` bodies (every field optional)."""
    if not isinstance(body, Mapping):
        return [FieldError("(root)", "must be a JSON object")]
    errors: list[FieldError] = []
    for key, value in body.items():
        if key not in _INVITE_SETTINGS_KEYS:
            errors.append(FieldError(str(key) or repr(key), "is not a known field"))
        elif key == "enabled":
            if not isinstance(value, bool):
                errors.append(FieldError(key, "must be a boolean"))
        else:
            _invite_configuration_errors(value, key, errors)
    return errors


def validate_invite_settings_update(body: Any) -> None:
    errors = invite_settings_update_errors(body)
    if errors:
        raise ValidationError(errors, subject="invite settings update")


def channel_update_errors(body: Any) -> list[FieldError]:
    """Rules for ``PUT /channels/{id}`` (``UpdateChannel``)."""
    if not isinstance(body, Mapping):
        return [FieldError("(root)", "must be a JSON object")]
    errors: list[FieldError] = []
    _required_string(body, "name", "name", errors)
    _optional_strings(body, ("address", "url", "logoUrl"), "", errors)
    if "locale" in body:
        locale = body["locale"]
        if not isinstance(locale, str) or not is_locale(locale):
            errors.append(FieldError("locale", "must be a Java locale such as en_US"))
    return errors


def validate_channel_update(body: Any) -> None:
    errors = channel_update_errors(body)
    if errors:
        raise ValidationError(errors, subject="channel update")


__all__ = [
    "RESERVED_EVENT_TYPE",
    "channel_update_errors",
    "event_errors",
    "event_type_name_errors",
    "invite_settings_update_errors",
    "is_date",
    "is_datetime",
    "is_email",
    "is_locale",
    "validate_channel_update",
    "validate_event_body",
    "validate_event_type_name",
    "validate_invite_settings_update",
]
