"""``etrusted-kit demo``: the quick start's main job, with a readable summary."""

from __future__ import annotations

import argparse
import logging

from kit.demo import DemoReport, run_demo
from kit.demo_webhooks import HOLD_BACK, describe


def format_report(r: DemoReport) -> str:
    s = r.stats.as_dict()
    rate = s["delivered"] / r.elapsed if r.elapsed else 0.0
    lines = [
        "etrusted-kit demo: events -> SQLite outbox -> flusher -> bundled eTrusted sandbox",
        f"  outbox            {r.db}",
        f"  faults injected   {', '.join(r.faults)}, and a token expiry mid-run",
        "",
        "  Shopify webhooks  signed samples -> the real intake over HTTP, hold-back"
        f" {HOLD_BACK.total_seconds():g} s:",
        *[f"    {w.label:<32} {describe(w, r.webhook_states)}" for w in r.webhooks],
        "",
        f"  enqueued          {r.enqueued} events by the library call ({r.duplicates} repeated"
        f" keys ignored), and {len(r.webhook_states)} through the Shopify intake",
        f"  refused at once   {len(r.invalid)} invalid events:",
        *[f"                      {line}" for line in r.invalid],
        "",
        f"  delivered         {r.counts['delivered']}"
        f"  (found by reconciliation after a lost answer: {s['adopted']})",
        f"  POSTs made        {s['posts']}  (retried: {s['retried']},"
        f" rate-limited: {s['rate_limited']}, in doubt: {s['in_doubt']},"
        f" blind resends: {s['blind_resends']})",
        f"  parked (dead)     {r.counts['dead']}",
        *[f"                      {key}: {reason}" for key, reason in r.dead_reasons[:5]],
        f"  still open        pending {r.counts['pending']}, sending {r.counts['sending']},"
        f" in doubt {r.counts['in_doubt']}",
        "",
        f"  time              {r.elapsed:.2f} s, {rate:.0f} deliveries/s,"
        f" POST p50 {s.get('post_ms_p50', 0)} ms, p99 {s.get('post_ms_p99', 0)} ms",
        f"  sandbox accepted  {r.sandbox_accepted} events",
        "  exactly once      "
        + (
            "OK: every delivered entry was accepted once, with the recorded ref"
            if r.exactly_once
            else "FAILED"
        ),
        *[f"                      {m}" for m in r.mismatches[:10]],
    ]
    return "\n".join(lines)


async def cmd_demo(args: argparse.Namespace) -> int:
    kit_logger = logging.getLogger("kit")
    level = kit_logger.level
    if not args.verbose:
        # Every injected fault would log a warning; the summary tells the story instead.
        kit_logger.setLevel(logging.ERROR)
    try:
        report = await run_demo(events=args.events, db=args.db, seed=args.seed)
    finally:
        # ``cli()`` may run inside a longer-lived process (tests, an embedding app).
        kit_logger.setLevel(level)
    print(format_report(report))
    open_count = report.counts["pending"] + report.counts["sending"] + report.counts["in_doubt"]
    return 0 if report.exactly_once and open_count == 0 else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("demo", help="run the offline demo against the bundled sandbox")
    p.add_argument("--events", type=int, default=300)
    p.add_argument("--db", default=None, help="keep the outbox here instead of a temp file")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)
