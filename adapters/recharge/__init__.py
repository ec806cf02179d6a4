"""Recharge subscription webhooks: signed ``charge/paid`` deliveries -> renewals.

Registered as the ``recharge`` entry point of ``etrusted_kit.adapters``; see
``docs/adapters/subscriptions.md`` for the setup in Recharge.
"""

from __future__ import annotations

from adapters.recharge.adapter import RechargeAdapter, RechargePlugin, plugin
from adapters.recharge.config import RechargeConfig, SignatureScheme

__all__ = ["RechargeAdapter", "RechargeConfig", "RechargePlugin", "SignatureScheme", "plugin"]
