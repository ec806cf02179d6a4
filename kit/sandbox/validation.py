"""Server-side validation, worded like eTrusted's JSON-Schema validator.

Written from the OpenAPI files and the documented order, independently of the kit's client
validation, so that each can catch the other's mistakes. Every function returns the first
problem as text (``instance.customer requires property "email"``) or ``None``; the handlers add
the service's prefix and body shape.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

EVENT_TYPE_NAME = re.compile(r"[a-z0-9][-_a-z0-9]{1,253}[a-z0-9]")
EVENT_TYPE_NAME_PATTERN = "(?!^all$)(^[a-z0-9][-_a-z0-9]{1,253}[a-z0-9]$)"
TIME_OF_DAY = re.compile(r"([0-1][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z")
TIME_OF_DAY_PATTERN = "^([0-1][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"
CHANNEL_TYPES = ("user_defined", "etrusted")

# RFC 3339 date-time with any number of fraction digits ("...41.79Z" appears in the docs).
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Deliberately plain: one @, a dotted domain, no whitespace. Stricter checks belong to eTrusted.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")

_JSON_TYPES = {str: "string", bool: "boolean", dict: "object", list: "array"}


def is_date_time(value: str) -> bool:
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        date(year, month, day)
    except ValueError:
        return False
    if hour > 23 or minute > 59 or second > 60:
        return False
    if match.group(9) is not None:
        return int(match.group(9)) <= 23 and int(match.group(10)) <= 59
    return True


def is_date(value: str) -> bool:
    if _DATE.fullmatch(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


_FORMATS = {"date-time": is_date_time, "date": is_date}


def is_email(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None


def _type_error(path: str, expected: type) -> str:
    return f"{path} is not of a type(s) {_JSON_TYPES[expected]}"


def _is(value: Any, expected: type) -> bool:
    # bool is an int in Python but never a JSON string/object/array; only "boolean" needs care.
    return isinstance(value, expected)


def _required(obj: dict[str, Any], path: str, name: str, expected: type) -> str | None:
    if name not in obj:
        return f'{path} requires property "{name}"'
    if not _is(obj[name], expected):
        return _type_error(f"{path}.{name}", expected)
    return None


def _optional(obj: dict[str, Any], path: str, name: str, expected: type) -> str | None:
    if name in obj and not _is(obj[name], expected):
        return _type_error(f"{path}.{name}", expected)
    return None


_CUSTOMER_STRINGS = ("firstName", "lastName", "address", "mobile", "reference")
_PRODUCT_STRINGS = ("gtin", "imageUrl", "mpn", "brand")


def validate_event(body: Any) -> str | None:
    """Check a POST /events body in the order eTrusted is documented to (§12 of the notes)."""
    if not isinstance(body, dict):
        return _type_error("instance", dict)
    # 1-9: the required properties, outermost first.
    problem = (
        _required(body, "instance", "type", str)
        or _required(body, "instance", "customer", dict)
        or _required(body["customer"], "instance.customer", "email", str)
        or _required(body, "instance", "channel", dict)
        or _required(body["channel"], "instance.channel", "id", str)
        or _required(body, "instance", "transaction", dict)
        or _required(body["transaction"], "instance.transaction", "reference", str)
        or _required(body, "instance", "system", str)
        or _required(body, "instance", "systemVersion", str)
    )
    if problem:
        return problem
    # 10: products and their required fields.
    if "products" in body:
        products = body["products"]
        if not isinstance(products, list):
            return _type_error("instance.products", list)
        for index, product in enumerate(products):
            path = f"instance.products[{index}]"
            if not isinstance(product, dict):
                return _type_error(path, dict)
            problem = (
                _required(product, path, "name", str)
                or _required(product, path, "sku", str)
                or _required(product, path, "url", str)
            )
            if problem:
                return problem
    # 11: formats.
    return _event_formats(body) or _event_optional_types(body)


def _formatted(container: dict[str, Any], key: str, path: str, fmt: str) -> str | None:
    """A string field of a JSON-schema ``format`` (``date-time`` or ``date``), when present."""
    if key not in container:
        return None
    value = container[key]
    if not isinstance(value, str):
        return _type_error(path, str)
    if not _FORMATS[fmt](value):
        return f'{path} does not conform to the "{fmt}" format'
    return None


def _event_formats(body: dict[str, Any]) -> str | None:
    problem = (
        _formatted(body["transaction"], "date", "instance.transaction.date", "date-time")
        or _formatted(body, "createdAt", "instance.createdAt", "date-time")
        or _formatted(body, "estimatedDeliveryDate", "instance.estimatedDeliveryDate", "date")
    )
    if problem:
        return problem
    channel = body["channel"]
    if "type" in channel and channel["type"] not in CHANNEL_TYPES:
        return f"instance.channel.type is not one of enum values: {','.join(CHANNEL_TYPES)}"
    if not is_email(body["customer"]["email"]):
        return 'instance.customer.email does not conform to the "email" format'
    return None


def _event_optional_types(body: dict[str, Any]) -> str | None:
    problem = _optional(body, "instance", "defaultLocale", str)
    if problem:
        return problem
    customer = body["customer"]
    for name in _CUSTOMER_STRINGS:
        problem = _optional(customer, "instance.customer", name, str)
        if problem:
            return problem
    for index, product in enumerate(body.get("products") or ()):
        for name in _PRODUCT_STRINGS:
            problem = _optional(product, f"instance.products[{index}]", name, str)
            if problem:
                return problem
    if "metadata" in body:
        metadata = body["metadata"]
        if not isinstance(metadata, dict):
            return _type_error("instance.metadata", dict)
        for key, value in metadata.items():
            if not isinstance(value, str):
                return _type_error(f"instance.metadata.{key}", str)
    return None


def validate_event_type_post(body: Any) -> str | None:
    if not isinstance(body, dict):
        return _type_error("instance", dict)
    problem = _required(body, "instance", "name", str) or _optional(
        body, "instance", "active", bool
    )
    if problem:
        return problem
    name = body["name"]
    if name == "all" or EVENT_TYPE_NAME.fullmatch(name) is None:
        return f'instance.name does not match pattern "{EVENT_TYPE_NAME_PATTERN}"'
    return None


def validate_event_type_put(body: Any) -> str | None:
    if not isinstance(body, dict):
        return _type_error("instance", dict)
    return _required(body, "instance", "active", bool)


_CONFIGURATIONS = ("productInviteConfiguration", "serviceInviteConfiguration")


def validate_invite_settings_patch(body: Any) -> str | None:
    """Both PATCH variants: every field optional, but each one that is sent must be valid."""
    if not isinstance(body, dict):
        return _type_error("instance", dict)
    problem = _optional(body, "instance", "enabled", bool)
    if problem:
        return problem
    for name in _CONFIGURATIONS:
        if name not in body:
            continue
        config = body[name]
        path = f"instance.{name}"
        if not isinstance(config, dict):
            return _type_error(path, dict)
        problem = _invite_configuration(config, path)
        if problem:
            return problem
    return None


def _invite_configuration(config: dict[str, Any], path: str) -> str | None:
    if "sendingDelayInDays" in config:
        days = config["sendingDelayInDays"]
        if isinstance(days, bool) or not isinstance(days, int | float):
            return f"{path}.sendingDelayInDays is not of a type(s) number"
        if days < 0:
            return f"{path}.sendingDelayInDays must be greater than or equal to 0"
        if days > 180:
            return f"{path}.sendingDelayInDays must be less than or equal to 180"
    if "sendingTimeOfDay" in config:
        value = config["sendingTimeOfDay"]
        if not isinstance(value, str):
            return _type_error(f"{path}.sendingTimeOfDay", str)
        if TIME_OF_DAY.fullmatch(value) is None:
            return f'{path}.sendingTimeOfDay does not match pattern "{TIME_OF_DAY_PATTERN}"'
    for name in ("inviteTemplateId", "questionnaireTemplateId"):
        if name in config:
            value = config[name]
            if not isinstance(value, str):
                return _type_error(f"{path}.{name}", str)
            if not value:
                return f"{path}.{name} does not meet minimum length of 1"
    return _optional(config, path, "enabled", bool)


_CHANNEL_STRINGS = ("address", "url", "logoUrl", "locale")


def validate_channel_update(body: Any) -> str | None:
    if not isinstance(body, dict):
        return _type_error("instance", dict)
    problem = _required(body, "instance", "name", str)
    if problem:
        return problem
    for name in _CHANNEL_STRINGS:
        problem = _optional(body, "instance", name, str)
        if problem:
            return problem
    return None
