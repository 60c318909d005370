"""Local cloud throughput: end-to-end messages per second beside moto's raw API rate, same run.

Two paths, each with a 10,000-message backlog produced before the consumer starts:

- SQS: raw = a plain boto3 consumer loop (ReceiveMessage 10 / DeleteMessageBatch) draining the
  queue over HTTP; end to end = an event-source mapping invoking a no-op Python function, which
  our engine polls, invokes in a warm execution environment and deletes.
- Kinesis: raw = a GetRecords loop reading the shard; end to end = a mapping (batch 100)
  delivering every record to the same no-op function.

Run: ``.venv/bin/python bench/local_cloud.py [--messages N]``. Results go in bench/README.md.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOOP = "def handler(event, context):\n    return {}\n"


def noop_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("noop.py", NOOP)
    return buffer.getvalue()


def create_function(cloud: Any) -> str:
    iam = cloud.client("iam")
    role = iam.create_role(
        RoleName=f"bench-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    return cloud.client("lambda").create_function(
        FunctionName=f"noop-{uuid.uuid4().hex[:8]}",
        Runtime="python3.13",
        Role=role,
        Handler="noop.handler",
        Code={"ZipFile": noop_zip()},
        Timeout=30,
        MemorySize=128,
    )["FunctionArn"]


def fill_queue(sqs: Any, url: str, n: int) -> None:
    for start in range(0, n, 10):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps({"n": start + i})}
            for i in range(min(10, n - start))
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def queue_depth(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def new_queue(sqs: Any) -> tuple[str, str]:
    url = sqs.create_queue(
        QueueName=f"bench-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "300"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def sqs_raw(cloud: Any, n: int) -> float:
    sqs = cloud.client("sqs")
    url, _ = new_queue(sqs)
    fill_queue(sqs, url, n)
    done = 0
    start = time.perf_counter()
    while done < n:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            done += len(messages)
    return n / (time.perf_counter() - start)


def sqs_end_to_end(cloud: Any, function_arn: str, n: int) -> float:
    sqs = cloud.client("sqs")
    url, arn = new_queue(sqs)
    fill_queue(sqs, url, n)
    start = time.perf_counter()
    mapping = cloud.client("lambda").create_event_source_mapping(
        FunctionName=function_arn,
        EventSourceArn=arn,
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )["UUID"]
    # Watch the engine's counters, not GetQueueAttributes: polling a 10,000-deep queue's
    # counts takes the server lock the engine needs and would slow what it measures.
    while delivered(cloud, mapping) < n:
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    if queue_depth(sqs, url):
        raise AssertionError("the mapping reported every message done but the queue is not empty")
    return n / elapsed


def new_stream(cloud: Any, n: int) -> str:
    kinesis = cloud.client("kinesis")
    name = f"bench-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    arn = kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]
    for start in range(0, n, 500):
        kinesis.put_records(
            StreamARN=arn,
            Records=[
                {"Data": json.dumps({"n": start + i}).encode(), "PartitionKey": str(i)}
                for i in range(min(500, n - start))
            ],
        )
    return arn


def kinesis_raw(cloud: Any, n: int) -> float:
    kinesis = cloud.client("kinesis")
    arn = new_stream(cloud, n)
    shard = kinesis.list_shards(StreamARN=arn)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamARN=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    done = 0
    start = time.perf_counter()
    while done < n:
        out = kinesis.get_records(StreamARN=arn, ShardIterator=iterator, Limit=100)
        done += len(out["Records"])
        iterator = out["NextShardIterator"]
    return n / (time.perf_counter() - start)


def kinesis_end_to_end(cloud: Any, function_arn: str, n: int) -> float:
    arn = new_stream(cloud, n)
    start = time.perf_counter()
    mapping = cloud.client("lambda").create_event_source_mapping(
        FunctionName=function_arn,
        EventSourceArn=arn,
        BatchSize=100,
        StartingPosition="TRIM_HORIZON",
    )["UUID"]
    # Done when the mapping has delivered every record (the engine's own counters).
    while delivered(cloud, mapping) < n:
        time.sleep(0.05)
    return n / (time.perf_counter() - start)


def delivered(cloud: Any, mapping: str) -> int:
    for status in cloud.esm.status():
        if status["uuid"] == mapping:
            return int(status.get("succeeded", 0))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.messages < 10:
        parser.error("--messages must be at least 10")
    from streamline.local import LocalCloud

    with tempfile.TemporaryDirectory() as state, LocalCloud(state_dir=Path(state)) as cloud:
        function_arn = create_function(cloud)
        # One call first: a pipeline that runs for hours pays INIT once, not per backlog.
        cloud.client("lambda").invoke(FunctionName=function_arn, Payload=b"{}")
        rows = [
            (
                "SQS",
                sqs_raw(cloud, args.messages),
                sqs_end_to_end(cloud, function_arn, args.messages),
            ),
            (
                "Kinesis",
                kinesis_raw(cloud, args.messages),
                kinesis_end_to_end(cloud, function_arn, args.messages),
            ),
        ]
    print(f"Backlog of {args.messages} messages, 2-core machine")
    print("| path | moto raw API msg/s | end to end msg/s | ratio |")
    print("|---|---:|---:|---:|")
    for path, raw, e2e in rows:
        print(f"| {path} | {raw:.0f} | {e2e:.0f} | {e2e / raw:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
