"""The kit's Prometheus metrics, for ``serve``'s ``/metrics`` and for embedders
(:class:`Metrics`; the metric reference is ``docs/metrics.md``)."""

from __future__ import annotations

from kit.metrics.labels import allowed
from kit.metrics.metrics import PREFIX, Metrics

__all__ = ["PREFIX", "Metrics", "allowed"]
