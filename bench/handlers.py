"""Handler benchmark: CPU per record and cold import time, each beside a baseline from the same run.

For every batch handler, a 1,000-record batch runs through the real Lambda entry point (Powertools
Logger, Tracer with tracing on, Metrics, the batch processor) with its adapters swapped for
in-memory fakes, beside a bare loop doing the same parsing, validation and domain work on the same
records. Each handler module's cold import (a fresh interpreter, as in a Lambda INIT) is timed
beside ``import boto3`` alone. Results are ratios, so they hold on any machine.

Run: ``make bench`` (or ``.venv/bin/python bench/handlers.py [--records N] [--repeats N]``).

Why one file of about 520 lines: it is a script run in a fresh interpreter (``make bench``, and
``tests/unit/test_bench_handlers.py``); its fakes, events and cases serve only this measurement,
and read top to bottom they are what a reviewer checks the figures against.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import importlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:bench"

# A Lambda-like environment: tracing on (the X-Ray SDK emits UDP to a loopback daemon address that
# nothing listens on, as cheap as in Lambda), JSON logs at INFO, metrics flushed per batch.
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "LAMBDA_TASK_ROOT": str(FUNCTIONS),
    "_X_AMZN_TRACE_ID": (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    ),
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Streamline",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "STAGE": "bench",
    "CHAOS_ENABLED": "false",
    "ORDERS_TABLE": "orders",
    "EFFECTS_TABLE": "effects",
    "FAILURE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/failures",
    "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq.fifo",
    "FULFILMENT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/fulfilment.fifo",
    "NOTIFICATIONS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/notifications",
    "NOTIFIER_FUNCTION_NAME": "notifier",
}


class Context:
    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = ARN
    memory_limit_in_mb = 256
    aws_request_id = "bench-request"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


# --- in-memory adapters (the same calls the DynamoDB/SQS/Lambda adapters take) ---------------
class FakeOrders:
    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def record(self, state: Any, **_: Any) -> bool:
        """OrdersRepository.record in memory: the newer state, or the mark of a new status."""
        current = self.items.get(state.order_id)
        if current is None or current[0].version < state.version:
            seen = current[1] if current is not None else set()
            self.items[state.order_id] = (state, seen | {state.status})
            return True
        if state.status in current[1]:
            return False
        current[1].add(state.status)
        return True


class FakeEffects:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    def put_once(self, effect_id: str, **_: Any) -> bool:
        if effect_id in self.ids:
            return False
        self.ids.add(effect_id)
        return True


class FakeQueue:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, task: Any, **_: Any) -> str:
        task.model_dump_json()  # the adapter serialises each task once
        self.sent += 1
        return "id"


class FakeSqs:
    def __init__(self) -> None:
        self.calls = 0

    def send_message_batch(self, QueueUrl: str, Entries: list) -> dict:
        self.calls += 1
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


class FakeInvoker:
    def __init__(self) -> None:
        self.calls = 0

    def invoke_async(self, function_name: str, payload: bytes) -> int:
        self.calls += 1
        return 202


# --- events -----------------------------------------------------------------------------------
def order_event(i: int, version: int = 2, kind: str = "OrderPaid") -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=i)),
        "order_id": f"order-{i:06d}",
        "version": version,
        "type": kind,
        "occurred_at": datetime(2026, 11, 1, tzinfo=UTC).isoformat(),
        "customer_id": f"customer-{i % 97}",
        "amount_cents": 1000 + i,
    }


def kinesis_batch(n: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventID": f"shardId-000000000000:{i:056d}",
                "eventName": "aws:kinesis:record",
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/order-events",
                "awsRegion": "us-east-1",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench",
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": f"order-{i:06d}",
                    "sequenceNumber": f"{i:056d}",
                    "approximateArrivalTimestamp": 1_790_000_000.0,
                    "data": base64.b64encode(json.dumps(order_event(i)).encode()).decode(),
                },
            }
            for i in range(n)
        ]
    }


def ddb_image(event: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "order_id": {"S": event["order_id"]},
        "status": {"S": status},
        "version": {"N": str(event["version"])},
        "last_event_id": {"S": event["event_id"]},
        "customer_id": {"S": event["customer_id"]},
        "amount_cents": {"N": str(event["amount_cents"])},
        "updated_at": {"S": event["occurred_at"]},
    }


def ddb_batch(n: int) -> dict[str, Any]:
    records = []
    for i in range(n):
        old = order_event(i, version=1, kind="OrderCreated")
        new = order_event(i, version=2, kind="OrderPaid")
        records.append(
            {
                "eventID": uuid.UUID(int=i).hex,
                "eventName": "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/x",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_790_000_000,
                    "Keys": {"order_id": {"S": new["order_id"]}},
                    "OldImage": ddb_image(old, "CREATED"),
                    "NewImage": ddb_image(new, "PAID"),
                    "SequenceNumber": f"{i:021d}",
                    "SizeBytes": 300,
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }
        )
    return {"Records": records}


def sqs_batch(bodies: list[str], fifo: bool) -> dict[str, Any]:
    records = []
    for i, body in enumerate(bodies):
        attributes = {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1790000000000",
            "SenderId": "AIDABENCH",
            "ApproximateFirstReceiveTimestamp": "1790000000001",
        }
        if fifo:
            attributes |= {
                "MessageGroupId": json.loads(body)["order_id"],
                "MessageDeduplicationId": str(i),
                "SequenceNumber": str(10**19 + i),
            }
        records.append(
            {
                "messageId": str(uuid.UUID(int=i)),
                "receiptHandle": f"rh-{i}",
                "body": body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


# --- the cases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bare:
    """The same work as a handler, by hand: ``record`` per raw record, then ``finish`` once."""

    record: Callable[[dict[str, Any]], None]
    finish: Callable[[], None] = lambda: None

    def loop(self, event: dict[str, Any]) -> Callable[[], None]:
        """A bare loop over the event's records."""

        def run() -> None:
            for raw in event["Records"]:
                self.record(raw)
            self.finish()

        return run

    def under_powertools(self, event: dict[str, Any], source: Any) -> Callable[[], None]:
        """The same work as the record handler of the Powertools processor the handler uses
        (no Logger, Tracer or Metrics, none of ours): the floor a Powertools handler sits on."""
        from aws_lambda_powertools.utilities.batch import process_partial_response
        from orderflow.batch import build_processor

        processor = build_processor(source)

        def handle(record: Any) -> None:
            self.record(record.raw_event)

        def run() -> None:
            process_partial_response(event=event, record_handler=handle, processor=processor)
            self.finish()

        return run


def cases(
    n: int,
) -> list[tuple[str, str, Any, dict[str, Any], Callable[[], Bare]]]:
    """(name, module, batch source, event, make_bare()) for every batch handler."""
    from orderflow.batch import Source
    from orderflow.events import (
        FulfilmentTask,
        NotificationTask,
        parse_event,
        parse_model,
        parse_order_image,
    )
    from orderflow.logic import chaos_active, state_for, tasks_for_change
    from orderflow.notifications import encode_batches

    k_event = kinesis_batch(n)
    d_event = ddb_batch(n)
    # Task bodies come from the domain itself, so both sides parse exactly what changes sends.
    tasks: list[Any] = []
    for i in range(n):
        old = ddb_image(order_event(i, version=1, kind="OrderCreated"), "CREATED")
        new = ddb_image(order_event(i), "PAID")
        tasks.extend(tasks_for_change(parse_order_image(old), parse_order_image(new)))
    fulfil_bodies = [t.model_dump_json() for t in tasks if isinstance(t, FulfilmentTask)][:n]
    notify_bodies = [t.model_dump_json() for t in tasks if isinstance(t, NotificationTask)][:n]
    f_event = sqs_batch(fulfil_bodies, fifo=True)
    n_event = sqs_batch(notify_bodies, fifo=False)

    def bare_ingest() -> Bare:
        orders = FakeOrders()
        now = datetime.now(UTC)

        def record(raw: dict[str, Any]) -> None:
            event = parse_event(base64.b64decode(raw["kinesis"]["data"]))
            if chaos_active(event, now):
                raise AssertionError
            orders.record(state_for(event))

        return Bare(record)

    def bare_changes() -> Bare:
        queue = FakeQueue()

        def record(raw: dict[str, Any]) -> None:
            images = raw["dynamodb"]
            old, new = images["OldImage"], images["NewImage"]
            for task in tasks_for_change(parse_order_image(old), parse_order_image(new)):
                queue.send(task)

        return Bare(record)

    def bare_fulfil() -> Bare:
        effects = FakeEffects()

        def record(raw: dict[str, Any]) -> None:
            task = parse_model(FulfilmentTask, raw["body"])
            effects.put_once(task.effect_id)

        return Bare(record)

    def bare_notify() -> Bare:
        invoker = FakeInvoker()
        pending: list[tuple[str, str | None]] = []

        def record(raw: dict[str, Any]) -> None:
            task = parse_model(NotificationTask, raw["body"])
            pending.append((task.model_dump_json(), None))

        def finish() -> None:
            for payload, _ in encode_batches(pending):  # one invocation per 100 notifications
                invoker.invoke_async("notifier", payload)
            pending.clear()

        return Bare(record, finish)

    return [
        ("ingest", "ingest.handler", Source.KINESIS, k_event, bare_ingest),
        ("changes", "changes.handler", Source.DYNAMODB_STREAMS, d_event, bare_changes),
        ("fulfil", "fulfil.handler", Source.SQS_FIFO, f_event, bare_fulfil),
        ("notify", "notify.handler", Source.SQS, n_event, bare_notify),
    ]


def install_fakes(mod: Any) -> None:
    """Swap the module's adapters for in-memory ones (fresh state per run)."""
    if hasattr(mod, "orders"):
        mod.orders = FakeOrders()
    if hasattr(mod, "effects"):
        mod.effects = FakeEffects()
    if hasattr(mod, "queue"):
        mod.queue = FakeQueue()
    if hasattr(mod, "invoker"):
        mod.invoker = FakeInvoker()
    if hasattr(mod, "outbox"):
        if hasattr(mod.outbox, "invoker"):
            mod.outbox.invoker = FakeInvoker()  # notify's NotificationOutbox
        else:
            mod.outbox.sqs = FakeSqs()  # changes' TaskOutbox


def cpu_seconds(fn: Callable[[], Any], before: Callable[[], None]) -> float:
    """CPU time of one run of fn (stdout swallowed: EMF and logs go there in Lambda too)."""
    before()
    sink = io.StringIO()
    # The collector runs when allocations cross its threshold, wherever that falls: a pass
    # inside one side's timing and not the other's moved ratios by more than the work itself.
    gc.collect()
    gc.disable()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            start = time.process_time()
            fn()
            return time.process_time() - start
    finally:
        gc.enable()


def interleaved_best(measures: list[Callable[[], float]], repeats: int) -> list[float]:
    """Best of ``repeats`` of each measure, taken in turn (a, b, c, a, b, c, ...).

    Taken in turn, every side runs under the same machine state: measured one side after the
    other, a noisy neighbour in one phase moved a ratio by 0.3 between two runs here.
    """
    best = [float("inf")] * len(measures)
    for _ in range(repeats):
        for position, measure in enumerate(measures):
            best[position] = min(best[position], measure())
    return best


def import_seconds(statement: str) -> float:
    """Wall time of one import in a fresh interpreter, as a Lambda INIT pays it."""
    code = f"import time\nt = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)\n"
    env = {**os.environ, **LAMBDA_ENV, "PYTHONPATH": str(FUNCTIONS)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=FUNCTIONS,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def median_imports(statements: list[str], repeats: int) -> list[float]:
    """Median import time of each statement, the statements taken in turn in every round."""
    samples: list[list[float]] = [[] for _ in statements]
    for _ in range(repeats):
        for position, statement in enumerate(statements):
            samples[position].append(import_seconds(statement))
    return [statistics.median(times) for times in samples]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.records < 1 or args.repeats < 1:
        parser.error("--records and --repeats must be positive")

    os.environ.update(LAMBDA_ENV)
    sys.path.insert(0, str(FUNCTIONS))
    rows = []
    for name, module_name, source, event, make_bare in cases(args.records):
        mod = importlib.import_module(module_name)
        handler = mod.handler
        context = Context()

        def run_handler(h: Any = handler, e: dict[str, Any] = event, c: Context = context) -> None:
            response = h(e, c)
            if response["batchItemFailures"]:
                raise AssertionError(f"benchmark batch failed: {response}")

        bare = make_bare().loop(event)
        floor = make_bare().under_powertools(event, source)
        handler_cpu, bare_cpu, floor_cpu = interleaved_best(
            [
                lambda r=run_handler, m=mod: cpu_seconds(r, lambda: install_fakes(m)),
                lambda b=bare: cpu_seconds(b, lambda: None),
                lambda f=floor: cpu_seconds(f, lambda: None),
            ],
            args.repeats,
        )
        n = len(event["Records"])
        rows.append(
            (
                name,
                n,
                handler_cpu / n * 1e6,
                bare_cpu / n * 1e6,
                floor_cpu / bare_cpu,
                handler_cpu / bare_cpu,
            )
        )

    # What the libraries every handler needs cost on their own: the floor our code sits on.
    floor = (
        "import boto3, pydantic\n"
        "from aws_lambda_powertools import Logger, Metrics, Tracer\n"
        "from aws_lambda_powertools.utilities.batch import BatchProcessor\n"
        "Tracer(service='floor')"
    )
    modules = [(name, module_name) for name, module_name, _, _, _ in cases(1)]
    baseline_import, floor_import, *handler_imports = median_imports(
        ["import boto3", floor, *(f"import {module_name}" for _, module_name in modules)],
        args.repeats,
    )
    imports = [
        (name, seconds * 1e3, baseline_import * 1e3, seconds / baseline_import)
        for (name, _), seconds in zip(modules, handler_imports, strict=True)
    ]

    print(
        f"CPU per record ({args.records}-record batch, best of {args.repeats} in alternation,"
        " tracing on)"
    )
    print(
        "| handler | records | handler µs/record | bare loop µs/record"
        " | bare work under Powertools' processor alone | handler |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, n, h, b, floor_ratio, ratio in rows:
        print(f"| {name} | {n} | {h:.1f} | {b:.1f} | {floor_ratio:.2f}x | {ratio:.2f}x |")
    print()
    print(f"Cold import (fresh interpreter, median of {args.repeats}, taken in turn)")
    print("| handler module | import ms | `import boto3` ms | ratio |")
    print("|---|---:|---:|---:|")
    for name, ms, base, ratio in imports:
        print(f"| {name}.handler | {ms:.0f} | {base:.0f} | {ratio:.2f}x |")
    print(
        f"| (same libraries imported naively, no handler) "
        f"| {floor_import * 1e3:.0f} | {baseline_import * 1e3:.0f} "
        f"| {floor_import / baseline_import:.2f}x |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
