"""What durability costs: per state-changing request, on the pipeline's throughput, and how long
a stop and a restart take at the demo's state size. Every figure beside its baseline, same run.

1. Per request: SendMessage, PutItem and PutRecord through boto3 against a cloud that journals
   (``persist=True``, fsync every second) and one that does not; wall time per request.
2. The pipeline: the demo's flow (deploy, produce, process until idle) on both kinds of cloud,
   events per second end to end.
3. Lifecycle at that state size: a down that only flushes the journal, an up that replays
   every entry (the worst a crash leaves, before snapshots bound it), a down that takes a
   snapshot, and the up after it.

Each run is a fresh process, the two kinds alternating (``--rounds``), medians reported.

Run: ``.venv/bin/python bench/durability.py [--requests N] [--events N] [--rounds N]``.
Results go in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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


def _one(persist: bool, requests: int, events: int) -> dict[str, Any]:
    """One configuration, measured in this (fresh) process."""
    from streamline.local.cloud import LocalCloud

    result: dict[str, Any] = {"lifecycle": {}}
    lifecycle = result["lifecycle"]
    with tempfile.TemporaryDirectory() as tmp:
        cloud = LocalCloud(port=None, state_dir=tmp, persist=persist)
        cloud.start()
        try:
            result["requests"] = _requests(cloud, requests)
            result["pipeline"] = _pipeline(cloud, events)
        finally:
            if persist:
                assert cloud.durability is not None
                cloud.durability.snapshot_at_close = 10**9  # keep the whole journal: a crash
            started = time.perf_counter()
            cloud.stop()
            if persist:
                lifecycle["down, journal flushed only"] = time.perf_counter() - started
        if persist:
            journal = Path(tmp) / "journal"
            size = sum(p.stat().st_size for p in journal.glob("*.log"))
            lifecycle["journal MB"] = size / 1e6
            started = time.perf_counter()
            again = LocalCloud(port=None, state_dir=tmp, persist=True).start()
            lifecycle["up replaying every entry (as after a crash)"] = time.perf_counter() - started
            lifecycle["entries replayed"] = float(again.restored.replayed)  # type: ignore[union-attr]
            started = time.perf_counter()
            again.stop()  # more than snapshot_at_close entries since a snapshot: takes one
            lifecycle["down, taking its snapshot"] = time.perf_counter() - started
            lifecycle["snapshot MB"] = os.path.getsize(Path(tmp) / "moto-state.pickle") / 1e6
            started = time.perf_counter()
            last = LocalCloud(port=None, state_dir=tmp, persist=True).start()
            lifecycle["up after that down (from the snapshot)"] = time.perf_counter() - started
            last.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each cloud")
    parser.add_argument("--one", choices=("plain", "journal"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_one(args.one == "journal", args.requests, args.events)))
        return 0

    # Each run in a fresh process (one cloud per process, as moto's state is global), the two
    # kinds alternating: a second cloud in one process ran up to 2x slower on leftovers of the
    # first, which read as a cost of the journal.
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for persist in (False, True):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    "journal" if persist else "plain",
                    "--requests",
                    str(args.requests),
                    "--events",
                    str(args.events),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            runs[persist].append(json.loads(out.strip().splitlines()[-1]))

    def median(values: list[float]) -> float:
        return statistics.median(values)

    print(f"\nPer request (ms, wall, boto3 over HTTP; median of {args.rounds} runs each)")
    print("| operation | no journal | journal (fsync every 1 s) | ratio |")
    print("|---|---:|---:|---:|")
    for label in runs[False][0]["requests"]:
        base = median([r["requests"][label] for r in runs[False]])
        durable = median([r["requests"][label] for r in runs[True]])
        print(f"| {label} | {base:.2f} | {durable:.2f} | {durable / base:.2f}x |")
    print(f"\nPipeline, {args.events} events end to end (deploy excluded)")
    print("| cloud | events/s | seconds |")
    print("|---|---:|---:|")
    rates = {}
    for persist, label in ((False, "no journal"), (True, "journal")):
        rates[persist] = median([r["pipeline"][0] for r in runs[persist]])
        seconds = median([r["pipeline"][1] for r in runs[persist]])
        print(f"| {label} | {rates[persist]:.1f} | {seconds:.1f} |")
    ratio = rates[True] / rates[False]
    print(f"throughput with the journal: {ratio:.2f}x of without ({(1 - ratio) * 100:.1f}% cost)")
    print("\nLifecycle at that state size (median)")
    for label in runs[True][0]["lifecycle"]:
        value = median([r["lifecycle"][label] for r in runs[True]])
        unit = "" if "MB" in label or "entries" in label else " s"
        print(f"- {label}: {value:.2f}{unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
