"""Watching the demo's pipeline: progress lines, the wait loop's pace, and what the run left.

:mod:`streamline.demo.run` drives a run (deploy, produce, recover, judge); this module only
looks. It prints the run's steps with their times (:class:`Progress`), paces the wait for the
pipeline to go idle with a deadline on *progress*, not on the clock, and a backlog line now and
then (:class:`Watch`), and reads what the run left: the effects table (the sink), quarantined
records, failure queue depths, the stages' metrics and API calls, latencies, cold starts and
the cost. Nothing here changes the cloud.

The crash tests drive a cloud in another process (:class:`~streamline.local.remote.RemoteCloud`)
with the same helpers, so the functions they call take either kind of cloud.

Example::

    watch = Watch(cloud, timeout=300.0, out=print, report_every=15.0)
    while not settled(cloud, outputs):
        if watch.stalled(lambda: activity(cloud)):
            raise RuntimeError("no progress")
        watch.report("waiting")
        watch.pause()
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from streamline.demo.conservation import Effect, Quarantined, event_ids_in
from streamline.demo.report import ColdStarts, StageCounts, percentile
from streamline.topology import failure_queue_names, function_outputs

if TYPE_CHECKING:
    from typing import TypeAlias

    from streamline.local.cloud import LocalCloud
    from streamline.local.remote import RemoteCloud

    #: The in-process cloud, or a detached one seen over its status endpoint (crash tests).
    Cloud: TypeAlias = LocalCloud | RemoteCloud

__all__ = [
    "FAILURE_QUEUES",
    "STAGES",
    "Progress",
    "Watch",
    "activity",
    "api_calls_since",
    "backlog",
    "cold_starts_and_cost",
    "failure_queue_depths",
    "latencies",
    "quarantined_records",
    "scan_table",
    "settled",
    "stage_counts",
    "wait_for_interrupt",
]

#: The processors, by the stack output naming their function.
STAGES = function_outputs()
#: Where failures wait for recovery (stack output -> short name).
FAILURE_QUEUES = failure_queue_names()


class Progress:
    """The run's step lines (``[  12.3 s] message``) and how long each step took."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self.out = out
        self.started = time.monotonic()
        self.steps: dict[str, float] = {}
        self._step_start = self.started

    def step(self, name: str, message: str) -> None:
        self.out(f"[{time.monotonic() - self.started:6.1f} s] {message}")
        self._current = name
        self._step_start = time.monotonic()

    def done(self) -> None:
        self.steps[self._current] = time.monotonic() - self._step_start


def wait_for_interrupt() -> None:
    """Block until Ctrl-C (``--keep-running``)."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


class Watch:
    """The pace of a wait loop over a busy pipeline.

    :meth:`stalled` is true once what it is shown has not changed for ``timeout`` seconds (it
    looks every 2 s); :meth:`report` prints the backlog every ``report_every`` seconds;
    :meth:`pause` runs ``on_wait(cloud)`` (tests advance a manual clock there) and waits 0.5 s.
    """

    def __init__(
        self,
        cloud: Cloud,
        *,
        timeout: float,
        out: Callable[[str], None],
        report_every: float,
        on_wait: Callable[[Any], None] | None = None,
    ) -> None:
        self.cloud = cloud
        self.timeout = timeout
        self.out = out
        self.report_every = report_every
        self.on_wait = on_wait
        self._deadline = time.monotonic() + timeout
        self._next_report = time.monotonic() + report_every
        self._next_check = 0.0
        self._seen: tuple[Any, ...] = ()

    def stalled(self, fingerprint: Callable[[], tuple[Any, ...]]) -> bool:
        now = time.monotonic()
        if now >= self._next_check:
            # A deadline on progress, not on the clock: a loaded machine is slow, not stuck.
            self._next_check = now + 2.0
            current = fingerprint()
            if current != self._seen:
                self._seen, self._deadline = current, now + self.timeout
        return now > self._deadline

    def report(self, so_far: str) -> None:
        if time.monotonic() >= self._next_report:
            self._next_report += self.report_every
            self.out(f"           still busy: {backlog(self.cloud)}; {so_far}")

    def pause(self) -> None:
        if self.on_wait is not None:
            self.on_wait(self.cloud)
        time.sleep(0.5)


def activity(cloud: Cloud) -> tuple[Any, ...]:
    """What changes while the pipeline works: each mapping's position and counts, async events."""
    mappings = cloud.esm.status() if cloud.esm is not None else []
    positions = tuple(
        (m.get("uuid"), str(m.get("position")), m.get("succeeded"), m.get("backlog"))
        for m in mappings
        if isinstance(m, dict)
    )
    queued = cloud.async_engine.status() if cloud.async_engine is not None else {}
    return (positions, queued.get("invocations"), queued.get("queued"))


def backlog(cloud: Cloud) -> str:
    """Records left in the event sources and async events not yet delivered, as a phrase."""
    mappings: Any = cloud.esm.status() if cloud.esm is not None else []
    if isinstance(mappings, dict):
        mappings = mappings.get("mappings", [])
    records = sum(int(m.get("backlog") or 0) for m in mappings)
    queued = cloud.async_engine.status() if cloud.async_engine is not None else {}
    pending = int(queued.get("queued", 0)) + int(queued.get("in_flight", 0))
    return f"{records} records in sources, {pending} async events"


def failure_queue_depths(
    cloud: Cloud, outputs: Mapping[str, str], sqs: Any | None = None
) -> dict[str, int]:
    """Messages (visible or in flight) in each failure queue, by short name."""
    sqs = sqs or cloud.client("sqs")
    depths: dict[str, int] = {}
    for output, name in FAILURE_QUEUES.items():
        attributes = sqs.get_queue_attributes(
            QueueUrl=outputs[output],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depths[name] = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
    return depths


def settled(cloud: Cloud, outputs: Mapping[str, str], sqs: Any | None = None) -> bool:
    """Idle (within 2 s) and, after that, every failure queue empty."""
    try:
        cloud.wait_idle(timeout=2.0)
    except TimeoutError:
        return False
    return not any(failure_queue_depths(cloud, outputs, sqs).values())


def scan_table(cloud: Cloud, table: str) -> list[dict[str, Any]]:
    """Every item of ``table``, each attribute's value without its type."""
    items: list[dict[str, Any]] = []
    for page in cloud.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        items += [{k: next(iter(v.values())) for k, v in item.items()} for item in page["Items"]]
    return items


def quarantined_records(cloud: Cloud, outputs: Mapping[str, str]) -> list[Quarantined]:
    """The records the recovery ledger quarantined, with the reason and events in each one."""
    s3 = cloud.client("s3")
    found: list[Quarantined] = []
    for item in scan_table(cloud, outputs["RecoveryTableName"]):
        if item.get("state") != "QUARANTINED" or not item.get("s3_key"):
            continue
        body = s3.get_object(Bucket=outputs["QuarantineBucketName"], Key=item["s3_key"])["Body"]
        document = json.loads(body.read())
        found.append(
            Quarantined(
                record_id=str(item["record_id"]),
                reason=str(document.get("reason") or item.get("reason") or ""),
                event_ids=event_ids_in(document),
            )
        )
    return found


def api_calls_since(calls_before: Mapping[tuple[str, str, str], int]) -> dict[str, int]:
    """API calls the local cloud counted since ``calls_before``, by caller."""
    from streamline.local.api_calls import API_CALLS

    calls: dict[str, int] = defaultdict(int)
    for (caller, _service, _operation), count in API_CALLS.snapshot().items():
        calls[caller] += count - calls_before.get((caller, _service, _operation), 0)
    return calls


def _metric_sum(
    cloud: LocalCloud, namespace: str, name: str, dims: Mapping[str, str], start: float
) -> int:
    response = cloud.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=datetime.fromtimestamp(start - 60, tz=UTC),
        EndTime=datetime.fromtimestamp(cloud.clock.now() + 60, tz=UTC),
        Period=86400,
        Statistics=["Sum"],
    )
    return int(sum(point["Sum"] for point in response["Datapoints"]))


def stage_counts(
    cloud: LocalCloud, outputs: Mapping[str, str], window_start: float, calls: Mapping[str, int]
) -> list[StageCounts]:
    """Each stage's invocations and records (from its metrics since ``window_start``)."""
    stages: list[StageCounts] = []
    for stage, output in STAGES.items():
        function = outputs[output]
        stages.append(
            StageCounts(
                stage=stage,
                invocations=_metric_sum(
                    cloud, "AWS/Lambda", "Invocations", {"FunctionName": function}, window_start
                ),
                records_processed=_metric_sum(
                    cloud, "Streamline", "RecordsProcessed", {"service": stage}, window_start
                ),
                records_failed=_metric_sum(
                    cloud, "Streamline", "RecordsFailed", {"service": stage}, window_start
                ),
                records_poisoned=_metric_sum(
                    cloud, "Streamline", "RecordsPoisoned", {"service": stage}, window_start
                ),
                api_calls=calls.get(function, 0),
            )
        )
    return stages


def latencies(
    effects: Sequence[Effect], by_path: Mapping[str, Sequence[Any]], sent_at: Mapping[str, float]
) -> dict[str, float | None]:
    """Send-to-effect latency percentiles (ms): first pass, and events replayed after a fault."""
    buckets: dict[str, list[float]] = defaultdict(list)
    first_effect: dict[str, float] = {}
    for effect in effects:
        if effect.event_id in sent_at and effect.created_at:
            at = datetime.fromisoformat(effect.created_at).timestamp()
            first_effect[effect.event_id] = max(first_effect.get(effect.event_id, 0.0), at)
    transient = {e.event_id for events in by_path.values() for e in events if e.fault != "none"}
    for event_id, at in first_effect.items():
        bucket = "replayed" if event_id in transient else "first pass"
        buckets[bucket].append((at - sent_at[event_id]) * 1000.0)
    return {
        "p50": percentile(buckets["first pass"], 50),
        "p99": percentile(buckets["first pass"], 99),
        "p50 after replay": percentile(buckets["replayed"], 50),
    }


def cold_starts_and_cost(
    cloud: LocalCloud, outputs: Mapping[str, str], window_start: float, events: int
) -> tuple[list[ColdStarts], float | None, float | None, str]:
    """Cold starts per stage (REPORT lines), and the window's cost per million events: ours,
    the one-call-per-record baseline's, and the cost table as text."""
    from streamline.cost.measure import collect_reports, measure
    from streamline.cost.prices import PRICES
    from streamline.cost.pricing import estimate
    from streamline.cost.render import render_text
    from streamline.local.api_calls import API_CALLS
    from streamline.ops.target import Target

    target = Target(cloud.endpoint_url, None, None, "dev")
    since = datetime.fromtimestamp(window_start, tz=UTC) - timedelta(seconds=5)
    functions = [outputs[o] for o in STAGES.values()]
    reports = collect_reports(target, functions, since)
    stage_of = {outputs[output]: stage for stage, output in STAGES.items()}
    starts: dict[str, ColdStarts] = {}
    for report in reports:
        if report.init_ms is not None:
            name = stage_of.get(report.function, report.function)
            entry = starts.setdefault(name, ColdStarts(name, 0))
            entry.count += 1
            entry.init_ms.append(report.init_ms)
    measurement = measure(target, since=since, events=events, api_calls=API_CALLS)
    cost = estimate(measurement, PRICES)
    return (
        [starts[stage] for stage in STAGES if stage in starts],
        cost.per_million_total,
        cost.baseline_per_million_total,
        render_text(cost),
    )
