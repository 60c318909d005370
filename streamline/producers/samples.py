"""Sample Lambda events for the pipeline's sources, like ``sam local generate-event``.

Each has AWS's exact event shape for its source, carrying our own payloads:

- ``kinesis``: order events (base64 ``data``) as ingest receives them from ``order-events``;
- ``dynamodb``: ``orders`` stream records (INSERT, then MODIFY with the OldImage) in DynamoDB
  JSON, as changes receives them;
- ``sqs``: NotificationTask bodies from ``notifications``, as notify receives them;
- ``sqs-fifo``: FulfilmentTask bodies from ``fulfilment.fifo`` with the FIFO attributes
  (MessageGroupId = order id, MessageDeduplicationId = task id, SequenceNumber), as fulfil
  receives them.

Records come from :func:`streamline.producers.generate.generate_events`, so with a seed the
sample is the same each time (apart from ``now``, which sets the timestamps).

Example::

    >>> event = sample_event("kinesis", count=2, seed=1)
    >>> [r["eventSource"] for r in event["Records"]]
    ['aws:kinesis', 'aws:kinesis']
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from orderflow.dal.orders import record_to_item
from orderflow.events import FulfilmentTask, NotificationTask, OrderRecord, Task, parse_event
from orderflow.logic import record_event, tasks_for_change

from streamline.producers.generate import generate_events

__all__ = ["SOURCES", "sample_event"]

SOURCES = ("kinesis", "dynamodb", "sqs", "sqs-fifo")

REGION = "us-east-1"
ACCOUNT = "123456789012"
# Where AWS's own samples start their Kinesis sequence numbers (56 digits, increasing).
_KINESIS_SEQUENCE = 49590338271490256608559692538361571095921575989136588898


def sample_event(
    source: str, count: int = 3, *, seed: int | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """A Lambda event of ``count`` records from ``source`` (one of :data:`SOURCES`).

    Raises:
        ValueError: an unknown source or a count below 1.
    """
    if count < 1:
        raise ValueError(f"count must be 1 or more, got {count}")
    now = now or datetime.now(UTC)
    rng = random.Random(seed)
    if source == "kinesis":
        return {"Records": _kinesis(count, rng, now)}
    if source == "dynamodb":
        return {"Records": _dynamodb(count, rng, now)}
    if source == "sqs":
        return {"Records": _sqs(_tasks(NotificationTask, count, rng, now), rng, now, fifo=False)}
    if source == "sqs-fifo":
        return {"Records": _sqs(_tasks(FulfilmentTask, count, rng, now), rng, now, fifo=True)}
    raise ValueError(f"unknown source {source!r} (choose from {', '.join(SOURCES)})")


def _events(count: int, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    return [e.payload for e in generate_events(count, seed=rng.getrandbits(64), now=now)]


def _kinesis(count: int, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    records = []
    arrival = round(now.timestamp(), 3)
    for index, payload in enumerate(_events(count, rng, now)):
        sequence = str(_KINESIS_SEQUENCE + index * 1_000_000)
        data = json.dumps(payload, separators=(",", ":")).encode()
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": payload["order_id"],
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data).decode("ascii"),
                    "approximateArrivalTimestamp": arrival,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/lambda-role",
                "awsRegion": REGION,
                "eventSourceARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/order-events",
            }
        )
    return records


def _dynamodb(count: int, rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    label = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}"
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders/stream/{label}"
    states: dict[str, OrderRecord] = {}
    records = []
    for index, payload in enumerate(_events(count, rng, now)):
        event = parse_event(payload)
        old = states.get(event.order_id)
        new = record_event(old, event)
        if new is None:  # pragma: no cover - generated lifecycles only move forward
            continue
        states[event.order_id] = new
        change: dict[str, Any] = {
            "ApproximateCreationDateTime": int(now.timestamp()),
            "Keys": {"order_id": {"S": new.state.order_id}},
            "NewImage": record_to_item(new),
            "SequenceNumber": f"{4421584500000000017450439091 + index * 100}",
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if old is not None:
            change["OldImage"] = record_to_item(old)
        images = [change.get("Keys"), change.get("NewImage"), change.get("OldImage")]
        change["SizeBytes"] = sum(len(json.dumps(i)) for i in images if i)
        records.append(
            {
                "eventID": f"{rng.getrandbits(128):032x}",
                "eventName": "INSERT" if old is None else "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": REGION,
                "dynamodb": change,
                "eventSourceARN": arn,
            }
        )
    return records


def _tasks(
    kind: type[FulfilmentTask] | type[NotificationTask],
    count: int,
    rng: random.Random,
    now: datetime,
) -> list[Task]:
    """The first ``count`` tasks of ``kind`` the pipeline derives from generated events."""
    tasks: list[Task] = []
    batch = count
    while len(tasks) < count:
        # Not every event causes a fulfilment task: generate more until there are enough.
        batch *= 2
        tasks = []
        states: dict[str, OrderRecord] = {}
        for payload in _events(batch, rng, now):
            event = parse_event(payload)
            old = states.get(event.order_id)
            new = record_event(old, event)
            if new is not None:
                states[event.order_id] = new
                tasks.extend(t for t in tasks_for_change(old, new) if isinstance(t, kind))
    return tasks[:count]


def _sqs(
    tasks: list[Task], rng: random.Random, now: datetime, *, fifo: bool
) -> list[dict[str, Any]]:
    queue = "fulfilment.fifo" if fifo else "notifications"
    sent = int(now.timestamp() * 1000)
    records = []
    for index, task in enumerate(tasks):
        body = task.model_dump_json()
        attributes = {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent),
            "SenderId": "AROAEXAMPLEROLEID:changes",
            "ApproximateFirstReceiveTimestamp": str(sent + 2),
        }
        if fifo:
            attributes |= {
                # FIFO sequence numbers are 20-digit, increasing within a group.
                "SequenceNumber": str(18849496460467696128 + index),
                "MessageGroupId": task.order_id,
                "MessageDeduplicationId": task.task_id,
            }
        records.append(
            {
                "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "receiptHandle": base64.b64encode(rng.randbytes(48)).decode("ascii"),
                "body": body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
                "awsRegion": REGION,
            }
        )
    return records
