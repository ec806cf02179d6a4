"""Masking helpers, so that logs and error messages never carry secrets or whole e-mails.

The outbox holds customer data of opted-in customers only; logs are shipped to places with
weaker access rules, so anything that may end up in a log line goes through these first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_EMAIL_IN_TEXT = re.compile(r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+")
_CUSTOMER_PII = ("firstName", "lastName", "address", "mobile")


def mask_email(email: str) -> str:
    """``john.doe@example.com`` -> ``j***@example.com``: enough to recognise, not to contact."""
    local, sep, domain = email.rpartition("@")
    if not sep or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_emails(text: str) -> str:
    """Mask every e-mail-looking token inside free text (e.g. a server's error message)."""
    if "@" not in text:
        return text
    return _EMAIL_IN_TEXT.sub(lambda m: mask_email(m.group(0)), text)


def mask_secret(value: str | None) -> str:
    """A fixed placeholder: not even the length of a secret or token is worth revealing."""
    return "***" if value else ""


def redact_event_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a wire event body that is safe to log: customer fields masked."""
    out = dict(body)
    customer = body.get("customer")
    if isinstance(customer, Mapping):
        safe = dict(customer)
        email = safe.get("email")
        if isinstance(email, str):
            safe["email"] = mask_email(email)
        for name in _CUSTOMER_PII:
            if name in safe:
                safe[name] = "***"
        out["customer"] = safe
    return out


_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def redact_url(dsn: str) -> str:
    """The DSN without its password (in the user info, or as a query parameter).

    The user info is cut at the *last* ``@`` before urlsplit sees the URL: a password with an
    unencoded ``/``, ``#`` or ``?`` would otherwise end urlsplit's netloc early and stay in.
    Never raises: a URL urlsplit refuses (an unbalanced ``[``) loses its whole query instead,
    as that is where a ``password=`` could be.
    """
    scheme, sep, rest = dsn.partition("://")
    if sep:
        userinfo, at, hostpart = rest.rpartition("@")
        if at:
            user = userinfo.split(":", 1)[0]
            rest = f"{user}@{hostpart}" if user else hostpart
    try:
        parts = urlsplit(f"{scheme}{sep}{rest}")
    except ValueError:
        return f"{scheme}{sep}{rest.split('?', 1)[0]}"
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query) if k.lower() not in _SECRET_PARAMETERS]
    )
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


__all__ = ["mask_email", "mask_emails", "mask_secret", "redact_event_body", "redact_url"]
