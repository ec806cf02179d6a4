"""The HTTP intake: the webhook routes of every push source, for aiohttp or any framework.

:class:`Webhooks` wraps a :class:`kit.journal.Intake` and its sources: ``install`` adds one
``POST /webhooks/{name}`` route per source to an aiohttp application, ``ingest`` answers a
delivery from any framework. Embedding: ``docs/intake.md``.
"""

from __future__ import annotations

from kit.webhooks.answer import WebhookAnswer
from kit.webhooks.observer import WebhookObserver
from kit.webhooks.settings import WebhookSettings
from kit.webhooks.webhooks import Webhooks

__all__ = ["WebhookAnswer", "WebhookObserver", "WebhookSettings", "Webhooks"]
