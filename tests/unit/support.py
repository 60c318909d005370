"""Helpers shared by the unit tests: event files, fake context, fault injection, moto setup."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

EVENTS = Path(__file__).parent / "events"
REGION = "us-east-1"
HANDLER_ENV_KEYS = (
    "ORDERS_TABLE",
    "EFFECTS_TABLE",
    "RECOVERY_TABLE",
    "FAILURE_QUEUE_URL",
    "DLQ_URL",
    "FULFILMENT_QUEUE_URL",
    "NOTIFICATIONS_QUEUE_URL",
    "NOTIFIER_FUNCTION_NAME",
    "QUARANTINE_BUCKET",
    "MAX_REPLAY_ATTEMPTS",
)


def load_event(name: str) -> dict[str, Any]:
    """An event fixture from tests/unit/events (``name`` without ``.json``)."""
    return json.loads((EVENTS / f"{name}.json").read_text())


def expected_response(name: str) -> dict[str, Any]:
    """The expected response stored beside an event fixture."""
    return json.loads((EVENTS / f"{name}.expected.json").read_text())


class FakeContext:
    """The LambdaContext attributes Powertools reads."""

    function_name = "unit-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:unit-test"
    aws_request_id = "00000000-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/unit-test"
    log_stream_name = "2024/05/01/[$LATEST]0"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def throttle(operation: str = "PutItem") -> ClientError:
    """A botocore throttling error, as DynamoDB/SQS/Lambda raise it."""
    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
        operation,
    )


def fail_when(
    monkeypatch: pytest.MonkeyPatch,
    target: object,
    method: str,
    predicate: Callable[..., bool],
    error: BaseException,
) -> None:
    """Make ``target.method`` raise ``error`` for calls matching ``predicate``; others pass."""
    original = getattr(target, method)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if predicate(*args, **kwargs):
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(target, method, wrapper)


@dataclass
class Pipeline:
    """Names and URLs of the moto resources, like the stacks create them."""

    stream_name: str
    stream_arn: str
    orders_table: str
    orders_stream_arn: str
    effects_table: str
    recovery_table: str
    bucket: str
    queues: dict[str, str]
    notifier_function: str
    changes_function: str

    def messages(self, queue: str, limit: int = 10) -> list[dict[str, Any]]:
        """Receive (and delete) up to ``limit`` messages with their system attributes."""
        sqs = boto3.client("sqs", region_name=REGION)
        out: list[dict[str, Any]] = []
        while len(out) < limit:
            got = sqs.receive_message(
                QueueUrl=self.queues[queue],
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            for message in got:
                sqs.delete_message(
                    QueueUrl=self.queues[queue], ReceiptHandle=message["ReceiptHandle"]
                )
            out.extend(got)
        return out

    def orders_stream_records(self) -> tuple[str, list[dict[str, Any]]]:
        """The orders table's stream: its (one) shard id and every record from its start."""
        streams = boto3.client("dynamodbstreams", region_name=REGION)
        shard = streams.describe_stream(StreamArn=self.orders_stream_arn)["StreamDescription"][
            "Shards"
        ][0]
        iterator = streams.get_shard_iterator(
            StreamArn=self.orders_stream_arn,
            ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]
        return shard["ShardId"], streams.get_records(ShardIterator=iterator)["Records"]

    def source(self, name: str, kind: str, target: dict[str, Any]) -> dict[str, Any]:
        """A recovery source (the drain task's input) for one of the failure queues."""
        return {"name": name, "kind": kind, "queueUrl": self.queues[name], "target": target}

    def send(self, queue: str, body: dict[str, Any] | str, **extra: Any) -> None:
        """Send one message (a dict is sent as JSON) to one of the pipeline's queues."""
        boto3.client("sqs", region_name=REGION).send_message(
            QueueUrl=self.queues[queue],
            MessageBody=body if isinstance(body, str) else json.dumps(body),
            **extra,
        )

    def effect_ids(self) -> list[str]:
        ddb = boto3.client("dynamodb", region_name=REGION)
        items = ddb.scan(TableName=self.effects_table)["Items"]
        return sorted(item["effect_id"]["S"] for item in items)


class LogCapture:
    """Structured log lines the Powertools logger wrote during the test."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer = buffer

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines() if line.strip()]

    def warnings(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("level") == "WARNING"]


def create_pipeline() -> Pipeline:
    kinesis = boto3.client("kinesis", region_name=REGION)
    kinesis.create_stream(StreamName="order-events", ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName="order-events")[
        "StreamDescriptionSummary"
    ]["StreamARN"]

    ddb = boto3.client("dynamodb", region_name=REGION)

    def table(name: str, key: str, **extra: Any) -> dict[str, Any]:
        return ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )["TableDescription"]

    orders = table(
        "orders",
        "order_id",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    table("effects", "effect_id")
    table("recovery", "record_id")

    boto3.client("s3", region_name=REGION).create_bucket(Bucket="quarantine")

    sqs = boto3.client("sqs", region_name=REGION)
    queues = {}
    for name in (
        "ingest-failures",
        "changes-failures",
        "notifications",
        "notifications-dlq",
        "notify-failures",
    ):
        queues[name] = sqs.create_queue(QueueName=name)["QueueUrl"]
    for name in ("fulfilment.fifo", "fulfilment-dlq.fifo"):
        queues[name] = sqs.create_queue(
            QueueName=name,
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
        )["QueueUrl"]

    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(
        RoleName="fn",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    lam = boto3.client("lambda", region_name=REGION)
    for name in ("notifier", "changes"):
        lam.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role,
            Handler=f"{name}.handler.handler",
            Code={"ZipFile": _tiny_zip()},
        )
    return Pipeline(
        stream_name="order-events",
        stream_arn=stream_arn,
        orders_table="orders",
        orders_stream_arn=orders["LatestStreamArn"],
        effects_table="effects",
        recovery_table="recovery",
        bucket="quarantine",
        queues=queues,
        notifier_function="notifier",
        changes_function="changes",
    )


def _tiny_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


class RecordingDaemon:
    """Stands in for the X-Ray daemon: keeps the segment documents a handler sends."""

    def __init__(self) -> None:
        self.segments: list[dict[str, Any]] = []

    def send(self, document: Any) -> None:
        self.segments.append(dict(document))


def record_linked_segments(monkeypatch: Any) -> RecordingDaemon:
    """Tracing on for ``linked_traces``, its segments kept instead of sent over UDP."""
    from orderflow.observability import linked_traces

    daemon = RecordingDaemon()
    monkeypatch.setattr(linked_traces, "emitter", daemon)
    return daemon
