"""Hostile input at every boundary: a value or a poison reason, never an exception, never a loop.

Each case here broke the pipeline before (issue 9): a deeply nested record stopped the recovery
workflow, loosely typed states and tasks left effects, a long failed stream range was replayed
only in part, SQS-invalid order ids made FIFO sends fail. Real handlers, in-process moto.

One module of ~530 lines on purpose: it reads as the list of hostile inputs the pipeline is
known to survive, boundary by boundary; a new case belongs beside the others.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orderflow.errors import PoisonRecordError
from orderflow.events import (
    FulfilmentTask,
    NotificationTask,
    OrderEvent,
    OrderState,
    fifo_group_id,
    parse_model,
    parse_order_image,
    parse_task,
    read_json,
)
from orderflow.recovery import classify_payload, parse_failure_message, record_id_for

from tests.orders import order_event

DEEP = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"


def deep(levels: int) -> str:
    return '{"a": ' + "[" * levels + "]" * levels + "}"


# --- the strict contract, one place ----------------------------------------------------------

STATE = {
    "order_id": "o-1",
    "status": "PAID",
    "version": 2,
    "last_event_id": str(uuid.uuid4()),
    "amount_cents": 100,
    "customer_id": "c-1",
    "updated_at": "2024-05-01T10:00:00+00:00",
}
TASK = {
    "kind": "fulfil",
    "task_id": str(uuid.uuid4()),
    "order_id": "o-1",
    "customer_id": "c-1",
    "amount_cents": 100,
    "version": 2,
    "event_id": str(uuid.uuid4()),
}
NOTE = {**TASK, "kind": "notify", "status": "PAID"}
NOTE.pop("amount_cents")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", "1"),
        ("version", True),
        ("version", 1.0),
        ("version", 0),
        ("version", 2**31),
        ("amount_cents", "100"),
        ("amount_cents", False),
        ("amount_cents", 10**13),
        ("customer_id", 7),
        ("customer_id", ""),
        ("customer_id", "x" * 257),
        ("order_id", None),
    ],
)
@pytest.mark.parametrize(
    ("model", "valid"),
    [(OrderState, STATE), (FulfilmentTask, TASK), (NotificationTask, NOTE)],
    ids=["state", "fulfil", "notify"],
)
def test_every_model_refuses_coerced_or_unbounded_values_naming_the_field(
    model: Any, valid: dict[str, Any], field: str, value: Any
) -> None:
    if field not in valid:
        pytest.skip(f"{model.__name__} has no {field}")
    bad = {**valid, field: value}

    for data in (bad, json.dumps(bad)):  # python (stream images) and JSON (bodies) alike
        with pytest.raises(PoisonRecordError, match=field):
            parse_model(model, data)


@pytest.mark.parametrize("valid", [STATE, TASK, NOTE], ids=["state", "fulfil", "notify"])
def test_the_valid_forms_still_parse(valid: dict[str, Any]) -> None:
    model = {"fulfil": FulfilmentTask, "notify": NotificationTask}.get(
        valid.get("kind"), OrderState
    )
    assert parse_model(model, valid) == parse_model(model, json.dumps(valid))


@pytest.mark.parametrize("stamp", [1714557600, "1714557600", "2024-05-01", "2024-05-01T10:00:00"])
def test_times_are_iso_strings_with_an_offset_never_epochs(stamp: object) -> None:
    with pytest.raises(PoisonRecordError, match="updated_at"):
        parse_model(OrderState, {**STATE, "updated_at": stamp})
    with pytest.raises(PoisonRecordError, match="occurred_at"):
        parse_model(OrderEvent, order_event("o-1", occurred_at=stamp))


def test_a_task_without_its_kind_is_poison_not_the_default() -> None:
    body = {key: value for key, value in TASK.items() if key != "kind"}

    with pytest.raises(PoisonRecordError, match="kind"):
        parse_task(json.dumps(body))
    with pytest.raises(PoisonRecordError, match="kind"):
        parse_model(FulfilmentTask, body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_are_a_value_or_a_poison_reason(data: bytes) -> None:
    for parse in (
        lambda: parse_model(OrderEvent, data),
        lambda: parse_task(data),
        lambda: read_json(data),
    ):
        try:
            parse()
        except PoisonRecordError as exc:
            assert exc.reason and "\n" not in exc.reason


@pytest.mark.parametrize(
    "data",
    [DEEP, DEEP.encode(), b"", b"\xff\xfe\x00", b"\x00" * 10, "x" * (1 << 20), "[" * 100_000],
    ids=["deep", "deep-bytes", "empty", "not-utf8", "nul", "1-MiB", "unclosed"],
)
def test_hostile_payloads_are_poison_with_a_one_line_reason(data: str | bytes) -> None:
    for parse in (lambda: parse_model(OrderEvent, data), lambda: parse_task(data)):
        with pytest.raises(PoisonRecordError) as caught:
            parse()
        assert "\n" not in caught.value.reason and len(caught.value.reason) < 600


# --- DynamoDB images of any attribute type ---------------------------------------------------


def image(**override: Any) -> dict[str, Any]:
    typed = {
        "order_id": {"S": "o-1"},
        "status": {"S": "PAID"},
        "version": {"N": "2"},
        "last_event_id": {"S": STATE["last_event_id"]},
        "amount_cents": {"N": "100"},
        "customer_id": {"S": "c-1"},
        "updated_at": {"S": "2024-05-01T10:00:00+00:00"},
    }
    typed.update(override)
    return {k: v for k, v in typed.items() if v is not None}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"version": {"S": "2"}}, "version"),
        ({"version": {"N": "2.5"}}, "version"),
        ({"version": {"BOOL": True}}, "version"),
        ({"amount_cents": {"NULL": True}}, "amount_cents"),
        ({"customer_id": {"B": base64.b64encode(b"\x00\xff").decode()}}, "customer_id"),
        ({"customer_id": {"B": b"\x00\xff"}}, "customer_id"),
        ({"customer_id": {"BS": ["AAE="]}}, "customer_id"),
        ({"customer_id": {"M": {"a": {"M": {"b": {"L": [{"N": "1"}]}}}}}}, "customer_id"),
        ({"status": {"SS": ["PAID"]}}, "status"),
        ({"extra": {"S": "surprise"}}, "extra"),
        ({"seen_PAID": {"S": "not a mark"}}, "seen_PAID"),
        ({"seen_LOST": {"S": "1|" + STATE["last_event_id"]}}, "seen_LOST"),
        ({"version": {"Q": "1"}}, "version"),
        ({"version": "2"}, "version"),
        ({"updated_at": None}, "updated_at"),
    ],
)
def test_an_image_that_cannot_be_a_state_is_poison_naming_the_attribute(
    override: dict[str, Any], field: str
) -> None:
    with pytest.raises(PoisonRecordError, match=field):
        parse_order_image(image(**override))


def test_a_valid_image_reads_its_state_marks_and_trace_header() -> None:
    mark = f"1|{uuid.uuid4()}"
    record = parse_order_image(
        image(seen_CREATED={"S": mark}, trace_header={"S": "Root=1-5759e988-bd862e3f"})
    )

    assert record.state == parse_model(OrderState, STATE)
    assert {s.value: m.render() for s, m in record.seen.items()} == {
        "CREATED": mark,
        "PAID": f"2|{STATE['last_event_id']}",
    }
    assert record.trace_header == "Root=1-5759e988-bd862e3f"


# --- FIFO identifiers ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=256))
def test_every_order_id_gets_a_group_id_sqs_accepts_and_always_the_same(order_id: str) -> None:
    group = fifo_group_id(order_id)

    assert 1 <= len(group) <= 128
    assert all(33 <= ord(ch) <= 126 for ch in group)
    assert group == fifo_group_id(order_id)


def test_a_valid_order_id_is_its_own_group_and_others_are_hashed_apart() -> None:
    assert fifo_group_id("o-1") == "o-1"
    assert fifo_group_id("o 1") != fifo_group_id("o  1")
    assert fifo_group_id("x" * 129).startswith("h-")


# --- recovery: any failure message -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        "not json",
        "[]",
        "{}",
        '{"KinesisBatchInfo": {"shardId": "s"}}',
        '{"KinesisBatchInfo": "nope"}',
        '{"DDBStreamBatchInfo": {"streamArn": 1}}',
        '{"requestContext": {}}',
        "\u0000\u0001",
    ],
)
def test_a_failure_message_nobody_can_read_is_unreadable_with_its_raw_bytes(body: str) -> None:
    parsed = parse_failure_message(body, "kinesis-failure")

    assert type(parsed).__name__ == "Unreadable"
    assert base64.b64decode(parsed.raw.removeprefix("base64:")) == body.encode()
    assert parsed.reason


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.sampled_from([DEEP, deep(150), deep(300)]))
def test_record_ids_and_classification_never_raise(payload: str) -> None:
    for target in ("kinesis", "lambda", "sqs", "lambda-async"):
        assert classify_payload(payload, target).reason
    assert record_id_for("s", payload).startswith("s#")
    assert record_id_for("s", payload, poison=True).startswith("s#sha256#")
    for kind in ("sqs-dlq", "kinesis-failure", "lambda-destination"):
        parse_failure_message(payload, kind)


def kinesis_source(pipeline: Any) -> dict[str, Any]:
    return {
        "name": "ingest-failures",
        "kind": "kinesis-failure",
        "queueUrl": pipeline.queues["ingest-failures"],
        "target": {"type": "kinesis", "streamName": pipeline.stream_name},
    }


def test_a_deeply_nested_record_is_quarantined_not_a_crash_of_drain(
    pipeline: Any, load_function: Any, context: Any
) -> None:
    """Issue 9, case 1: 5,000 levels stopped every recovery run with RecursionError."""
    # Given ingest met the record (its envelope) and a raw deep body on the same queue
    ingest = load_function("ingest")
    record = {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "k",
            "sequenceNumber": "49590000000000000000000000000000000000000000000000000001",
            "data": base64.b64encode(DEEP.encode()).decode(),
            "approximateArrivalTimestamp": 1714557600.0,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": "shardId-000000000000:49590000000000000000000000000000000000000000000000000001",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/r",
        "awsRegion": "us-east-1",
        "eventSourceARN": pipeline.stream_arn,
    }
    assert ingest.handler({"Records": [record]}, context) == {"batchItemFailures": []}
    boto3.client("sqs").send_message(QueueUrl=pipeline.queues["ingest-failures"], MessageBody=DEEP)

    # When the recovery workflow drains the queue
    out = load_function("recovery").drain({"source": kinesis_source(pipeline)}, context)

    # Then both are poison items with a reason: the envelope's and "unreadable"
    reasons = sorted(item["reason"] for item in out["items"])
    assert [item["classification"] for item in out["items"]] == ["poison", "poison"]
    assert any("recursion" in r.lower() for r in reasons)
    assert any(r.startswith("unreadable:") for r in reasons)
    unreadable = next(i for i in out["items"] if i["reason"].startswith("unreadable:"))
    assert "payloadRef" in unreadable  # 13 KiB of brackets: kept whole in S3, not truncated
    bucket, key = unreadable["payloadRef"].removeprefix("s3://").split("/", 1)
    kept = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert base64.b64decode(kept.removeprefix("base64:")).decode() == DEEP


def test_a_long_failed_range_is_replayed_whole_across_messages(
    pipeline: Any, load_function: Any, context: Any
) -> None:
    """A range of 70 records once lost its last 20: drain read 50 and the message was deleted."""
    kinesis = boto3.client("kinesis")
    events = [order_event(f"o-range-{n}") for n in range(70)]
    sequences = [
        kinesis.put_record(
            StreamName=pipeline.stream_name, Data=json.dumps(e).encode(), PartitionKey="k"
        )["SequenceNumber"]
        for e in events
    ]
    shard = kinesis.list_shards(StreamName=pipeline.stream_name)["Shards"][0]["ShardId"]
    failure = {
        "version": "1.0",
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 4},
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": sequences[0],
            "endSequenceNumber": sequences[-1],
            "batchSize": 70,
            "streamArn": pipeline.stream_arn,
        },
    }
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=pipeline.queues["ingest-failures"], MessageBody=json.dumps(failure))
    recovery = load_function("recovery")

    source = kinesis_source(pipeline)
    seen: list[str] = []
    for _ in range(5):  # drain, acknowledge (continuation, then delete), drain the rest, ...
        out = recovery.drain({"source": source, "maxMessages": 10}, context)
        if not out["items"]:
            break
        seen += [json.loads(item["payload"])["event_id"] for item in out["items"]]
        records = [{**item, "outcome": "replayed"} for item in out["items"]]
        acknowledged = recovery.acknowledge({"source": source, "records": records}, context)
        assert "error" not in acknowledged

    assert seen == [e["event_id"] for e in events]


def test_the_rest_of_a_range_is_not_sent_while_its_message_stays(
    pipeline: Any, load_function: Any, context: Any
) -> None:
    """A message that is not deleted (a record failed) keeps the whole range: no second copy."""
    kinesis = boto3.client("kinesis")
    sequences = [
        kinesis.put_record(
            StreamName=pipeline.stream_name,
            Data=json.dumps(order_event(f"o-keep-{n}")).encode(),
            PartitionKey="k",
        )["SequenceNumber"]
        for n in range(55)
    ]
    shard = kinesis.list_shards(StreamName=pipeline.stream_name)["Shards"][0]["ShardId"]
    info = {
        "shardId": shard,
        "startSequenceNumber": sequences[0],
        "endSequenceNumber": sequences[-1],
        "streamArn": pipeline.stream_arn,
    }
    url = pipeline.queues["ingest-failures"]
    boto3.client("sqs").send_message(
        QueueUrl=url, MessageBody=json.dumps({"KinesisBatchInfo": info})
    )
    recovery, source = load_function("recovery"), kinesis_source(pipeline)

    out = recovery.drain({"source": source, "maxMessages": 10}, context)
    records = [{**item, "outcome": "replayed"} for item in out["items"]]
    records[0]["outcome"] = "failed"
    recovery.acknowledge({"source": source, "records": records}, context)

    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    total = sum(int(v) for v in attributes.values())
    assert total == 1, "only the original message, not a continuation beside it"


def test_a_range_of_removals_only_is_kept_for_a_human_and_its_message_settled(
    pipeline: Any, load_function: Any, context: Any
) -> None:
    ddb = boto3.client("dynamodb")
    ddb.put_item(TableName=pipeline.orders_table, Item={"order_id": {"S": "o-gone"}})
    ddb.delete_item(TableName=pipeline.orders_table, Key={"order_id": {"S": "o-gone"}})
    shard_id, records = pipeline.orders_stream_records()
    removal = next(r for r in records if r["eventName"] == "REMOVE")
    sequence = removal["dynamodb"]["SequenceNumber"]
    failure = {
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": sequence,
            "endSequenceNumber": sequence,
            "streamArn": pipeline.orders_stream_arn,
        }
    }
    pipeline.send("changes-failures", failure)
    source = pipeline.source(
        "changes-failures", "dynamodb-failure", {"type": "lambda", "functionName": "changes"}
    )

    out = load_function("recovery").drain({"source": source}, context)

    (item,) = out["items"]  # never no item: a message without items is never deleted
    assert item["classification"] == "poison"
    assert "no replayable records" in item["reason"]


def test_an_envelope_larger_than_a_record_is_still_read_as_an_envelope() -> None:
    record = {
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "kinesis": {"data": base64.b64encode(b"x" * 100_000).decode(), "sequenceNumber": "1"},
    }
    body = json.dumps(
        {"streamline": "poison/1", "envelopeId": "0" * 32, "reason": "too big", "record": record}
    )
    assert len(body) > 64 * 1024

    parsed = parse_failure_message(body, "kinesis-failure")

    assert type(parsed).__name__ == "PoisonEnvelope"
    assert parsed.envelope_id == "0" * 32 and len(parsed.payload) == 100_000


def test_a_forged_envelope_id_does_not_name_the_record() -> None:
    body = json.dumps({"streamline": "poison/1", "envelopeId": "x" * 3000, "record": {}})

    parsed = parse_failure_message(body, "kinesis-failure")

    assert type(parsed).__name__ == "PoisonEnvelope" and parsed.envelope_id is None


def test_a_valid_event_replaces_an_item_a_careless_writer_left(pipeline: Any) -> None:
    """A stored version that is not a number compares as neither older nor newer: without the
    type check the order could never be written again."""
    from orderflow.dal import OrdersRepository
    from orderflow.events import parse_event
    from orderflow.logic import state_for

    ddb = boto3.client("dynamodb")
    ddb.put_item(
        TableName=pipeline.orders_table,
        Item={"order_id": {"S": "o-corrupt"}, "version": {"S": "9"}, "status": {"S": "LOST"}},
    )
    event = parse_event(order_event("o-corrupt", 1, "OrderCreated"))

    assert OrdersRepository(pipeline.orders_table).record(state_for(event))

    assert OrdersRepository(pipeline.orders_table).get("o-corrupt") == state_for(event)


@pytest.mark.parametrize("shard", ["shardId-000000000000", "shardId-0"], ids=["gone", "short"])
def test_an_on_failure_record_naming_a_stream_that_is_not_there_is_quarantined(
    pipeline: Any, load_function: Any, context: Any, shard: str
) -> None:
    """Not "deferred" forever: no run can ever read it, so it is kept for a human with why
    (a shard id the SDK refuses as too short, too)."""
    gone = {
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": "1",
            "endSequenceNumber": "2",
            "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/never-was",
        }
    }
    boto3.client("sqs").send_message(
        QueueUrl=pipeline.queues["ingest-failures"], MessageBody=json.dumps(gone)
    )

    out = load_function("recovery").drain({"source": kinesis_source(pipeline)}, context)

    (item,) = out["items"]
    assert item["classification"] == "poison"
    assert "cannot be read" in item["reason"]


def test_a_forged_dynamodb_range_the_sdk_refuses_is_quarantined_not_deferred(
    pipeline: Any, load_function: Any, context: Any
) -> None:
    # DynamoDB Streams' shard ids are at least 28 characters, sequence numbers at least 21:
    # botocore refuses these before any request (ParamValidationError), every run the same.
    forged = {
        "DDBStreamBatchInfo": {
            "shardId": "shardId-0",
            "startSequenceNumber": "1",
            "endSequenceNumber": "2",
            "streamArn": pipeline.orders_stream_arn,
        }
    }
    pipeline.send("changes-failures", forged)
    source = pipeline.source(
        "changes-failures", "dynamodb-failure", {"type": "lambda", "functionName": "changes"}
    )

    out = load_function("recovery").drain({"source": source}, context)

    (item,) = out["items"]
    assert item["classification"] == "poison" and "cannot be read" in item["reason"]


def test_envelopes_without_a_record_are_kept_apart_whole() -> None:
    """Two forged envelopes with nothing inside once shared one quarantine key ("{}")."""
    first, second = (
        json.dumps({"streamline": "poison/1", "reason": f"forged {n}", "record": "nope"})
        for n in (1, 2)
    )

    parsed = [parse_failure_message(body, "changes-failures") for body in (first, second)]

    assert [type(p).__name__ for p in parsed] == ["Unreadable", "Unreadable"]
    assert parsed[0].raw != parsed[1].raw
    assert "forged 1" in parsed[0].reason
