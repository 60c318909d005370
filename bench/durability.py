"""What durability costs: per state-changing request, on the pipeline's throughput, and how long
a stop and a restart take at the demo's state size. Every figure beside its baseline, same run.

1. Per request: SendMessage, PutItem and PutRecord through boto3 against a cloud that journals
   (``persist=True``, fsync every second) and one that does not; wall time per request.
2. The pipeline: the demo's flow (deploy, produce, process until idle) on both kinds of cloud,
   events per second end to end.
3. Lifecycle at that state size: ``stop`` (the journal flushed, nothing else saved), a start
   that replays the whole journal, a snapshot (fork + write), and a start from the snapshot.

Run: ``.venv/bin/python bench/durability.py [--requests N] [--events N]``. Results go in
bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions"))


def _requests(cloud: Any, n: int) -> dict[str, float]:
    """Milliseconds per request for each operation (after a warm-up)."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    sqs, ddb, kinesis = (cloud.client(s) for s in ("sqs", "dynamodb", "kinesis"))
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    kinesis.create_stream(StreamName=name, ShardCount=1)
    calls = {
        "SendMessage": lambda i: sqs.send_message(QueueUrl=url, MessageBody=f"m{i}"),
        "PutItem": lambda i: ddb.put_item(TableName=name, Item={"k": {"S": f"k{i}"}}),
        "PutRecord": lambda i: kinesis.put_record(
            StreamName=name, Data=f"r{i}".encode(), PartitionKey=str(i)
        ),
        "GetItem (not journaled)": lambda i: ddb.get_item(
            TableName=name, Key={"k": {"S": f"k{i}"}}
        ),
    }
    result = {}
    for label, call in calls.items():
        for i in range(20):
            call(i)
        started = time.perf_counter()
        for i in range(n):
            call(i)
        result[label] = (time.perf_counter() - started) * 1000 / n
    return result


def _pipeline(cloud: Any, events: int) -> tuple[float, float]:
    """Deploy, produce ``events`` (no faults), process to idle: (events/s, seconds)."""
    from streamline.demo.run import DemoOptions, run_pipeline

    outputs: dict[str, str] = {}
    for stack in cloud.deploy(ROOT).values():
        outputs.update(stack)
    started = time.perf_counter()
    summary = run_pipeline(
        cloud,
        outputs,
        DemoOptions(events=events, poison_rate=0.0, transient_rate=0.0, seed=7, timeout=900),
        out=lambda line: None,
    )
    seconds = time.perf_counter() - started
    if not summary.ok:
        raise SystemExit(f"conservation failed: {summary.conservation.problems()}")
    return events / seconds, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args(argv)

    from streamline.local.cloud import LocalCloud

    rows = {}
    throughput = {}
    lifecycle: dict[str, float] = {}
    for persist in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            cloud = LocalCloud(port=None, state_dir=tmp, persist=persist)
            cloud.start()
            try:
                rows[persist] = _requests(cloud, args.requests)
                throughput[persist] = _pipeline(cloud, args.events)
            finally:
                started = time.perf_counter()
                cloud.stop()
                if persist:
                    lifecycle["stop (journal flushed)"] = time.perf_counter() - started
            if persist:
                journal = Path(tmp) / "journal"
                size = sum(p.stat().st_size for p in journal.glob("*.log"))
                lifecycle["journal MB"] = size / 1e6
                started = time.perf_counter()
                again = LocalCloud(port=None, state_dir=tmp, persist=True).start()
                lifecycle["start, replaying the whole journal"] = time.perf_counter() - started
                lifecycle["entries replayed"] = float(again.restored.replayed)  # type: ignore[union-attr]
                started = time.perf_counter()
                assert again.durability is not None and again.durability.snapshot()
                lifecycle["snapshot (fork + write, in the background)"] = (
                    time.perf_counter() - started
                )
                lifecycle["snapshot MB"] = os.path.getsize(Path(tmp) / "moto-state.pickle") / 1e6
                again.stop()
                started = time.perf_counter()
                LocalCloud(port=None, state_dir=tmp, persist=True).start().stop()
                lifecycle["start from the snapshot, then stop"] = time.perf_counter() - started

    print("\nPer request (ms, wall, boto3 over HTTP)")
    print("| operation | no journal | journal (fsync every 1 s) | ratio |")
    print("|---|---:|---:|---:|")
    for label in rows[False]:
        base, durable = rows[False][label], rows[True][label]
        print(f"| {label} | {base:.2f} | {durable:.2f} | {durable / base:.2f}x |")
    print(f"\nPipeline, {args.events} events end to end (deploy excluded)")
    print("| cloud | events/s | seconds |")
    print("|---|---:|---:|")
    for persist, label in ((False, "no journal"), (True, "journal")):
        rate, seconds = throughput[persist]
        print(f"| {label} | {rate:.1f} | {seconds:.1f} |")
    ratio = throughput[True][0] / throughput[False][0]
    print(f"throughput with the journal: {ratio:.2f}x of without ({(1 - ratio) * 100:.1f}% cost)")
    print("\nLifecycle at that state size")
    for label, value in lifecycle.items():
        unit = "" if "MB" in label or "entries" in label else " s"
        print(f"- {label}: {value:.2f}{unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
