"""The whole pipeline on the local cloud: events/s end to end, latency, and where the CPU goes.

One run, one process, one cloud (moto's state is process-global):

1. start the local cloud and ``cdk deploy`` this app into it unchanged (as ``make demo`` does);
2. warm up with a small clean run, so the measured run sees warm environments, as a steady
   pipeline does;
3. the measured run: ``--events`` clean events (no injected faults) through every path, drained
   to idle, checked for conservation. Meanwhile a sampler reads the CPU time of every thread of
   this process (grouped by what the thread is: the moto server's request threads, the ESM
   engine, the async engine, the producers, ...) and of every function process;
4. the floor, against the same server in the same run: the API calls the pipeline made per
   event (counted by the cloud, by operation), each replayed with a plain boto3 client on
   scratch resources and its CPU measured (client and server, both in this process). That is
   what the pipeline's calls cost with nothing else around them.

Figures are per event; the ratio that matters is pipeline CPU per event over the floor's.

Run: ``.venv/bin/python bench/pipeline.py [--events 2000] [--warmup 200] [--json out.json]``.
Results and their history go in bench/README.md. It stays one script of about 520 lines: a bench
is run by path, and its samplers, floor and report are one measurement read top to bottom.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICK = os.sysconf("SC_CLK_TCK")

#: Thread-name prefixes -> component. Anything unnamed is a request thread of the HTTP server
#: (werkzeug starts one per connection, named "Thread-N (process_request_thread)").
COMPONENTS = (
    ("moto-http", "server: HTTP requests"),
    ("Thread-", "server: HTTP requests"),
    ("esm-", "ESM engine (pollers, invokes)"),
    ("async-", "async engine"),
    ("lambda-", "runtime (logs, reaper)"),
    ("metrics", "metrics, alarms, X-Ray"),
    ("alarm-", "metrics, alarms, X-Ray"),
    ("xray-", "metrics, alarms, X-Ray"),
    ("MainThread", "producers and observation"),
    ("dynamodb-producer", "producers and observation"),
)


def component_of(thread_name: str) -> str:
    for prefix, component in COMPONENTS:
        if thread_name.startswith(prefix):
            return component
    return "other threads"


def _ticks(stat_path: str) -> int | None:
    try:
        with open(stat_path) as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


class CpuSampler:
    """CPU seconds by component while running: this process's threads, and its children.

    Threads are sampled every ``interval`` seconds by native id (``/proc/self/task``); a thread
    that lives shorter than that is not seen, so what the process used beyond the sampled
    threads is reported as its own line. Child processes (function environments) likewise.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._threads: dict[int, tuple[str, int, int]] = {}  # tid -> (component, first, last)
        self._children: dict[int, tuple[int, int]] = {}  # pid -> (first, last)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._self_start = 0.0
        self.process_seconds = 0.0

    def start(self) -> None:
        self._self_start = _self_cpu()
        self._sample(first=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.process_seconds = _self_cpu() - self._self_start

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self, first: bool = False) -> None:
        for thread in threading.enumerate():
            tid = thread.native_id
            if tid is None or thread.name == "bench-sampler":
                continue
            ticks = _ticks(f"/proc/self/task/{tid}/stat")
            if ticks is None:
                continue
            known = self._threads.get(tid)
            start = known[1] if known else (ticks if first else 0)
            self._threads[tid] = (component_of(thread.name), start, ticks)
        for pid in _children(os.getpid()):
            ticks = _ticks(f"/proc/{pid}/stat")
            if ticks is None:
                continue
            previous = self._children.get(pid)
            start = previous[0] if previous else (ticks if first else 0)
            self._children[pid] = (start, ticks)

    def by_component(self) -> dict[str, float]:
        seconds: dict[str, float] = defaultdict(float)
        for component, first, last in self._threads.values():
            seconds[component] += (last - first) / TICK
        sampled = sum(seconds.values())
        seconds["short-lived threads (not sampled)"] = max(0.0, self.process_seconds - sampled)
        seconds["function processes"] = sum(
            (last - first) / TICK for first, last in self._children.values()
        )
        return dict(seconds)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class BacklogSampler:
    """Each second: records waiting in each mapping's source, and async events queued. The
    stage whose backlog grows while the others stay low is the one that limits the rate."""

    def __init__(self, cloud: Any, interval: float = 1.0) -> None:
        self.cloud = cloud
        self.interval = interval
        self.samples: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-backlog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            sample: dict[str, int] = {}
            for mapping in self.cloud.esm.status():
                name = str(mapping.get("function", "")).rsplit(":", 1)[-1]
                stage = name.split("-")[2] if name.count("-") >= 2 else name
                source = str(mapping.get("source_arn", "")).split(":")[2]
                key = f"{source} -> {stage}"
                sample[key] = sample.get(key, 0) + int(mapping.get("backlog") or 0)
            queued = self.cloud.async_engine.status()
            sample["async -> notifier"] = int(queued.get("queued", 0)) + int(
                queued.get("in_flight", 0)
            )
            self.samples.append(sample)

    def peaks(self) -> dict[str, tuple[int, int]]:
        """Per stage: the highest backlog, and the second (from the start) it was reached."""
        out: dict[str, tuple[int, int]] = {}
        for second, sample in enumerate(self.samples, start=1):
            for stage, depth in sample.items():
                if depth > out.get(stage, (-1, 0))[0]:
                    out[stage] = (depth, second)
        return out


# --- the floor: each operation the pipeline called, replayed alone ---------------------------


class Scratch:
    """Scratch resources on the same server, and one call per operation in the pipeline's own
    request shapes: the orders write is ``OrdersRepository.record`` itself (a 12-attribute SET
    with a condition), the effect write mirrors ``EffectsRepository.put_once``, the notify
    invocation is an ``Event`` invoke checked but not run (``DryRun``), so only the API call is
    measured."""

    def __init__(self, cloud: Any, function_name: str) -> None:
        sys.path.insert(0, str(ROOT / "functions"))
        from orderflow.dal.orders import OrdersRepository

        self.ddb = cloud.client("dynamodb")
        self.sqs = cloud.client("sqs")
        self.kinesis = cloud.client("kinesis")
        self.events = cloud.client("events")
        self.lam = cloud.client("lambda")
        self.cloudwatch = cloud.client("cloudwatch")
        name = f"bench-floor-{uuid.uuid4().hex[:8]}"
        self.table = self._table(f"{name}-effects", "effect_id")
        self.orders = OrdersRepository(self._table(f"{name}-orders", "order_id"), ddb=self.ddb)
        self.queue = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        self.kinesis.create_stream(StreamName=name, ShardCount=1)
        self.function = function_name
        self.n = 0
        self.calls: dict[tuple[str, str], Callable[[], Any]] = {
            ("dynamodb", "PutItem"): self._put_item,
            ("dynamodb", "GetItem"): lambda: self.ddb.get_item(
                TableName=self.table, Key={"effect_id": {"S": "e1"}}
            ),
            ("dynamodb", "UpdateItem"): self._update_item,
            ("lambda", "Invoke"): lambda: self.lam.invoke(
                FunctionName=self.function, InvocationType="DryRun", Payload=b"{}"
            )["Payload"].read(),
            ("sqs", "SendMessage"): lambda: self.sqs.send_message(
                QueueUrl=self.queue, MessageBody="x" * 300
            ),
            ("sqs", "SendMessageBatch"): lambda: self.sqs.send_message_batch(
                QueueUrl=self.queue,
                Entries=[{"Id": str(i), "MessageBody": "x" * 300} for i in range(10)],
            ),
            ("sqs", "GetQueueAttributes"): lambda: self.sqs.get_queue_attributes(
                QueueUrl=self.queue, AttributeNames=["All"]
            ),
            ("kinesis", "PutRecords"): lambda: self.kinesis.put_records(
                StreamName=name,
                Records=[{"Data": b"x" * 300, "PartitionKey": str(i)} for i in range(100)],
            ),
            ("events", "PutEvents"): lambda: self.events.put_events(
                Entries=[{"Source": "bench", "DetailType": "floor", "Detail": "{}"}]
            ),
            ("cloudwatch", "PutMetricData"): lambda: self.cloudwatch.put_metric_data(
                Namespace="Bench", MetricData=[{"MetricName": "m", "Value": 1.0}]
            ),
        }

    def _table(self, name: str, key: str) -> str:
        self.ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        return name

    def _key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    def _put_item(self) -> Any:
        key = self._key()
        return self.ddb.put_item(
            TableName=self.table,
            Item={
                "effect_id": {"S": f"notify#{key}"},
                "order_id": {"S": key},
                "kind": {"S": "notify"},
                "event_id": {"S": str(uuid.uuid4())},
                "created_at": {"S": datetime.now().isoformat()},
            },
            ConditionExpression="attribute_not_exists(effect_id)",
        )

    def _update_item(self) -> Any:
        from orderflow.events import OrderState, OrderStatus

        state = OrderState(
            order_id=self._key(),
            status=OrderStatus.CREATED,
            version=1,
            last_event_id=str(uuid.uuid4()),
            amount_cents=1999,
            customer_id="customer-1",
            updated_at=datetime.now().astimezone(),
        )
        return self.orders.record(state, trace_header="Root=1-00000000-000000000000000000000000")

    def cpu_ms_per_call(
        self, operation: tuple[str, str], repeat: int
    ) -> tuple[float, float] | None:
        """CPU ms per call: (all of it, the client's part); the rest is the server's. Best of
        three rounds of ``repeat`` calls."""
        call = self.calls.get(operation)
        if call is None:
            return None
        call()  # connection, first-call caches
        best = (float("inf"), 0.0)
        for _ in range(3):
            started, client_started = _self_cpu(), time.thread_time()
            for _ in range(repeat):
                call()
            total = (_self_cpu() - started) / repeat * 1000.0
            client = (time.thread_time() - client_started) / repeat * 1000.0
            best = min(best, (total, client))
        return best


# --- the run ---------------------------------------------------------------------------------


def quiet(_line: str) -> None:
    """Progress lines are not the bench's output."""


def measured_run(cloud: Any, outputs: Mapping[str, str], events: int) -> dict[str, Any]:
    from streamline.demo.run import DemoOptions, run_pipeline
    from streamline.local.api_calls import API_CALLS, tallies_since

    options = DemoOptions(events=events, poison_rate=0.0, transient_rate=0.0, seed=13)
    tallies_before = API_CALLS.tallies()
    sampler = CpuSampler()
    backlogs = BacklogSampler(cloud)
    opened_before = cloud.server.connections_opened
    started_at = time.time()
    sampler.start()
    backlogs.start()
    summary = run_pipeline(cloud, outputs, options, out=quiet)
    backlogs.stop()
    sampler.stop()
    calls = tallies_since(tallies_before)
    last_effect = max(
        datetime.fromisoformat(str(item["created_at"])).timestamp()
        for item in _scan(cloud, outputs["EffectsTableName"])
    )
    per_operation: dict[tuple[str, str], int] = defaultdict(int)
    for (caller, service, operation), tally in calls.items():
        if caller != "lambda-esm":  # the ESM's in-process receives/deletes are not HTTP calls
            per_operation[(service, operation)] += tally.calls
    return {
        "ok": summary.ok,
        "events": events,
        "seconds": last_effect - started_at,
        "latency_ms": summary.latency_ms,
        "cpu": sampler.by_component(),
        "calls": dict(per_operation),
        "cold_starts": sum(c.count for c in summary.cold_starts),
        "connections_opened": cloud.server.connections_opened - opened_before,
        "backlog_peaks": backlogs.peaks(),
        "backlog_samples": backlogs.samples,
    }


def _scan(cloud: Any, table: str) -> list[dict[str, Any]]:
    from streamline.demo.observe import scan_table

    return scan_table(cloud, table)


def floor(
    cloud: Any, outputs: Mapping[str, str], calls: Mapping[tuple[str, str], int], events: int
) -> dict[str, Any]:
    scratch = Scratch(cloud, outputs["NotifierFunctionName"])
    rows = []
    replayed_ms = 0.0
    not_replayed = 0
    for operation, count in sorted(calls.items(), key=lambda kv: -kv[1]):
        per_event = count / events
        cost = scratch.cpu_ms_per_call(operation, repeat=100)
        if cost is None:
            not_replayed += count
        else:
            replayed_ms += per_event * cost[0]
        rows.append(
            {
                "operation": "/".join(operation),
                "per_event": per_event,
                "cpu_ms": None if cost is None else cost[0],
                "client_ms": None if cost is None else cost[1],
            }
        )
    return {"rows": rows, "ms_per_event": replayed_ms, "calls_not_replayed": not_replayed}


def render(result: Mapping[str, Any]) -> str:
    run, low = result["run"], result["floor"]
    events = run["events"]
    rate = events / run["seconds"]
    cpu = run["cpu"]
    total_ms = sum(cpu.values()) / events * 1000.0
    server_parts = ("server: HTTP requests", "short-lived threads (not sampled)")
    server_ms = sum(cpu.get(part, 0.0) for part in server_parts) / events * 1000.0
    lines = [
        f"Pipeline, {events} clean events after a {result['warmup']}-event warm-up, "
        f"{os.cpu_count()} cores, conservation {'ok' if run['ok'] else 'FAILED'}",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| end to end events/s (first send to last effect) | {rate:.1f} |",
        f"| latency p50 ms | {_ms(run['latency_ms'].get('p50'))} |",
        f"| latency p99 ms | {_ms(run['latency_ms'].get('p99'))} |",
        f"| CPU ms per event, all | {total_ms:.2f} |",
        f"| CPU ms per event, server HTTP path | {server_ms:.2f} |",
        f"| floor: the pipeline's API calls alone, CPU ms per event | {low['ms_per_event']:.2f} |",
        f"| pipeline CPU over floor | {total_ms / max(low['ms_per_event'], 1e-9):.2f}x |",
        f"| cold starts in the measured run | {run['cold_starts']} |",
        f"| HTTP connections opened per event | {run['connections_opened'] / events:.3f} |",
        "",
        "CPU per event by component (ms)",
        "| component | ms/event | share |",
        "|---|---:|---:|",
    ]
    all_seconds = sum(cpu.values()) or 1.0
    for component, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        lines.append(
            f"| {component} | {seconds / events * 1000.0:.2f} | {seconds / all_seconds:.0%} |"
        )
    lines += [
        "",
        "Backlog per stage (records waiting; the stage that limits the rate grows)",
        "| stage | peak | at second |",
        "|---|---:|---:|",
    ]
    for stage, (peak, second) in sorted(run["backlog_peaks"].items()):
        lines.append(f"| {stage} | {peak} | {second} |")
    lines += [
        "",
        "API calls per event over HTTP, and each one's CPU alone (client + server, ms)",
        "| operation | calls/event | CPU ms per call alone | of which client | server |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in low["rows"]:
        if row["per_event"] >= 0.001:
            if row["cpu_ms"] is None:
                cost = "not replayed | | "
            else:
                server = row["cpu_ms"] - row["client_ms"]
                cost = f"{row['cpu_ms']:.2f} | {row['client_ms']:.2f} | {server:.2f}"
            lines.append(f"| {row['operation']} | {row['per_event']:.3f} | {cost} |")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--async-workers",
        type=int,
        default=None,
        help="concurrent asynchronous invocations (the local cloud's default if unset)",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.warmup < 0:
        parser.error("--events must be at least 1 and --warmup at least 0")

    from streamline.demo.run import DemoOptions, run_pipeline
    from streamline.local.cloud import LocalCloud

    factory = None
    if args.async_workers is not None:
        from streamline.local.async_invoke import AsyncEngine

        def factory(cloud: Any) -> Any:
            return AsyncEngine(
                cloud.backends, cloud.runner, cloud.clock, workers=args.async_workers
            )

    with tempfile.TemporaryDirectory(prefix="streamline-bench-") as state:
        if factory is None:
            cloud = LocalCloud(state_dir=state, publish=False)
        else:
            cloud = LocalCloud(state_dir=state, publish=False, async_factory=factory)
        cloud.start()
        try:
            outputs: dict[str, str] = {}
            for stack_outputs in cloud.deploy(ROOT).values():
                outputs.update(stack_outputs)
            print("deployed; warming up", file=sys.stderr, flush=True)
            if args.warmup:
                warm = DemoOptions(events=args.warmup, poison_rate=0.0, transient_rate=0.0)
                run_pipeline(cloud, outputs, warm, out=quiet)
            print(f"measuring {args.events} events", file=sys.stderr, flush=True)
            run = measured_run(cloud, outputs, args.events)
            print("measuring the floor", file=sys.stderr, flush=True)
            result = {
                "warmup": args.warmup,
                "run": run,
                "floor": floor(cloud, outputs, run["calls"], args.events),
            }
        finally:
            cloud.stop()
    run["calls"] = {"/".join(k): v for k, v in run["calls"].items()}
    print(render(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if run["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
