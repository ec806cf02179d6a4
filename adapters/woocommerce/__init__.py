"""WooCommerce order webhooks: signed deliveries -> domain events.

Registered as the ``woocommerce`` entry point of ``etrusted_kit.adapters``; see
``docs/adapters/woocommerce.md`` for the setup in the WooCommerce admin.
"""

from __future__ import annotations

from adapters.woocommerce.adapter import (
    TOPICS,
    WooCommerceAdapter,
    WooCommercePlugin,
    plugin,
)
from adapters.woocommerce.config import ReferenceField, WooCommerceConfig

__all__ = [
    "TOPICS",
    "ReferenceField",
    "WooCommerceAdapter",
    "WooCommerceConfig",
    "WooCommercePlugin",
    "plugin",
]
