"""The cost model, pure (no AWS calls): what was measured, and how the same work scales.

Input: a :class:`Measurement` (events, each function's REPORT totals and INIT durations, the
API calls counted per caller/service/operation with their metered units, log bytes, state
transitions, traces). Output: a :class:`CostReport` (line items, each a :class:`LineItem`, and
an optional memory table of :class:`MemoryRow`), which :func:`streamline.cost.pricing.estimate`
fills from a price table. This module also writes the same work "one call per record"
(:func:`one_call_per_record`: batch size 1, one invocation, PutRecord, SendMessage or PutItem
per record, and the per-invocation overhead measured from the REPORT lines paid per record),
and estimates durations at other memory sizes (:func:`invocation_ms`).

How a duration is estimated at another memory size, stated in every report:

* Lambda gives a function CPU in proportion to memory, one full vCPU at 1,769 MB. Python runs
  our handlers on one thread, so nothing is gained above 1,769 MB.
* An invocation's duration is split into CPU and I/O wait. Only the CPU part scales with the
  vCPU share; the I/O wait does not. The I/O wait is the invocation's AWS API calls times an
  assumed in-region round trip (:data:`API_ROUND_TRIP_MS`), at most the whole duration; the
  rest is CPU, taken to have run at the vCPU share of the deployed memory size.
* Durations measured on the local cloud are used as if measured at the deployed memory size:
  the local runtime neither throttles CPU by memory size nor waits on a network, and this
  machine's CPU is shared, so they are an estimate either way. When a measurement carries the
  functions' CPU time (``cpu_ms``), that CPU ran on one unthrottled core, which stands in for
  one vCPU, and is scaled to each memory size instead.
* INIT durations are used as measured, not scaled.

It is an estimate: real CPU share, network latency and cold-start rates will differ.

Example::

    from streamline.cost.model import FunctionUsage, Measurement
    from streamline.cost.prices import PRICES
    from streamline.cost.pricing import estimate
    from streamline.cost.render import render_text

    m = Measurement(events=1000, window_seconds=60, functions=(
        FunctionUsage("ingest-fn", "ingest", 256, invocations=10, records=1000,
                      duration_ms=500.0, billed_ms=510),))
    print(render_text(estimate(m, PRICES, memory_sizes=[128, 256, 512, 1024])))
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from streamline.local.api_calls import ESM, CallKey, CallTally

__all__ = [
    "API_ROUND_TRIP_MS",
    "VCPU_MEMORY_MB",
    "CostReport",
    "FunctionUsage",
    "LineItem",
    "Measurement",
    "MemoryRow",
    "RecoveryRun",
    "Scenario",
    "fit_overhead",
    "invocation_ms",
    "one_call_per_record",
    "split_recovery",
    "vcpu_share",
]

#: Memory at which a function has one full vCPU (AWS Lambda memory and CPU documentation).
VCPU_MEMORY_MB = 1769
#: Assumed wait for one AWS API call from Lambda in the same region (an estimate, not measured).
API_ROUND_TRIP_MS = 10.0
# Batch operations and what the same work is, one record per call.
_SINGLE = {
    ("kinesis", "PutRecords"): "PutRecord",
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
    ("dynamodb", "BatchWriteItem"): "PutItem",
    ("dynamodb", "BatchGetItem"): "GetItem",
    ("events", "PutEvents"): "PutEvents",
}


@dataclass(frozen=True, slots=True)
class FunctionUsage:
    """One function's measured work in the window (sums over its REPORT lines)."""

    name: str
    stage: str
    memory_mb: int
    architecture: str = "arm64"
    invocations: int = 0
    records: int = 0  # records handled (EMF counts); 0: one per invocation
    duration_ms: float = 0.0  # sum of REPORT Duration
    billed_ms: float = 0.0  # sum of REPORT Billed Duration
    init_ms: tuple[float, ...] = ()  # Init Duration of each cold start
    init_in_billed: bool = False  # the billed durations already include INIT
    max_memory_used_mb: int = 0
    fixed_ms: float | None = None  # per-invocation overhead (fit_overhead); None: not known
    per_record_ms: float | None = None
    log_bytes: int = 0  # ingested, as CloudWatch Logs meters it
    per_invocation_log_bytes: int = 0  # the part written once per invocation
    calls: int = 0  # the function's own AWS API calls
    cpu_ms: float | None = None  # CPU time of the invocations on one unthrottled core, if known
    errors: int = 0
    success_to_bus: bool = False  # Destinations: OnSuccess sends one event bus event each
    starts_traces: bool = False  # invoked by an event source mapping: a new trace per invocation

    @property
    def handled(self) -> int:
        """Records handled (one per invocation when the function reports none)."""
        return self.records or self.invocations


@dataclass(frozen=True, slots=True)
class RecoveryRun:
    """One execution of the recovery workflow: the state transitions AWS bills for it, and the
    failed records it handled (replayed or quarantined)."""

    transitions: int
    records: int


@dataclass(frozen=True)
class Measurement:
    """What the cost model prices. ``origin`` is ``"local"`` or ``"aws"`` (see module doc)."""

    events: int
    window_seconds: float
    functions: tuple[FunctionUsage, ...]
    calls: Mapping[CallKey, CallTally] = field(default_factory=dict)
    calls_measured: bool = True
    origin: str = "local"
    state_transitions: int = 0
    traces: int = 0
    custom_metrics: int = 0
    kinesis_shards: int = 0
    kinesis_retention_hours: int = 24
    sqs_mappings: tuple[bool, ...] = ()  # one per SQS event source mapping: is its queue FIFO
    eventbridge_events: int = 0  # estimated: Destinations OnSuccess records to the audit bus
    #: The recovery workflow's executions in the window (their histories), and how many times a
    #: month its schedule starts it (None when the schedule was not read).
    recovery_runs: tuple[RecoveryRun, ...] = ()
    recovery_runs_per_month: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def failed_records(self) -> int:
        """Failed records the recovery workflow handled in the window."""
        return sum(run.records for run in self.recovery_runs)


@dataclass(frozen=True, slots=True)
class LineItem:
    """One charge: ``quantity`` ``unit`` costing ``cost`` dollars over the window."""

    name: str
    quantity: float
    unit: str
    cost: float
    per_million: float
    basis: str  # "measured", "estimated" or "fixed"
    note: str = ""


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """One function at one memory size; the ``"pipeline"`` rows sum the functions.

    ``duration_ms`` is the mean invocation's; on a pipeline row, Lambda milliseconds per event.
    """

    function: str
    memory_mb: int
    duration_ms: float
    per_million: float
    fits: bool  # memory size at least the peak memory the function used
    cheapest: bool = False
    fastest: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    """Dollars per million events at a stated fault rate and traffic, fixed charges included."""

    faults: str  # e.g. "0%", "1% poison + 5% transient", "measured 1.6%"
    failed_per_event: float  # records reaching the failure queues, per event
    events_per_second: float
    per_million: float


@dataclass(frozen=True)
class CostReport:
    """Line items per million events, the one-call-per-record baseline, fixed monthly charges."""

    events: int
    window_seconds: float
    origin: str
    price_date: str
    region: str
    items: tuple[LineItem, ...]
    baseline_items: tuple[LineItem, ...]
    fixed_monthly: tuple[LineItem, ...]
    functions: tuple[FunctionUsage, ...]
    memory_rows: tuple[MemoryRow, ...] = ()
    unpriced: tuple[tuple[str, str, int], ...] = ()  # (service, operation, calls)
    assumptions: tuple[str, ...] = ()
    scenarios: tuple[Scenario, ...] = ()

    @property
    def per_million_total(self) -> float:
        """Usage-based dollars per million events (fixed monthly charges excluded)."""
        return sum(item.per_million for item in self.items)

    @property
    def baseline_per_million_total(self) -> float:
        return sum(item.per_million for item in self.baseline_items)

    @property
    def ratio(self) -> float | None:
        """How many times the one-call-per-record pipeline costs (None when ours is free)."""
        total = self.per_million_total
        return self.baseline_per_million_total / total if total > 0 else None

    @property
    def fixed_monthly_total(self) -> float:
        return sum(item.cost for item in self.fixed_monthly)

    @property
    def events_per_second(self) -> float:
        return self.events / self.window_seconds if self.window_seconds > 0 else 0.0


def fit_overhead(samples: Sequence[tuple[float, int]]) -> tuple[float, float, str | None]:
    """Split invocation durations into a fixed part and a per-record part (least squares).

    ``samples`` are ``(duration_ms, records)`` per invocation. Returns ``(fixed_ms,
    per_record_ms, note)``; when batch sizes do not vary, the split cannot be measured and all
    of the duration is taken as per-record (no fixed overhead: the smallest possible saving).

    Example::

        >>> fit_overhead([(12.0, 1), (30.0, 10), (20.0, 5)])[:2]
        (10.0, 2.0)
    """
    points = [(d, r) for d, r in samples if r > 0]
    if not points:
        return 0.0, 0.0, "no invocation reported its records"
    return _line_fit(points, "batch sizes did not vary: no fixed overhead assumed")


def split_recovery(runs: Sequence[RecoveryRun]) -> tuple[float, float, str | None]:
    """Split the recovery workflow's transitions into a part per run and a part per record.

    Returns ``(transitions per run, transitions per failed record, note)`` by least squares over
    the runs, empty runs (a scheduled run that finds nothing) included: that base is what the
    schedule costs whether or not anything fails.

    Example::

        >>> split_recovery([RecoveryRun(12, 0), RecoveryRun(42, 3), RecoveryRun(72, 6)])[:2]
        (12.0, 10.0)
    """
    points = [(float(run.transitions), run.records) for run in runs]
    if not points:
        return 0.0, 0.0, "no recovery run in the window"
    if all(records == 0 for _, records in points):
        base = sum(t for t, _ in points) / len(points)
        return base, 0.0, "no run handled a failed record: transitions per record not measured"
    return _line_fit(
        points,
        "every run handled as many records: no per-run base could be told apart, all of it "
        "is counted per record",
    )


def _line_fit(
    points: Sequence[tuple[float, int]], flat_note: str
) -> tuple[float, float, str | None]:
    """Least squares ``y = fixed + slope x`` over ``(y, x)`` points, neither part negative."""
    n = len(points)
    mean_x = sum(x for _, x in points) / n
    mean_y = sum(y for y, _ in points) / n
    spread = sum((x - mean_x) ** 2 for _, x in points)
    if spread == 0:
        return 0.0, mean_y / mean_x, flat_note
    slope = sum((x - mean_x) * (y - mean_y) for y, x in points) / spread
    fixed = mean_y - slope * mean_x
    if fixed < 0:
        return 0.0, mean_y / mean_x, "fit gave a negative overhead: none assumed"
    if slope < 0:
        return mean_y, 0.0, "fit gave a negative per-record part: all taken as overhead"
    return fixed, slope, None


def vcpu_share(memory_mb: int) -> float:
    """The share of one vCPU a function gets at ``memory_mb``."""
    return min(memory_mb, VCPU_MEMORY_MB) / VCPU_MEMORY_MB


def invocation_ms(
    fn: FunctionUsage, memory_mb: int, round_trip_ms: float = API_ROUND_TRIP_MS
) -> float:
    """Estimated mean duration of one of ``fn``'s invocations on AWS at ``memory_mb``.

    The measured mean is split into CPU and I/O wait (module doc); the CPU part is rescaled from
    the vCPU share it ran at to the share at ``memory_mb``.
    """
    if fn.invocations <= 0:
        return 0.0
    calls = fn.calls / fn.invocations
    if fn.cpu_ms is not None:
        # CPU time from one unthrottled core (= 1 vCPU); AWS adds the network wait.
        return fn.cpu_ms / fn.invocations / vcpu_share(memory_mb) + calls * round_trip_ms
    measured = fn.duration_ms / fn.invocations
    io_wait = min(calls * round_trip_ms, measured)
    cpu = measured - io_wait
    return cpu * vcpu_share(fn.memory_mb) / vcpu_share(memory_mb) + io_wait


def one_call_per_record(measurement: Measurement) -> Measurement:
    """The same work with batch size 1: an invocation and a call per record.

    Each invocation then handles one record and pays the fixed overhead measured from the
    REPORT lines (``fixed_ms``) once per record; the function's own calls, INIT and log lines
    written per record stay as measured; the lines written per invocation (START/END/REPORT,
    EMF) are written per record; each extra invocation of a function an event source mapping
    invokes starts a trace (with no function so marked, traces grow with all invocations); an
    OnSuccess event is sent per record.
    """
    functions: list[FunctionUsage] = []
    invocations_before = invocations_after = 0
    for fn in measurement.functions:
        records = fn.handled
        invocations_before += fn.invocations
        invocations_after += records
        if fn.invocations <= 0 or records <= fn.invocations:
            functions.append(fn)
            continue
        fixed = fn.fixed_ms if fn.fixed_ms is not None else 0.0
        per_record = (
            fn.per_record_ms
            if fn.per_record_ms is not None
            else (fn.duration_ms / records if records else 0.0)
        )
        single = fixed + per_record
        init_billed = sum(fn.init_ms) if fn.init_in_billed else 0.0
        # CPU time keeps its measured share of the duration.
        cpu = (
            fn.cpu_ms / fn.duration_ms * single * records
            if fn.cpu_ms is not None and fn.duration_ms > 0
            else fn.cpu_ms
        )
        per_invocation_bytes = fn.per_invocation_log_bytes / fn.invocations
        functions.append(
            replace(
                fn,
                invocations=records,
                records=records,
                duration_ms=single * records,
                billed_ms=max(1, math.ceil(single)) * records + init_billed,
                fixed_ms=single,
                per_record_ms=0.0,
                log_bytes=fn.log_bytes + round(per_invocation_bytes * (records - fn.invocations)),
                per_invocation_log_bytes=round(per_invocation_bytes * records),
                cpu_ms=cpu,
            )
        )
    calls = _calls_one_per_record(measurement.calls, measurement.functions)
    traces = measurement.traces
    mapped = [fn for fn in measurement.functions if fn.starts_traces]
    if mapped:
        # AWS starts a trace for each invocation an event source mapping makes (an SQS batch's
        # is linked to its messages' traces, not continued); an asynchronous Invoke continues
        # its caller's trace. So each extra invocation of a mapped function is a trace more.
        traces += sum(max(0, fn.handled - fn.invocations) for fn in mapped)
    elif invocations_before > 0:
        # Not known which functions start traces: grow with all invocations.
        traces = round(traces * invocations_after / invocations_before)
    # An OnSuccess event per invocation: per record, once each record is an invocation.
    to_bus = [fn for fn in measurement.functions if fn.success_to_bus and fn.invocations > 0]
    bus_events = measurement.eventbridge_events
    if to_bus:
        growth = sum(fn.handled for fn in to_bus) / sum(fn.invocations for fn in to_bus)
        bus_events = round(bus_events * max(1.0, growth))
    return replace(
        measurement,
        functions=tuple(functions),
        calls=calls,
        traces=traces,
        eventbridge_events=bus_events,
    )


def _calls_one_per_record(
    calls: Mapping[CallKey, CallTally], functions: Sequence[FunctionUsage]
) -> dict[CallKey, CallTally]:
    per_invocation_growth = {
        fn.name: fn.handled / fn.invocations for fn in functions if fn.invocations > 0
    }
    result: dict[CallKey, CallTally] = defaultdict(CallTally)
    for (caller, service, operation), tally in calls.items():
        single = _SINGLE.get((service, operation))
        receive = (caller, service, operation) == (ESM, "sqs", "ReceiveMessage")
        if single is not None or receive:
            # One call per record; each call meters at least one unit.
            items = max(tally.items, tally.calls)
            units = max(tally.units, items)
            fifo = round(units * tally.fifo_units / tally.units) if tally.units else 0
            key = (caller, service, single or operation)
            result[key] = result[key] + replace(
                tally, calls=items, items=items, units=units, fifo_units=fifo
            )
        elif (service, operation) == ("cloudwatch", "PutMetricData"):
            growth = per_invocation_growth.get(caller, 1.0)
            key = (caller, service, operation)
            result[key] = result[key] + replace(
                tally, calls=round(tally.calls * growth), units=round(tally.units * growth)
            )
        else:
            key = (caller, service, operation)
            result[key] = result[key] + tally
    return dict(result)
