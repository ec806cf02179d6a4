"""Staybook's ``stay.completed`` webhook for etrusted-kit (``adapter = "staybook"``)."""

from __future__ import annotations

from stay_adapter.adapter import StayAdapter, StayPlugin
from stay_adapter.config import StayConfig

plugin = StayPlugin()  # what the etrusted_kit.adapters entry point names

__all__ = ["StayAdapter", "StayConfig", "StayPlugin", "plugin"]
