"""Typed reads from a Shopify payload: the kit's shared :mod:`kit.payload`, under the name
the Shopify modules import it by."""

from __future__ import annotations

from kit.payload import Node, first_text

__all__ = ["Node", "first_text"]
