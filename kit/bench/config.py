"""How much each figure measures and how a run is set up, fixed before the run starts."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import attrs


@attrs.frozen(kw_only=True)
class Sizes:
    """How many events each figure moves; ``--quick`` shrinks everything but the 10k backlog."""

    rounds: int  # alternating kit / baseline rounds per ratio figure; the median counts
    enqueue_one: int
    enqueue_bulk: int
    delivery: int
    backlog_small: int
    backlog_large: int
    backlog_drain: int  # the first N entries drained from each backlog, per round
    claim_samples: int
    latency_events: int
    latency_interval: float  # seconds between two enqueues: a modest, steady rate
    cross_events: int
    cross_interval: float
    scale_out: int  # entries drained by 1 and by 4 flusher processes (PostgreSQL)
    scale_rounds: int
    intake: int  # signed webhooks posted to the intake (and to its baseline) per round
    # orders backfilled through Shopify's standard cost bucket; about 65 fit its first full
    # bucket, the rest are the steady state at ~3 orders/s
    backfill: int


FULL = Sizes(
    rounds=5,
    enqueue_one=3000,
    enqueue_bulk=100_000,
    delivery=4000,
    backlog_small=10_000,
    backlog_large=1_000_000,
    backlog_drain=3000,
    claim_samples=50,
    latency_events=300,
    latency_interval=0.02,
    cross_events=60,
    cross_interval=0.05,
    scale_out=1500,
    scale_rounds=3,
    intake=3000,
    backfill=400,
)
QUICK = Sizes(
    rounds=2,
    enqueue_one=300,
    enqueue_bulk=5000,
    delivery=300,
    backlog_small=10_000,
    backlog_large=100_000,
    backlog_drain=300,
    claim_samples=10,
    latency_events=40,
    latency_interval=0.01,
    cross_events=12,
    cross_interval=0.05,
    scale_out=200,
    scale_rounds=1,
    intake=300,
    backfill=130,
)


@attrs.frozen(kw_only=True)
class BenchConfig:
    """One bench run. ``environ`` is what child processes inherit (the CLI passes its own)."""

    db: str | None = None  # None or a SQLite path: SQLite; postgresql://...: PostgreSQL
    quick: bool = False
    concurrency: int = 8  # flusher concurrency and the baseline's parallel POSTs
    # Per flusher process in the scale-out figure: 2 POSTs of 20 ms in flight keep the remote the
    # bottleneck (4 x 2 / 0.02 s = 400/s); at 8 a 2-core machine runs out of CPU first.
    scale_concurrency: int = 2
    poll_interval: float = 1.0  # flusher poll interval (the cross-process latency bound)
    intake_senders: int = 16  # concurrent webhook senders, against the intake and its baseline
    only: str | None = None  # one group of FIGURE_GROUPS (``etrusted-kit bench intake``)
    python: str = sys.executable
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    sizes: Sizes | None = None  # None: QUICK or FULL by ``quick``

    @property
    def postgres(self) -> bool:
        return self.db is not None and self.db.startswith(("postgresql://", "postgres://"))

    @property
    def effective_sizes(self) -> Sizes:
        if self.sizes is not None:
            return self.sizes
        return QUICK if self.quick else FULL
