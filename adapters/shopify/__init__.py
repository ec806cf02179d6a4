"""Shopify order webhooks: signed deliveries -> domain events.

Registered as the ``shopify`` entry point of ``etrusted_kit.adapters``; see
``docs/adapters/shopify.md`` for the setup in the Shopify admin.
"""

from __future__ import annotations

from adapters.shopify.adapter import TOPICS, ShopifyAdapter, ShopifyPlugin, plugin
from adapters.shopify.config import ReferenceField, ShopifyConfig

__all__ = ["TOPICS", "ReferenceField", "ShopifyAdapter", "ShopifyConfig", "ShopifyPlugin", "plugin"]
