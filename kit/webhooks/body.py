"""Reading a delivery's raw body under a cap, from any framework's stream of chunks.

The cap is checked twice: against ``Content-Length`` before a byte is read, and while the chunks
arrive, since a chunked body declares no length and a sender may send more than it declared.
Nothing beyond the cap is ever held in memory. The two exceptions here never leave
:mod:`kit.webhooks`: the handler turns them into answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping


class BodyTooLarge(Exception):
    """The body is longer than the cap (``declared``: the sender said so up front)."""

    def __init__(self, *, declared: bool) -> None:
        self.declared = declared
        super().__init__("declared" if declared else "streamed")


class BodyUnreadable(Exception):
    """The stream broke off (the sender went away, or sent malformed chunked encoding)."""


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The ``Content-Length`` the sender declared, if it is a number (lower-case names).

    Only ASCII digits make one: ``str.isdigit`` also takes a superscript two, which ``int``
    then refuses."""
    value = headers.get("content-length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def check_declared(headers: Mapping[str, str], limit: int) -> None:
    """Refuse before reading when the declared length is over ``limit``."""
    length = declared_length(headers)
    if length is not None and length > limit:
        raise BodyTooLarge(declared=True)


async def read_capped(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """The whole body, or :class:`BodyTooLarge` as soon as it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(declared=False)
            parts.append(chunk)
    except BodyTooLarge:
        raise
    except Exception as exc:  # each framework raises its own disconnect / payload error
        raise BodyUnreadable(type(exc).__name__) from exc
    return b"".join(parts)


__all__ = ["BodyTooLarge", "BodyUnreadable", "check_declared", "declared_length", "read_capped"]
