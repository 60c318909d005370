"""The main job, `make demo`: the whole pipeline on the local cloud, end to end, with a verdict.

Steps: start the embedded local cloud, `cdk deploy` this app into it unchanged, produce order
events through every path (Kinesis -> ingest; items into the orders table -> its stream ->
changes; tasks straight into the SQS queues -> fulfil / notify) with injected poison and
transient faults, wait until the pipeline is idle, run the recovery workflow until the failure
queues are drained, then summarise what happened and check conservation: every event is in the
sink exactly once or quarantined with its reason. Exit status 1 when that check fails.
This module drives the run; :mod:`streamline.demo.observe` watches it and reads what it left.
It stays one module of ~510 lines because the run's phases (start, deploy, produce, process and
recover, collect) are one sequence a reader follows top to bottom.

Example::

    streamline demo                            # 5,000 events, 1% poison, 5% transient
    streamline demo --events 500 --json out.json --keep-running
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamline.demo.conservation import DYNAMODB, KINESIS, SQS, Effect, check
from streamline.demo.observe import (
    Progress,
    Watch,
    activity,
    api_calls_since,
    cold_starts_and_cost,
    failure_queue_depths,
    latencies,
    quarantined_records,
    scan_table,
    settled,
    stage_counts,
    wait_for_interrupt,
)
from streamline.demo.report import Summary
from streamline.local.state import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from streamline.demo.observe import Cloud
    from streamline.local.cloud import LocalCloud

__all__ = [
    "DemoError",
    "DemoOptions",
    "RecoveryTally",
    "path_producers",
    "process_and_recover",
    "run_demo",
    "run_pipeline",
    "split_paths",
]

#: Which share of the orders takes each path (orders never change path mid-lifecycle).
PATH_SHARES = {KINESIS: 0.7, DYNAMODB: 0.15, SQS: 0.15}
#: Recovery passes at most: a replayed record that fails again is seen by the next pass.
MAX_RECOVERY_PASSES = 12
#: Executions started at once in one pass (each drains up to 10 messages per failure queue).
MAX_CONCURRENT_RECOVERIES = 4
#: Share of the transient faults that outlast the mapping's retries (the rest are retried
#: through by the mapping itself, as most transient faults are), and how long they last.
LONG_TRANSIENT_SHARE = 0.2
LONG_TRANSIENT = timedelta(seconds=30)


class DemoError(Exception):
    """The demo could not run (not its verdict): printed as one line, exit status 2."""


@dataclass
class DemoOptions:
    events: int = 5000
    poison_rate: float = 0.01
    transient_rate: float = 0.05
    #: How long a transient fault lasts (a share of them lasts longer: LONG_TRANSIENT).
    transient_for: float = 2.0
    seed: int | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    port: int | None = None
    app_dir: Path | None = None
    timeout: float = 300.0
    keep_running: bool = False
    json_path: Path | None = None


def project_root() -> Path:
    """The checkout holding cdk.json (the demo deploys this app, unchanged)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "cdk.json").exists() and (parent / "app.py").exists():
            return parent
    raise DemoError("cannot find the Streamline checkout (cdk.json) above " + str(here))


def split_paths(
    planned: Sequence[Any], shares: Mapping[str, float], rng: random.Random
) -> dict[str, list[Any]]:
    """Give each order one path; orders with a transient fault go through Kinesis.

    Only ingest honours ``chaos`` (it is an order event field; orders items and tasks have no
    such field), so a transient fault means something only on the Kinesis path. Event order
    within an order is kept.
    """
    orders: dict[str, list[Any]] = defaultdict(list)
    for event in planned:
        orders[event.order_id].append(event)
    paths = list(shares)
    weights = [shares[p] for p in paths]
    result: dict[str, list[Any]] = {path: [] for path in paths}
    for events in orders.values():
        transient = any(e.fault == "transient" for e in events)
        path = KINESIS if transient else rng.choices(paths, weights)[0]
        result[path].extend(events)
    return result


def lengthen_some_transients(planned: Sequence[Any], rng: random.Random) -> tuple[list[Any], int]:
    """Make ``LONG_TRANSIENT_SHARE`` of the transient faults last ``LONG_TRANSIENT``.

    A short fault is retried through by the event source mapping; a long one exhausts its
    retries, lands in the failure queue as AWS's on-failure record, and is replayed by the
    recovery workflow once it has passed: the demo shows both paths. Returns the events and
    how many were lengthened.
    """
    result = list(planned)
    lengthened = 0
    for index, event in enumerate(result):
        if event.fault == "transient" and rng.random() < LONG_TRANSIENT_SHARE:
            until = datetime.fromisoformat(event.payload["chaos"]["transient_until"])
            payload = {
                **event.payload,
                "chaos": {"transient_until": (until + LONG_TRANSIENT).isoformat()},
            }
            result[index] = dataclasses.replace(event, payload=payload)
            lengthened += 1
    return result, lengthened


def run_demo(
    options: DemoOptions,
    out: Callable[[str], None] = print,
    on_summary: Callable[[Summary], None] | None = None,
) -> Summary:
    """Run the demo; returns its summary (``summary.ok`` is the conservation verdict).

    ``on_summary`` sees the summary while the cloud still runs (before ``keep_running`` waits).
    """
    from streamline.local.cloud import LocalCloud
    from streamline.local.server import PortInUseError
    from streamline.local.state import StaleStateError, StateDir

    if options.events < 1:
        raise DemoError("--events must be at least 1")
    for name, rate in (("poison", options.poison_rate), ("transient", options.transient_rate)):
        if not 0.0 <= rate <= 0.5:
            raise DemoError(f"--{name}-rate must be between 0 and 0.5 (got {rate})")
    if not options.timeout > 0:
        raise DemoError(f"--timeout must be more than 0 seconds (got {options.timeout})")
    if options.json_path is not None and not options.json_path.resolve().parent.is_dir():
        raise DemoError(f"--json {options.json_path}: its folder does not exist")
    app = options.app_dir or project_root()
    state = StateDir(options.state_dir).ensure()  # a bad state dir fails before any work
    try:
        running = state.running()
    except StaleStateError:
        state.clear()
        running = None
    if running is not None:
        raise DemoError(
            f"a local cloud is already running at {running.endpoint_url} (state dir "
            f"{state.root}); stop it with `streamline local down` or pass --state-dir"
        )

    progress = Progress(out)
    progress.step("start", "starting the local cloud (moto server + Lambda runtime + ESM engine)")
    cloud = LocalCloud(port=options.port, state_dir=state.root, publish=True)
    try:
        cloud.start()
    except PortInUseError as exc:
        raise DemoError(str(exc.strerror)) from None
    try:
        progress.done()
        summary = _run(cloud, app, options, progress)
        if on_summary is not None:
            on_summary(summary)
        if options.keep_running:
            out(
                f"\nThe local cloud keeps running at {cloud.endpoint_url}. In another terminal:\n"
                "  .venv/bin/streamline dashboard      # the deployed CloudWatch dashboard\n"
                "  .venv/bin/streamline status         # backlog, DLQs, last errors\n"
                "Ctrl-C here stops it."
            )
            wait_for_interrupt()
        return summary
    finally:
        cloud.stop()


def _run(cloud: LocalCloud, app: Path, options: DemoOptions, progress: Progress) -> Summary:
    progress.step("deploy", f"cdk deploy {app.name} (4 stacks) into {cloud.endpoint_url}")
    outputs: dict[str, str] = {}
    for stack_outputs in cloud.deploy(app).values():
        outputs.update(stack_outputs)
    progress.done()
    return run_pipeline(cloud, outputs, options, progress=progress)


def run_pipeline(
    cloud: LocalCloud,
    outputs: Mapping[str, str],
    options: DemoOptions,
    *,
    progress: Progress | None = None,
    out: Callable[[str], None] = print,
    planned: Sequence[Any] | None = None,
    after_produce: Callable[[Any], Any] | None = None,
) -> Summary:
    """Produce, drain, recover and check on a cloud where the pipeline is already deployed.

    ``outputs`` are the merged stack outputs. The end-to-end tests call this directly on their
    own cloud; ``planned`` replaces the generated events; ``after_produce(cloud)`` runs once
    everything is sent and may return another cloud to go on with (a restarted one).
    """
    from streamline.local.api_calls import API_CALLS
    from streamline.producers import generate_events

    progress = progress or Progress(out)
    window_start = cloud.clock.now()
    calls_before = API_CALLS.snapshot()

    if planned is None:
        planned = generate_events(
            options.events,
            poison_rate=options.poison_rate,
            transient_rate=options.transient_rate,
            transient_for=timedelta(seconds=options.transient_for),
            seed=options.seed,
        )
        planned, long_transients = lengthen_some_transients(planned, random.Random(options.seed))
    else:
        long_transients = 0
    by_path = split_paths(planned, PATH_SHARES, random.Random(options.seed))
    faults = {kind: sum(1 for p in planned if p.fault == kind) for kind in ("poison", "transient")}
    faults["transient outlasting retries"] = long_transients
    progress.step(
        "produce",
        f"producing {len(planned)} events: "
        + ", ".join(f"{path} {len(events)}" for path, events in by_path.items())
        + f" (poison {faults['poison']}, transient {faults['transient']})",
    )
    sent_at = _produce(cloud, outputs, by_path, progress.out)
    progress.done()
    if after_produce is not None:
        cloud = after_produce(cloud) or cloud

    progress.step(
        "process",
        "processing until idle; the recovery workflow runs once the fault windows have passed",
    )
    windows = [
        datetime.fromisoformat(p.payload["chaos"]["transient_until"]).timestamp()
        for p in planned
        if p.fault == "transient" and isinstance(p.payload.get("chaos"), dict)
    ]
    tally = process_and_recover(
        cloud,
        outputs,
        timeout=options.timeout,
        recover_from=max(windows, default=0.0) + 0.2,
        out=progress.out,
    )
    progress.done()

    progress.step("collect", "collecting effects, quarantine, queues, metrics and costs")
    summary = _collect(
        cloud,
        outputs,
        by_path,
        sent_at,
        faults,
        window_start,
        calls_before,
        tally,
    )
    progress.done()
    summary.seconds = {**progress.steps, "total": time.monotonic() - progress.started}
    return summary


def path_producers(cloud: Cloud, outputs: Mapping[str, str]) -> dict[str, list[Any]]:
    """The producers of each path into the deployed pipeline (see :data:`PATH_SHARES`)."""
    from streamline.producers import DynamoDbProducer, KinesisProducer, SqsProducer

    sqs = cloud.client("sqs")
    # The SQS path feeds both queues, as `changes` does: a notification per status change
    # into the standard queue, a fulfilment per newly paid order into the FIFO queue.
    return {
        KINESIS: [KinesisProducer(cloud.client("kinesis"), outputs["OrderEventsStreamName"])],
        DYNAMODB: [DynamoDbProducer(cloud.client("dynamodb"), outputs["OrdersTableName"])],
        SQS: [
            SqsProducer(sqs, outputs["NotificationsQueueUrl"], task="notify"),
            SqsProducer(sqs, outputs["FulfilmentQueueUrl"], task="fulfil"),
        ],
    }


def _produce(
    cloud: Cloud,
    outputs: Mapping[str, str],
    by_path: Mapping[str, Sequence[Any]],
    out: Callable[[str], None],
) -> dict[str, float]:
    """Send each path's events in chunks; returns each event's send time (epoch seconds)."""
    producers = path_producers(cloud, outputs)
    sent_at: dict[str, float] = {}
    failed: list[str] = []
    for path, events in by_path.items():
        chunk = 500
        for start in range(0, len(events), chunk):
            part = events[start : start + chunk]
            now = time.time()
            for producer in producers[path]:
                report = producer.send(part)
                failed += [f"{path}: {f.event_id} {f.code} {f.message}" for f in report.failed]
            for event in part:
                sent_at[event.event_id] = now
        out(f"           {path}: {len(events)} sent")
    if failed:
        # The producers retry partial failures; what is left is real and would break the check.
        raise DemoError(f"{len(failed)} events could not be sent, first: {failed[0]}")
    return sent_at


@dataclass
class RecoveryTally:
    """What the recovery executions of a run did, over all of them."""

    replayed: int = 0
    quarantined: int = 0
    executions: int = 0
    #: Executions that ended other than SUCCEEDED (RecoveryIncomplete: work left for a rerun).
    failed: list[str] = dataclasses.field(default_factory=list)


def process_and_recover(
    cloud: Cloud,
    outputs: Mapping[str, str],
    *,
    timeout: float,
    recover_from: float = 0.0,
    out: Callable[[str], None] = print,
    report_every: float = 15.0,
    max_idle_passes: int = MAX_RECOVERY_PASSES,
    on_wait: Callable[[Any], None] | None = None,
) -> RecoveryTally:
    """Wait until the pipeline is idle and the failure queues are empty, running the recovery
    workflow (as its schedule would on AWS) whenever a queue holds failures and no run is on.

    Recovery starts at ``recover_from`` (epoch seconds): a transient fault replayed inside its
    window would just fail again. An execution that ends FAILED left work behind (a record it
    could not settle); like the schedule, the next pass runs again, at most ``max_idle_passes``
    times once the pipeline is idle. ``on_wait(cloud)`` runs on every poll (tests advance a
    manual clock there). ``timeout`` is how long it may go without progress (records consumed,
    events invoked, recovery runs ending), not how long it may take.
    """
    sfn = cloud.client("stepfunctions")
    sqs = cloud.client("sqs")
    watch = Watch(cloud, timeout=timeout, out=out, report_every=report_every, on_wait=on_wait)
    running: list[str] = []
    tally = RecoveryTally()
    passes = idle_passes = 0
    while True:
        _settle_finished(sfn, running, tally)
        if not running and time.time() >= recover_from:
            depth = failure_queue_depths(cloud, outputs, sqs)
            busy = bool(cloud.busy())
            # While records still flow, wait for a full execution's worth (10 per queue) rather
            # than running for every stray message; once idle, run until the queues are empty.
            if any(depth.values()) and (not busy or max(depth.values()) >= 10):
                if not busy:
                    idle_passes += 1
                    if idle_passes > max_idle_passes:
                        raise DemoError(
                            f"failure queues still hold messages after {passes} recovery runs"
                            + (f" ({len(tally.failed)} failed)" if tally.failed else "")
                        )
                passes += 1
                running = _start_recoveries(sfn, outputs, depth, tally)
                queued = ", ".join(f"{name} {n}" for name, n in depth.items() if n)
                out(f"           recovery run {passes}: {len(running)} executions for {queued}")
            elif not busy and not any(depth.values()) and settled(cloud, outputs, sqs):
                return tally
        # Progress: records consumed, events invoked, recovery runs ending.
        if watch.stalled(
            lambda: (
                *activity(cloud),
                tally.executions,
                tally.replayed,
                tally.quarantined,
                len(tally.failed),
            )
        ):
            raise DemoError(
                f"the pipeline made no progress for {timeout:g} s: still busy {cloud.busy()}"
            )
        watch.report(f"replayed {tally.replayed}, quarantined {tally.quarantined} so far")
        watch.pause()


def _settle_finished(sfn: Any, running: list[str], tally: RecoveryTally) -> None:
    """Count what the recovery executions that ended did; drop them from ``running``."""
    for arn in list(running):
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] == "RUNNING":
            continue
        running.remove(arn)
        if execution["status"] != "SUCCEEDED":
            tally.failed.append(f"{arn.rsplit(':', 1)[-1]} {execution['status']}")
            continue
        result = json.loads(execution.get("output") or "{}")
        tally.replayed += int(result.get("replayed", 0))
        tally.quarantined += int(result.get("quarantined", 0))


def _start_recoveries(
    sfn: Any, outputs: Mapping[str, str], depth: Mapping[str, int], tally: RecoveryTally
) -> list[str]:
    """Start the recovery executions one pass needs; returns their ARNs."""
    # One execution drains up to 10 messages per failure queue (its state must stay small);
    # concurrent executions are safe (the ledger's conditional writes bound replays), so a deep
    # queue gets several at once.
    runs = max(1, min(MAX_CONCURRENT_RECOVERIES, -(-max(depth.values()) // 10)))
    started = [
        sfn.start_execution(
            stateMachineArn=outputs["RecoveryStateMachineArn"],
            input=json.dumps({"trigger": "streamline demo"}),
        )["executionArn"]
        for _ in range(runs)
    ]
    tally.executions += runs
    return started


def _collect(
    cloud: LocalCloud,
    outputs: Mapping[str, str],
    by_path: Mapping[str, Sequence[Any]],
    sent_at: Mapping[str, float],
    faults: Mapping[str, int],
    window_start: float,
    calls_before: Mapping[tuple[str, str, str], int],
    tally: RecoveryTally,
) -> Summary:
    cloud.metrics.flush()
    effects = [
        Effect(str(i["effect_id"]), str(i.get("event_id", "")), str(i.get("created_at", "")))
        for i in scan_table(cloud, outputs["EffectsTableName"])
    ]
    conservation = check(by_path, effects, quarantined_records(cloud, outputs))
    total = sum(len(events) for events in by_path.values())
    calls = api_calls_since(calls_before)
    stages = stage_counts(cloud, outputs, window_start, calls)
    latency = latencies(effects, by_path, sent_at)
    cold_starts, cost, baseline, table = cold_starts_and_cost(cloud, outputs, window_start, total)
    return Summary(
        produced={path: len(events) for path, events in by_path.items()},
        faults=dict(faults),
        stages=stages,
        replayed=tally.replayed,
        quarantined=tally.quarantined,
        recovery_failures=tally.failed,
        left_in_queues=failure_queue_depths(cloud, outputs),
        latency_ms=latency,
        cold_starts=cold_starts,
        cost_per_million=cost,
        baseline_cost_per_million=baseline,
        cost_table=table,
        conservation=conservation,
        seconds={},
        client_calls_per_event=calls.get("client", 0) / total if total else 0.0,
    )


def main_demo(options: DemoOptions) -> int:
    """Run and print; 0 when conservation holds, 1 when it does not."""

    def show(summary: Summary) -> None:
        print(summary.render())
        if options.json_path is not None:
            options.json_path.write_text(json.dumps(summary.as_json(), indent=2, default=str))
            print(f"summary written to {options.json_path}")
        sys.stdout.flush()

    summary = run_demo(options, on_summary=show)
    if not options.keep_running:
        print(
            "\nTo open the dashboard: run `make demo ARGS=--keep-running` (or "
            "`.venv/bin/streamline demo --keep-running`) and, while it waits, "
            "`.venv/bin/streamline dashboard` in another terminal."
        )
    sys.stdout.flush()
    return 0 if summary.ok else 1
