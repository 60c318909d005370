"""Pricing a measurement: :func:`estimate` turns a :class:`~streamline.cost.model.Measurement`
into a :class:`~streamline.cost.model.CostReport`, one line item per charge.

Each charge is priced from the reviewed price table (:mod:`streamline.cost.prices`): Lambda
requests and GB-seconds (INIT included) and the services' requests, payload and storage, for the
work as measured and for the same work written one call per record
(:func:`~streamline.cost.model.one_call_per_record`); fixed monthly charges (shards, idle SQS
long polls, custom metrics) apart; and, when asked, a Power-Tuning-style table of each function
at other memory sizes, with durations from :func:`~streamline.cost.model.invocation_ms`. Every
report lists the assumptions it rests on.

Example::

    from streamline.cost.prices import PRICES
    from streamline.cost.pricing import estimate

    report = estimate(measurement, PRICES, memory_sizes=[128, 256, 512, 1024])
    print(report.per_million_total, report.baseline_per_million_total)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from streamline.cost.model import (
    API_ROUND_TRIP_MS,
    VCPU_MEMORY_MB,
    CostReport,
    FunctionUsage,
    LineItem,
    Measurement,
    MemoryRow,
    Scenario,
    invocation_ms,
    one_call_per_record,
    split_recovery,
)
from streamline.cost.prices import PriceTable

__all__ = [
    "FAULT_RATES",
    "GIB",
    "HOURS_PER_MONTH",
    "SECONDS_PER_MONTH",
    "TRAFFIC",
    "estimate",
    "scenarios",
]

HOURS_PER_MONTH = 730
#: Lambda's SQS poller when a queue is idle: at least two pollers, each a 20 s long poll.
IDLE_SQS_POLLERS = 2
LONG_POLL_SECONDS = 20
GIB = 1024**3

#: A transient fault reaches a failure queue (and the recovery workflow) only when it outlasts
#: the mapping's own retries: one in five of them, as the demo injects them.
TRANSIENT_OUTLASTING_RETRIES = 0.2
#: The fault rates every report is priced at: (label, failed records per event). The run's own
#: rate is added to them.
FAULT_RATES: tuple[tuple[str, float], ...] = (
    ("0%", 0.0),
    ("1% poison + 5% transient", 0.01 + 0.05 * TRANSIENT_OUTLASTING_RETRIES),
)
#: The traffic every report is priced at (events per second): fixed monthly charges are spread
#: over the events a month carries at that rate.
TRAFFIC: tuple[float, ...] = (1.0, 10.0, 100.0)
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
RECOVERY_LINE = "Step Functions transitions per failed record"

_DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_DYNAMODB_READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}


def estimate(
    measurement: Measurement,
    prices: PriceTable,
    *,
    memory_sizes: Sequence[int] | None = None,
    round_trip_ms: float = API_ROUND_TRIP_MS,
) -> CostReport:
    """Price ``measurement`` and its one-call-per-record baseline (and a memory table).

    Example::

        report = estimate(measurement, PRICES, memory_sizes=[128, 256, 512, 1024])
        print(report.per_million_total, report.baseline_per_million_total)
    """
    items, unpriced = _usage_items(measurement, prices, round_trip_ms)
    baseline, _ = _usage_items(one_call_per_record(measurement), prices, round_trip_ms)
    rows = _memory_rows(measurement, prices, memory_sizes, round_trip_ms) if memory_sizes else ()
    fixed = _fixed_monthly(measurement, prices)
    return CostReport(
        events=measurement.events,
        window_seconds=measurement.window_seconds,
        origin=measurement.origin,
        price_date=prices.as_of,
        region=prices.region,
        items=tuple(items),
        baseline_items=tuple(baseline),
        fixed_monthly=tuple(fixed),
        functions=measurement.functions,
        memory_rows=tuple(rows),
        unpriced=tuple(unpriced),
        assumptions=_assumptions(measurement, round_trip_ms, bool(memory_sizes)),
        scenarios=scenarios(measurement, prices, items, fixed),
    )


def scenarios(
    m: Measurement, prices: PriceTable, items: Sequence[LineItem], fixed: Sequence[LineItem]
) -> tuple[Scenario, ...]:
    """Dollars per million events at each fault rate of :data:`FAULT_RATES` (and the run's
    own) and each traffic of :data:`TRAFFIC`.

    Only the recovery workflow's transitions move with the fault rate; every other usage
    charge stays as measured. The fixed monthly charges are spread over the events a month
    carries at that traffic.
    """
    _base, per_record, _note = split_recovery(m.recovery_runs)
    per_failed = per_record * prices.unit("sfn_standard_state_transition")
    variable = sum(i.per_million for i in items if i.name != RECOVERY_LINE)
    monthly = sum(i.cost for i in fixed)
    rates = list(FAULT_RATES)
    if m.events > 0 and m.recovery_runs:
        measured = m.failed_records / m.events
        rates.append((f"measured: {measured:.1%} through recovery", measured))
    return tuple(
        Scenario(
            label,
            failed,
            traffic,
            variable + failed * 1e6 * per_failed + monthly / (traffic * SECONDS_PER_MONTH) * 1e6,
        )
        for label, failed in rates
        for traffic in TRAFFIC
    )


def _billed_invoke_ms(fn: FunctionUsage, round_trip_ms: float) -> float:
    """Billed INVOKE milliseconds (INIT apart) of ``fn``'s invocations at its deployed memory."""
    if fn.cpu_ms is not None:
        # CPU time ran on an unthrottled core: rescale it to the deployed memory's share.
        duration = invocation_ms(fn, fn.memory_mb, round_trip_ms)
        return fn.invocations * max(1, math.ceil(duration))
    init = sum(fn.init_ms) if fn.init_in_billed else 0.0
    return max(fn.billed_ms - init, 0.0)


def _gb_seconds(ms: float, memory_mb: int) -> float:
    return ms / 1000 * memory_mb / 1024


def _gbs_price(prices: PriceTable, architecture: str) -> float:
    key = "lambda_x86_64_gb_second" if architecture == "x86_64" else "lambda_arm64_gb_second"
    return prices.unit(key)


def _usage_items(
    m: Measurement, prices: PriceTable, round_trip_ms: float
) -> tuple[list[LineItem], list[tuple[str, str, int]]]:
    per_event = 1e6 / m.events if m.events > 0 else 0.0
    calls_basis = "measured" if m.calls_measured else "estimated"
    duration_basis = "measured" if m.origin == "aws" else "local"
    items: list[LineItem] = []

    def add(name: str, quantity: float, unit: str, cost: float, basis: str, note: str = "") -> None:
        if quantity:
            items.append(LineItem(name, quantity, unit, cost, cost * per_event, basis, note))

    requests = sum(fn.invocations for fn in m.functions)
    add(
        "Lambda requests",
        requests,
        "request",
        requests * prices.unit("lambda_requests"),
        "measured",
    )
    for architecture in ("arm64", "x86_64"):
        functions = [fn for fn in m.functions if fn.architecture == architecture]
        invoke = sum(
            _gb_seconds(_billed_invoke_ms(fn, round_trip_ms), fn.memory_mb) for fn in functions
        )
        init = sum(
            _gb_seconds(sum(max(1, math.ceil(i)) for i in fn.init_ms), fn.memory_mb)
            for fn in functions
        )
        price = _gbs_price(prices, architecture)
        add(f"Lambda duration {architecture}", invoke, "GB-s", invoke * price, duration_basis)
        add(f"Lambda INIT {architecture}", init, "GB-s", init * price, duration_basis)

    kinesis = sqs_standard = sqs_fifo = writes = reads = metric_requests = event_units = 0
    unpriced: dict[tuple[str, str], int] = defaultdict(int)
    for (_caller, service, operation), tally in m.calls.items():
        if service == "kinesis" and operation in ("PutRecord", "PutRecords"):
            kinesis += tally.units
        elif service == "sqs":
            sqs_fifo += tally.fifo_units
            sqs_standard += tally.units - tally.fifo_units
        elif service == "dynamodb" and operation in _DYNAMODB_WRITES:
            writes += tally.units
        elif service == "dynamodb" and operation in _DYNAMODB_READS:
            reads += tally.units
        elif (service, operation) == ("cloudwatch", "PutMetricData"):
            metric_requests += tally.calls
        elif (service, operation) == ("events", "PutEvents"):
            event_units += tally.units
        else:
            unpriced[(service, operation)] += tally.calls
    add(
        "Kinesis PUT payload units",
        kinesis,
        "unit",
        kinesis * prices.unit("kinesis_put_payload_unit"),
        calls_basis,
    )
    add(
        "SQS requests standard",
        sqs_standard,
        "request",
        sqs_standard * prices.unit("sqs_standard_request"),
        calls_basis,
    )
    add(
        "SQS requests FIFO",
        sqs_fifo,
        "request",
        sqs_fifo * prices.unit("sqs_fifo_request"),
        calls_basis,
    )
    add(
        "DynamoDB write request units",
        writes,
        "WRU",
        writes * prices.unit("dynamodb_write_request_unit"),
        calls_basis,
    )
    add(
        "DynamoDB read request units",
        reads,
        "RRU",
        reads * prices.unit("dynamodb_read_request_unit"),
        calls_basis,
    )
    if m.recovery_runs:
        # Billed as AWS bills it: the scheduled runs are a fixed monthly charge
        # (_fixed_monthly); what the window adds is the transitions its failed records took.
        _base, per_record, note = split_recovery(m.recovery_runs)
        transitions = per_record * m.failed_records
        add(
            RECOVERY_LINE,
            transitions,
            "transition",
            transitions * prices.unit("sfn_standard_state_transition"),
            "measured",
            note or f"{per_record:.1f} per record, from {len(m.recovery_runs)} runs' histories",
        )
    else:
        add(
            "Step Functions state transitions",
            m.state_transitions,
            "transition",
            m.state_transitions * prices.unit("sfn_standard_state_transition"),
            "measured",
        )
    log_gb = sum(fn.log_bytes for fn in m.functions) / GIB
    add(
        "CloudWatch Logs ingestion",
        log_gb,
        "GB",
        log_gb * prices.unit("cloudwatch_logs_ingestion_gb"),
        "measured",
    )
    add(
        "CloudWatch PutMetricData",
        metric_requests,
        "request",
        metric_requests * prices.unit("cloudwatch_put_metric_data_request"),
        calls_basis,
    )
    add(
        "X-Ray traces recorded",
        m.traces,
        "trace",
        m.traces * prices.unit("xray_trace_recorded"),
        "measured",
    )
    events_total = event_units + m.eventbridge_events
    add(
        "EventBridge events",
        events_total,
        "event",
        events_total * prices.unit("eventbridge_custom_event"),
        "estimated" if m.eventbridge_events else calls_basis,
    )
    return items, sorted(
        ((s, o, c) for (s, o), c in unpriced.items() if c > 0), key=lambda t: -t[2]
    )


def _fixed_monthly(m: Measurement, prices: PriceTable) -> list[LineItem]:
    items: list[LineItem] = []
    if m.kinesis_shards:
        hours = m.kinesis_shards * HOURS_PER_MONTH
        items.append(
            LineItem(
                f"Kinesis {m.kinesis_shards} shard{'s' if m.kinesis_shards > 1 else ''}",
                hours,
                "shard-hour",
                hours * prices.unit("kinesis_shard_hour"),
                0.0,
                "fixed",
            )
        )
        if m.kinesis_retention_hours > 24:
            items.append(
                LineItem(
                    f"Kinesis retention {m.kinesis_retention_hours} h",
                    hours,
                    "shard-hour",
                    hours * prices.unit("kinesis_extended_retention_shard_hour"),
                    0.0,
                    "fixed",
                )
            )
    if m.sqs_mappings:
        per_mapping = IDLE_SQS_POLLERS * 3600 / LONG_POLL_SECONDS * HOURS_PER_MONTH
        fifo = sum(1 for f in m.sqs_mappings if f)
        standard = len(m.sqs_mappings) - fifo
        cost = per_mapping * (
            standard * prices.unit("sqs_standard_request") + fifo * prices.unit("sqs_fifo_request")
        )
        items.append(
            LineItem(
                f"SQS idle polls ({len(m.sqs_mappings)} mappings)",
                per_mapping * len(m.sqs_mappings),
                "request",
                cost,
                0.0,
                "fixed",
            )
        )
    if m.recovery_runs and m.recovery_runs_per_month:
        base, _per_record, _note = split_recovery(m.recovery_runs)
        transitions = base * m.recovery_runs_per_month
        items.append(
            LineItem(
                f"Step Functions recovery runs ({m.recovery_runs_per_month:,.0f} a month)",
                transitions,
                "transition",
                transitions * prices.unit("sfn_standard_state_transition"),
                0.0,
                "fixed",
                f"{base:.1f} transitions a run that finds nothing",
            )
        )
    if m.custom_metrics:
        items.append(
            LineItem(
                f"CloudWatch {m.custom_metrics} custom metrics",
                m.custom_metrics,
                "metric-month",
                m.custom_metrics * prices.unit("cloudwatch_custom_metric_month"),
                0.0,
                "fixed",
            )
        )
    return items


def _memory_rows(
    m: Measurement, prices: PriceTable, sizes: Sequence[int], round_trip_ms: float
) -> list[MemoryRow]:
    per_event = 1e6 / m.events if m.events > 0 else 0.0
    request = prices.unit("lambda_requests")
    rows: list[MemoryRow] = []
    totals: dict[int, tuple[float, float]] = {}
    fits_all: dict[int, bool] = {}
    for fn in m.functions:
        if fn.invocations <= 0:
            continue
        mine: list[MemoryRow] = []
        for size in sizes:
            duration = invocation_ms(fn, size, round_trip_ms)
            billed = fn.invocations * max(1, math.ceil(duration))
            init = sum(max(1, math.ceil(i)) for i in fn.init_ms)
            cost = fn.invocations * request + _gb_seconds(billed + init, size) * _gbs_price(
                prices, fn.architecture
            )
            fits = size >= fn.max_memory_used_mb
            mine.append(MemoryRow(fn.stage, size, duration, cost * per_event, fits))
            before = totals.get(size, (0.0, 0.0))
            lambda_ms = fn.invocations * duration / m.events if m.events > 0 else 0.0
            totals[size] = (before[0] + lambda_ms, before[1] + cost * per_event)
            fits_all[size] = fits_all.get(size, True) and fits
        rows.extend(_mark(mine))
    pipeline = [
        MemoryRow("pipeline", size, totals[size][0], totals[size][1], fits_all[size])
        for size in sizes
        if size in totals
    ]
    rows.extend(_mark(pipeline))
    return rows


def _mark(rows: list[MemoryRow]) -> list[MemoryRow]:
    candidates = [r for r in rows if r.fits] or rows
    if not candidates:
        return rows
    cheapest = min(candidates, key=lambda r: (r.per_million, r.duration_ms))
    fastest = min(candidates, key=lambda r: (r.duration_ms, r.per_million))
    return [replace(r, cheapest=r is cheapest, fastest=r is fastest) for r in rows]


def _assumptions(m: Measurement, round_trip_ms: float, with_memory: bool) -> tuple[str, ...]:
    notes = [
        "List prices, first tier, no free tier; per million events = window cost / events x 1M.",
        "Lambda INIT is billed for on-demand ZIP functions since 1 Aug 2025; cold starts as "
        "measured (one call per record keeps the same count).",
        "Lambda's Kinesis GetRecords and DynamoDB Streams reads are not charged per request; "
        "Lambda's SQS receives and deletes are (counted as caller lambda-esm).",
        "Fixed charges (shards, idle SQS long polls by "
        f"{IDLE_SQS_POLLERS} pollers every {LONG_POLL_SECONDS} s, custom metrics, the "
        "recovery workflow's scheduled runs) are per month, not per event.",
        "The recovery workflow is billed per scheduled run (the transitions of a run that "
        "finds nothing) plus per failed record (the rest), split by least squares over the "
        "window's executions; in the fault-rate table only that part moves with the rate, "
        f"and a transient fault reaches it when it outlasts the mapping's retries "
        f"({TRANSIENT_OUTLASTING_RETRIES:.0%} of them). The stated rates count one record "
        "through recovery per failed event; a stream failure replays its whole on-failure range "
        "(the rest of a batch after a partial failure), so the measured row can be many times "
        "the run's fault rate.",
        "X-Ray: every invocation is traced (active tracing with the local cloud sampling all, "
        "as AWS's default rule does up to 1 request a second; above that it keeps 5%, and both "
        "columns shrink). One call per record starts a trace per record in each function an "
        "event source mapping invokes; an asynchronous invocation continues its caller's trace.",
    ]
    if m.origin == "local":
        notes.append(
            "Durations ran on the local cloud (no CPU throttling by memory, no network, a shared "
            "CPU) and are used as the durations at the deployed memory sizes: an estimate."
        )
    if with_memory:
        notes.append(
            f"Memory sizes: I/O wait = AWS API calls x {round_trip_ms:g} ms (at most the whole "
            f"duration), not scaled; the rest is CPU, scaled by the vCPU share (memory / "
            f"{VCPU_MEMORY_MB} MB, at most 1; Python uses one thread): an estimate."
        )
    if not m.calls_measured:
        notes.append("API calls were not counted here: estimated from invocations and records.")
    notes.extend(m.notes)
    return tuple(notes)
