"""Stripe Billing webhooks: signed events -> subscription charges and their refunds.

Registered as the ``stripe`` entry point of ``etrusted_kit.adapters``; see
``docs/adapters/subscriptions.md`` for the setup in the Stripe dashboard.
"""

from __future__ import annotations

from adapters.stripe.adapter import TOPICS, StripeAdapter, StripePlugin, plugin
from adapters.stripe.config import DEFAULT_TOLERANCE, StripeConfig

__all__ = [
    "DEFAULT_TOLERANCE",
    "TOPICS",
    "StripeAdapter",
    "StripeConfig",
    "StripePlugin",
    "plugin",
]
