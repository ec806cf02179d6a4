"""The alert rules and the Grafana dashboard in docs/monitoring/ name only what the kit
exports: every metric name and every label value their queries use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from kit.metrics import Metrics, allowed

MONITORING = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
_METRIC = re.compile(r"\betrusted_kit_[a-z_]+\b")
_MATCHER = re.compile(r'(\w+)\s*=~?\s*"([^"]*)"')
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _exported() -> set[str]:
    """Every series name a scrape of the kit can show."""
    names: set[str] = set()
    for family in Metrics(sources=["shop"]).registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def _check(expr: str, exported: set[str]) -> set[str]:
    used = set(_METRIC.findall(expr))
    assert used, f"names no metric of the kit: {expr}"
    assert used <= exported, f"{sorted(used - exported)} are not exported: {expr}"
    sets = allowed(["shop"])
    for label, wanted in _MATCHER.findall(expr):
        assert label in sets, (label, expr)
        assert wanted in sets[label], (label, wanted, expr)
    return used


def test_the_exported_names_are_what_the_checks_compare_against() -> None:
    """The names these checks compare with include the figures an operator alerts on (so a
    broken collector cannot make every query look fine by exporting nothing)."""
    exported = _exported()
    for name in (
        "etrusted_kit_entries",
        "etrusted_kit_oldest_due_age_seconds",
        "etrusted_kit_oldest_backing_off_age_seconds",
        "etrusted_kit_dead_total",
        "etrusted_kit_flusher_paused",
        "etrusted_kit_webhooks_total",
        "etrusted_kit_delivery_latency_seconds_bucket",
    ):
        assert name in exported


def test_every_alert_rule_queries_exported_metrics() -> None:
    """Each rule of etrusted-kit.rules.yml is a named alert whose expression uses only
    exported metrics and label values; together they cover due entries waiting, entries
    backing off, dead entries, a paused flusher, a feed not polled for 3 intervals and
    webhook signature failures."""
    document = yaml.safe_load((MONITORING / "etrusted-kit.rules.yml").read_text())
    exported = _exported()
    used: set[str] = set()
    exprs: list[str] = []
    for group in document["groups"]:
        for rule in group["rules"]:
            assert rule["alert"]
            assert rule["annotations"]["summary"]
            used |= _check(rule["expr"], exported)
            exprs.append(rule["expr"])
    assert {
        "etrusted_kit_oldest_due_age_seconds",
        "etrusted_kit_oldest_backing_off_age_seconds",
        "etrusted_kit_dead_total",
        "etrusted_kit_flusher_paused",
        "etrusted_kit_webhooks_total",
        "etrusted_kit_feed_poll_lag_intervals",
    } <= used
    assert any('answer="verification_failed"' in expr for expr in exprs)


def test_every_dashboard_panel_queries_exported_metrics() -> None:
    """Each panel of grafana-dashboard.json has queries, and each query uses only exported
    metrics and label values."""
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exported = _exported()
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            _check(target["expr"], exported)
