"""Capacity and cost at another traffic, from a measured window: ``streamline cost --rate N``.

Pure (no AWS calls). From the per-event profile a :class:`~streamline.cost.model.Measurement`
holds, :func:`plan` sizes the pipeline for ``rate`` events per second:

- **Kinesis shards**: enough for the stream's records and bytes per second within each shard's
  1,000 records/s and 1 MB/s, with :data:`HEADROOM`.
- **Concurrency per stage** (Little's law): records per second times busy milliseconds per
  record (the measured mean, its batch overhead included), with :data:`HEADROOM`; ingest's
  concurrency becomes the parallelization factor per shard (at most 10, then more shards).
- **Memory per function**: the cheapest size that fits the peak memory used, from the cost
  model's memory table (an estimate, see :mod:`streamline.cost.model`).
- **The monthly bill** at that rate: usage per million events as measured, plus the fixed
  charges with the planned shards.
- **The limits**, each with the rate at which it binds for the deployed configuration:
  Kinesis records and bytes per shard, the account's Lambda concurrency, SQS FIFO API calls per
  second per action (without high-throughput mode) and, for the stream stages, one batch per
  shard (and parallelization factor) at a time. The first to bind is named.

Example::

    from streamline.cost.plan import plan
    p = plan(measurement, PRICES, rate=100.0, deployed_pf=4)
    print(p.shards, p.parallelization_factor, p.binding.name, p.monthly_total)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from streamline.cost.model import FunctionUsage, Measurement
from streamline.cost.prices import PriceTable
from streamline.cost.pricing import SECONDS_PER_MONTH, estimate

__all__ = [
    "ACCOUNT_CONCURRENCY",
    "HEADROOM",
    "KINESIS_SHARD_BYTES",
    "KINESIS_SHARD_RECORDS",
    "MEMORY_SIZES",
    "SQS_FIFO_CALLS",
    "Limit",
    "Plan",
    "StagePlan",
    "plan",
]

#: Capacity planned above the average, for bursts and retries.
HEADROOM = 1.5
#: Kinesis: writes per shard (records/s, bytes/s).
KINESIS_SHARD_RECORDS = 1000
KINESIS_SHARD_BYTES = 1024 * 1024
#: Lambda's default concurrent executions per account and region.
ACCOUNT_CONCURRENCY = 1000
#: SQS FIFO: API calls per second per action (SendMessage, ReceiveMessage, DeleteMessage)
#: without high-throughput mode; a batch call counts once.
SQS_FIFO_CALLS = 300
#: Lambda's parallelization factor range for stream sources.
MAX_PARALLELIZATION = 10
#: Memory sizes the plan chooses from (MB).
MEMORY_SIZES = (128, 256, 512, 1024, 1769)


@dataclass(frozen=True, slots=True)
class StagePlan:
    """One function at the planned rate."""

    stage: str
    records_per_second: float
    busy_ms_per_record: float
    concurrency: int
    memory_mb: int


@dataclass(frozen=True, slots=True)
class Limit:
    """An AWS limit: how much of it the planned rate uses on the deployed configuration, and the
    events per second at which it binds there."""

    name: str
    used: float
    limit: float
    unit: str
    binds_at: float  # events/s

    @property
    def share(self) -> float:
        return self.used / self.limit if self.limit else 0.0


@dataclass(frozen=True)
class Plan:
    rate: float
    shards: int
    parallelization_factor: int
    stages: tuple[StagePlan, ...]
    monthly_usage: float
    monthly_fixed: float
    limits: tuple[Limit, ...]  # first binding first
    notes: tuple[str, ...] = ()

    @property
    def monthly_total(self) -> float:
        return self.monthly_usage + self.monthly_fixed

    @property
    def binding(self) -> Limit | None:
        return self.limits[0] if self.limits else None


def plan(
    m: Measurement,
    prices: PriceTable,
    rate: float,
    *,
    deployed_pf: int = 1,
) -> Plan:
    """Size the pipeline for ``rate`` events/s from the measured window ``m``."""
    if not rate > 0:
        raise ValueError(f"the rate must be more than 0 events/s (got {rate})")
    if m.events <= 0:
        raise ValueError("the measured window carried no events: nothing to scale from")
    notes: list[str] = []
    kinesis_records, kinesis_bytes = _kinesis_per_event(m, notes)
    memory = _cheapest_memory(m, prices)
    stages = tuple(
        _stage(fn, m.events, rate, memory.get(fn.stage, fn.memory_mb))
        for fn in m.functions
        if fn.invocations > 0
    )
    by_stage = {s.stage: s for s in stages}

    # Shards for the writes, then for ingest's concurrency (at most 10 batches per shard).
    records_s, bytes_s = rate * kinesis_records, rate * kinesis_bytes
    shards = max(
        1,
        math.ceil(records_s * HEADROOM / KINESIS_SHARD_RECORDS),
        math.ceil(bytes_s * HEADROOM / KINESIS_SHARD_BYTES),
    )
    ingest = by_stage.get("ingest")
    needed = ingest.concurrency if ingest is not None else 1
    if needed > shards * MAX_PARALLELIZATION:
        shards = math.ceil(needed / MAX_PARALLELIZATION)
        notes.append("shards raised so that ingest's concurrency fits 10 batches per shard")
    pf = min(MAX_PARALLELIZATION, max(1, math.ceil(needed / shards)))

    usage = estimate(m, prices)
    monthly_usage = usage.per_million_total * rate * SECONDS_PER_MONTH / 1e6
    fixed = estimate(replace(m, kinesis_shards=shards), prices).fixed_monthly_total
    limits = _limits(m, rate, stages, kinesis_records, kinesis_bytes, deployed_pf)
    return Plan(
        rate=rate,
        shards=shards,
        parallelization_factor=pf,
        stages=stages,
        monthly_usage=monthly_usage,
        monthly_fixed=fixed,
        limits=tuple(sorted(limits, key=lambda limit: limit.binds_at)),
        notes=tuple(notes),
    )


def _stage(fn: FunctionUsage, events: int, rate: float, memory_mb: int) -> StagePlan:
    per_event = fn.handled / events
    busy = fn.duration_ms / fn.handled if fn.handled else 0.0
    records_s = rate * per_event
    concurrency = max(1, math.ceil(records_s * busy / 1000 * HEADROOM))
    return StagePlan(fn.stage, records_s, busy, concurrency, memory_mb)


def _kinesis_per_event(m: Measurement, notes: list[str]) -> tuple[float, float]:
    """Kinesis records and payload bytes written per event (what producers sent)."""
    records = payload = 0
    for (_caller, service, operation), tally in m.calls.items():
        if service == "kinesis" and operation in ("PutRecord", "PutRecords"):
            records += tally.items
            payload += tally.payload_bytes
    if not records:
        notes.append("no Kinesis writes counted: every event taken as one 1 KB record")
        return 1.0, 1024.0
    return records / m.events, payload / m.events


def _cheapest_memory(m: Measurement, prices: PriceTable) -> dict[str, int]:
    rows = estimate(m, prices, memory_sizes=list(MEMORY_SIZES)).memory_rows
    return {
        row.function: row.memory_mb for row in rows if row.cheapest and row.function != "pipeline"
    }


def _limits(
    m: Measurement,
    rate: float,
    stages: tuple[StagePlan, ...],
    kinesis_records: float,
    kinesis_bytes: float,
    deployed_pf: int,
) -> list[Limit]:
    """Each limit's use at ``rate`` on the deployed configuration, and where it binds."""
    out: list[Limit] = []
    shards = max(m.kinesis_shards, 1)

    def add(name: str, per_event: float, limit: float, unit: str) -> None:
        if per_event > 0:
            out.append(Limit(name, rate * per_event, limit, unit, limit / per_event))

    add(
        f"Kinesis records per shard ({shards} shard{'s' if shards > 1 else ''})",
        kinesis_records / shards,
        KINESIS_SHARD_RECORDS,
        "records/s",
    )
    add("Kinesis bytes per shard", kinesis_bytes / shards, KINESIS_SHARD_BYTES, "bytes/s")
    busy_per_event = sum(s.records_per_second * s.busy_ms_per_record / 1000 for s in stages)
    add("Lambda concurrency (account)", busy_per_event / rate, ACCOUNT_CONCURRENCY, "executions")
    ingest = next((s for s in stages if s.stage == "ingest"), None)
    if ingest is not None:
        # One batch per shard and parallelization factor at a time: busy executions needed.
        add(
            f"ingest batches in flight ({shards} shard x PF {deployed_pf})",
            ingest.records_per_second * ingest.busy_ms_per_record / 1000 / rate,
            shards * deployed_pf,
            "executions",
        )
    fifo_calls: dict[str, int] = {}
    for (_caller, service, operation), tally in m.calls.items():
        if service == "sqs" and tally.fifo_units:
            fifo_calls[operation] = fifo_calls.get(operation, 0) + tally.calls
    for operation, calls in sorted(fifo_calls.items()):
        add(f"SQS FIFO {operation} calls", calls / m.events, SQS_FIFO_CALLS, "calls/s")
    return out
