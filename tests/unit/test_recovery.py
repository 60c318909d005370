"""Recovery workflow tasks: drain (incl. stream re-reads), replay and quarantine (acknowledge and
summarize: test_recovery_outcomes.py)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from orderflow.dal import FunctionInvoker, InvocationResult

from .support import FakeContext, fail_when, load_event, throttle


def order_event(order_id: str = "o-9", version: int = 1, **change) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "order_id": order_id,
        "version": version,
        "type": "OrderCreated",
        "occurred_at": "2024-05-01T10:00:00Z",
        "customer_id": "c-9",
        "amount_cents": 500,
        **change,
    }


def kinesis_source(pipeline) -> dict:
    return pipeline.source(
        "ingest-failures",
        "kinesis-failure",
        {"type": "kinesis", "streamName": pipeline.stream_name},
    )


def put_records(pipeline, payloads: list[str]) -> list[str]:
    kinesis = boto3.client("kinesis")
    return [
        kinesis.put_record(StreamName=pipeline.stream_name, Data=p.encode(), PartitionKey="k")[
            "SequenceNumber"
        ]
        for p in payloads
    ]


def kinesis_failure(pipeline, start: str, end: str) -> dict:
    shard = boto3.client("kinesis").list_shards(StreamName=pipeline.stream_name)["Shards"][0]
    return {
        "requestContext": {
            "requestId": "r-1",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:ingest",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 4,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": ""},
        "version": "1.0",
        "timestamp": "2024-05-01T10:00:00.000Z",
        "KinesisBatchInfo": {
            "shardId": shard["ShardId"],
            "startSequenceNumber": start,
            "endSequenceNumber": end,
            "approximateArrivalOfFirstRecord": "2024-05-01T10:00:00.000Z",
            "approximateArrivalOfLastRecord": "2024-05-01T10:00:01.000Z",
            "batchSize": 2,
            "streamArn": pipeline.stream_arn,
        },
    }


# --- drain -------------------------------------------------------------------------------


def test_given_a_kinesis_failure_record_when_drained_then_its_range_is_reread_and_classified(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    good, bad = order_event(), order_event(amount_cents=-1)
    payloads = [
        json.dumps(order_event()),
        json.dumps(good),
        json.dumps(bad),
        json.dumps(order_event()),
    ]
    sequences = put_records(pipeline, payloads)
    pipeline.send("ingest-failures", kinesis_failure(pipeline, sequences[1], sequences[2]))

    out = recovery.drain({"source": kinesis_source(pipeline), "maxMessages": 10}, context)

    assert out["count"] == 2
    first, second = out["items"]
    assert (first["payload"], first["classification"]) == (payloads[1], "transient")
    assert first["reason"].startswith("RetryAttemptsExhausted")
    assert first["recordId"] == f"ingest-failures#event#{good['event_id']}"
    assert first["waitSeconds"] > 0 and first["attempt"] == 1
    assert (second["payload"], second["classification"]) == (payloads[2], "poison")
    assert "amount_cents" in second["reason"]
    assert first["receiptHandle"] == second["receiptHandle"]
    assert out["source"]["name"] == "ingest-failures"


def test_given_a_poison_envelope_when_drained_then_poison_with_its_reason_and_payload(
    pipeline, load_function, context
):
    ingest = load_function("ingest")
    event = load_event("kinesis_order_events")
    event["Records"] = [event["Records"][1]]
    ingest.handler(event, context)
    recovery = load_function("recovery")

    out = recovery.drain({"source": kinesis_source(pipeline)}, context)

    [item] = out["items"]
    assert item["classification"] == "poison"
    assert "amount_cents" in item["reason"]
    assert json.loads(item["payload"])["order_id"] == "o-2"
    assert item["waitSeconds"] == 0


def test_given_a_dynamodb_failure_record_when_drained_then_changes_are_reread_from_the_stream(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    from orderflow.dal import state_to_item
    from orderflow.events import OrderEvent
    from orderflow.logic import state_for

    ddb = boto3.client("dynamodb")
    for version in (1, 2):
        event = OrderEvent.model_validate(order_event("o-7", version, type="OrderPaid"))
        ddb.put_item(TableName=pipeline.orders_table, Item=state_to_item(state_for(event)))
    shard_id, records = pipeline.orders_stream_records()
    sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
    failure = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
        "responseContext": {"functionError": "Unhandled"},
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": sequences[1],
            "endSequenceNumber": sequences[1],
            "batchSize": 1,
            "streamArn": pipeline.orders_stream_arn,
        },
    }
    pipeline.send("changes-failures", failure)
    changes_source = pipeline.source(
        "changes-failures",
        "dynamodb-failure",
        {"type": "lambda", "functionName": "changes", "streamArn": pipeline.orders_stream_arn},
    )

    out = recovery.drain({"source": changes_source}, context)

    [item] = out["items"]
    assert item["classification"] == "transient"
    change = json.loads(item["payload"])
    assert change["eventName"] == "MODIFY"
    assert change["dynamodb"]["NewImage"]["version"] == {"N": "2"}
    assert "functionError=Unhandled" in item["reason"]


@pytest.mark.parametrize(
    ("body", "classification"),
    [
        (load_event("notifier_task"), "transient"),
        ({"kind": "notify", "order_id": "o-1"}, "poison"),
        ("not json at all", "poison"),
    ],
)
def test_given_a_dlq_message_when_drained_then_revalidated_against_the_task_schema(
    pipeline, load_function, context, body, classification
):
    recovery = load_function("recovery")
    pipeline.send("notifications-dlq", body)
    dlq = pipeline.source(
        "notifications-dlq",
        "sqs-dlq",
        {"type": "sqs", "queueUrl": pipeline.queues["notifications"]},
    )

    [item] = recovery.drain({"source": dlq}, context)["items"]

    assert item["classification"] == classification


def notify_failures(pipeline, payload, error_type: str, message: str) -> dict:
    """An OnFailure record for ``payload`` in notify-failures; the source that drains it."""
    pipeline.send(
        "notify-failures",
        {
            "version": "1.0",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": payload,
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {"errorType": error_type, "errorMessage": message},
        },
    )
    return pipeline.source(
        "notify-failures",
        "lambda-destination",
        {"type": "lambda-async", "functionName": "notifier"},
    )


@pytest.mark.parametrize(
    ("error_type", "classification"),
    [("PoisonRecordError", "poison"), ("TransientError", "transient")],
)
def test_given_a_lambda_destination_record_when_drained_then_classified_by_its_error_type(
    pipeline, load_function, context, error_type, classification
):
    recovery = load_function("recovery")
    failures = notify_failures(pipeline, load_event("notifier_task"), error_type, "it broke")

    [item] = recovery.drain({"source": failures}, context)["items"]

    assert item["classification"] == classification
    assert f"{error_type}: it broke" in item["reason"]
    assert json.loads(item["payload"]) == load_event("notifier_task")


def test_given_a_failed_notification_batch_when_drained_then_one_item_per_task(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    good = load_event("notifier_task")
    other = {**good, "order_id": "o-2", "event_id": str(uuid.uuid4()), "task_id": str(uuid.uuid4())}
    bad = {**good, "status": "LOST"}
    batch = {
        "kind": "notify-batch",
        "notifications": [
            {"task": good, "traceHeader": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"},
            {"task": bad},
            {"task": other},
        ],
    }
    failures = notify_failures(pipeline, batch, "PoisonRecordError", "1 of 3 failed")

    items = recovery.drain({"source": failures}, context)["items"]

    # each task judged on its own: the batch's error type does not make the valid ones poison
    assert [json.loads(item["payload"]) for item in items] == [good, bad, other]
    assert [item["classification"] for item in items] == ["transient", "poison", "transient"]
    assert "status" in items[1]["reason"]
    assert len({item["recordId"] for item in items}) == 3
    assert len({item["receiptHandle"] for item in items}) == 1


def test_given_a_malformed_notification_batch_when_drained_then_kept_whole_as_poison(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    batch = {"kind": "notify-batch", "notifications": "nothing"}
    failures = notify_failures(pipeline, batch, "PoisonRecordError", "invalid")

    [item] = recovery.drain({"source": failures}, context)["items"]

    assert item["classification"] == "poison"
    assert json.loads(item["payload"]) == batch


def test_given_many_messages_when_drained_then_the_state_stays_small(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    for _ in range(10):
        pipeline.send("notifications-dlq", "x" * 40_000)
    dlq = pipeline.source(
        "notifications-dlq",
        "sqs-dlq",
        {"type": "sqs", "queueUrl": pipeline.queues["notifications"]},
    )

    out = recovery.drain({"source": dlq, "maxMessages": 10}, context)

    assert len(json.dumps(out)) < 200_000
    assert all(item["classification"] == "poison" for item in out["items"])


# --- replay ------------------------------------------------------------------------------


def transient(record_id: str, payload: str, **extra) -> dict:
    return {
        "recordId": record_id,
        "classification": "transient",
        "reason": "RetryAttemptsExhausted",
        "payload": payload,
        "receiptHandle": f"rh-{record_id}",
        "attempt": 1,
        "waitSeconds": 2,
        "continuation": "",
        **extra,
    }


def replay_one(recovery, source: dict, item: dict, context) -> tuple[str, list[dict]]:
    """Replay one item through the batch task: its outcome ("" when handed to quarantine)."""
    out = recovery.replay({"source": source, "items": [item]}, context)
    assert out["count"] == 1
    outcomes = [record["outcome"] for record in out["records"]]
    return (outcomes[0] if outcomes else ""), out["quarantine"]


def test_given_a_transient_kinesis_item_when_replayed_then_put_back_keyed_by_order_until_exhausted(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    payload = json.dumps(order_event("o-42"))
    item = transient("ingest-failures#event#1", payload)
    src = kinesis_source(pipeline)

    results = [replay_one(recovery, src, item, context) for _ in range(4)]

    assert results[:3] == [("replayed", [])] * 3
    outcome, [exhausted] = results[3]
    assert outcome == ""  # handed to quarantine, with why
    assert exhausted["recordId"] == item["recordId"]
    assert exhausted["reason"] == "RetryAttemptsExhausted; 3 replay attempts used up"
    kinesis = boto3.client("kinesis")
    shard = kinesis.list_shards(StreamName=pipeline.stream_name)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=pipeline.stream_name, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [(r["PartitionKey"], r["Data"].decode()) for r in records] == [("o-42", payload)] * 3
    ledger = boto3.client("dynamodb").get_item(
        TableName=pipeline.recovery_table, Key={"record_id": {"S": item["recordId"]}}
    )["Item"]
    assert ledger["attempts"] == {"N": "3"} and ledger["state"] == {"S": "REPLAYING"}


def test_given_a_mixed_batch_when_replayed_then_one_outcome_per_record_in_one_call(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    src = kinesis_source(pipeline)
    items = [
        transient("r-1", json.dumps(order_event("o-1")), continuation="rest-of-range"),
        {**transient("r-2", "{}"), "classification": "poison", "reason": "bad"},
        {**transient("r-3", ""), "classification": "deferred"},
        transient("r-4", json.dumps(order_event("o-4"))),
        {**transient("r-5", json.dumps(order_event("o-5"))), "classification": "unknown"},
    ]

    out = recovery.replay({"source": src, "items": items}, context)

    assert out["count"] == 5
    assert sorted((r["recordId"], r["outcome"]) for r in out["records"]) == [
        ("r-1", "replayed"),
        ("r-3", "failed"),  # not drained this run: never replayed on a guess
        ("r-4", "replayed"),
        ("r-5", "failed"),
    ]
    [first] = [r for r in out["records"] if r["recordId"] == "r-1"]
    assert first == {
        "recordId": "r-1",
        "receiptHandle": "rh-r-1",
        "outcome": "replayed",
        "continuation": "rest-of-range",
    }
    assert [item["recordId"] for item in out["quarantine"]] == ["r-2"]
    assert out["quarantine"][0]["reason"] == "bad"


def test_given_a_fulfilment_task_when_replayed_to_fifo_then_grouped_by_order(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    task = json.loads(load_event("sqs_fifo_fulfilment")["Records"][0]["body"])
    src = pipeline.source(
        "fulfilment-dlq.fifo",
        "sqs-dlq",
        {"type": "sqs", "queueUrl": pipeline.queues["fulfilment.fifo"]},
    )

    assert replay_one(recovery, src, transient("r-fifo", json.dumps(task)), context) == (
        "replayed",
        [],
    )

    [message] = pipeline.messages("fulfilment.fifo")
    assert message["Attributes"]["MessageGroupId"] == "o-A"
    assert json.loads(message["Body"]) == task


def test_given_a_change_when_replayed_to_the_changes_function_then_tasks_are_sent(
    pipeline, load_function, context, monkeypatch
):
    changes = load_function("changes")
    record = load_event("dynamodb_order_changes")["Records"][1]

    def invoke_changes(self, function_name, payload):
        # The local stand-in for Lambda: run the real changes handler on the synthetic event.
        return InvocationResult(200, None, changes.handler(json.loads(payload), context))

    monkeypatch.setattr(FunctionInvoker, "invoke_sync", invoke_changes)
    recovery = load_function("recovery")
    src = pipeline.source(
        "changes-failures",
        "dynamodb-failure",
        {"type": "lambda", "functionName": "changes"},
    )
    payload = json.dumps({"eventName": record["eventName"], "dynamodb": record["dynamodb"]})

    assert replay_one(recovery, src, transient("r-ddb", payload), context) == ("replayed", [])
    assert [json.loads(m["Body"])["order_id"] for m in pipeline.messages("fulfilment.fifo")] == [
        "o-11"
    ]


def test_given_a_task_when_replayed_async_then_notifier_is_invoked(
    pipeline, load_function, context, monkeypatch
):
    recovery = load_function("recovery")
    sent = []
    monkeypatch.setattr(
        FunctionInvoker, "invoke_async", lambda self, name, payload: sent.append((name, payload))
    )
    src = pipeline.source(
        "notify-failures",
        "lambda-destination",
        {"type": "lambda-async", "functionName": "notifier"},
    )
    payload = json.dumps(load_event("notifier_task"))

    assert replay_one(recovery, src, transient("r-n", payload), context) == ("replayed", [])
    assert sent == [("notifier", payload.encode())]


def _throttled_puts(monkeypatch, recovery, refuse) -> list:
    """Kinesis puts that Kinesis throttles when ``refuse(calls so far)``; passes without pauses."""
    import orderflow.dal.replay as replay_dal

    calls: list = []
    fail_when(
        monkeypatch,
        replay_dal,
        "kinesis_put",
        lambda *a, **k: calls.append(a) or refuse(len(calls)),
        throttle("PutRecord"),
    )
    monkeypatch.setattr(recovery, "REPLAY_PASS_PAUSES", (0.0, 0.0))
    return calls


def test_given_a_throttled_target_when_replayed_then_retried_in_passes_and_failed_for_this_run(
    pipeline, load_function, context, monkeypatch
):
    recovery = load_function("recovery")
    calls = _throttled_puts(monkeypatch, recovery, refuse=lambda count: True)
    src = kinesis_source(pipeline)

    outcome, quarantine = replay_one(
        recovery, src, transient("r-t", json.dumps(order_event())), context
    )

    # failed: its message stays for the next run; the attempt was counted once, not per pass
    assert (outcome, quarantine) == ("failed", [])
    assert len(calls) == 3
    ledger = boto3.client("dynamodb").get_item(
        TableName=pipeline.recovery_table, Key={"record_id": {"S": "r-t"}}
    )["Item"]
    assert ledger["attempts"] == {"N": "1"}


def test_given_the_ledger_refusing_one_record_when_replayed_then_only_it_waits_a_run(
    pipeline, load_function, context, monkeypatch
):
    recovery = load_function("recovery")
    from orderflow.dal import RecoveryLedger

    fail_when(
        monkeypatch,
        RecoveryLedger,
        "begin_replay",
        lambda self, record_id, **k: record_id == "r-1",
        throttle("UpdateItem"),
    )
    items = [
        transient("r-1", json.dumps(order_event("o-1"))),
        transient("r-2", json.dumps(order_event("o-2"))),
    ]

    out = recovery.replay({"source": kinesis_source(pipeline), "items": items}, context)

    assert [(r["recordId"], r["outcome"]) for r in out["records"]] == [
        ("r-1", "failed"),
        ("r-2", "replayed"),
    ]


def test_given_a_target_that_recovers_when_replayed_then_the_next_pass_replays_it(
    pipeline, load_function, context, monkeypatch
):
    recovery = load_function("recovery")
    calls = _throttled_puts(monkeypatch, recovery, refuse=lambda count: count == 1)
    src = kinesis_source(pipeline)
    item = transient("r-t", json.dumps(order_event()))

    assert replay_one(recovery, src, item, context) == ("replayed", [])
    assert len(calls) == 2


def test_given_little_time_left_when_replayed_then_the_rest_fail_for_this_run_unpublished(
    pipeline, load_function, monkeypatch
):
    recovery = load_function("recovery")

    class Ending(FakeContext):
        def get_remaining_time_in_millis(self) -> int:
            return 5_000

    out = recovery.replay(
        {"source": kinesis_source(pipeline), "items": [transient("r-late", "{}")]}, Ending()
    )

    assert [r["outcome"] for r in out["records"]] == ["failed"]
    table = boto3.client("dynamodb").scan(TableName=pipeline.recovery_table)["Items"]
    assert table == []  # no attempt counted for a record never published


# --- quarantine and acknowledge ----------------------------------------------------------


def test_given_a_poison_item_when_quarantined_twice_then_one_object_and_one_index_entry(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    item = {
        "recordId": "ingest-failures#sha256#abc",
        "classification": "poison",
        "reason": "amount_cents: must be >= 0",
        "payload": '{"amount_cents": -1}',
        "receiptHandle": "rh-1",
    }
    src = kinesis_source(pipeline)
    replayed = {"recordId": "r-0", "receiptHandle": "rh-0", "outcome": "replayed"}

    first = recovery.quarantine({"source": src, "records": [replayed], "items": [item]}, context)
    second = recovery.quarantine({"source": src, "records": [], "items": [item]}, context)

    assert first["count"] == 2
    assert [(r["recordId"], r["outcome"]) for r in first["records"]] == [
        ("r-0", "replayed"),
        (item["recordId"], "quarantined"),
    ]
    assert second["records"][0]["outcome"] == "quarantined"
    objects = boto3.client("s3").list_objects_v2(Bucket=pipeline.bucket)["Contents"]
    [key] = [o["Key"] for o in objects]
    body = json.loads(boto3.client("s3").get_object(Bucket=pipeline.bucket, Key=key)["Body"].read())
    assert (body["reason"], body["payload"]) == (item["reason"], item["payload"])
    index = boto3.client("dynamodb").scan(TableName=pipeline.recovery_table)["Items"]
    assert len(index) == 1
    assert index[0]["state"] == {"S": "QUARANTINED"}
    assert index[0]["reason"] == {"S": item["reason"]}
    assert index[0]["s3_key"] == {"S": key}


def test_given_a_store_that_fails_when_quarantining_then_that_record_fails_and_the_rest_go_on(
    pipeline, load_function, context, monkeypatch
):
    recovery = load_function("recovery")
    from orderflow.dal import QuarantineStore

    real_put = QuarantineStore.put

    def put(self, key, data, **kwargs):
        if b"r-bad" in data:
            raise RuntimeError("S3 is down for this one")
        return real_put(self, key, data, **kwargs)

    monkeypatch.setattr(QuarantineStore, "put", put)
    items = [
        {"recordId": "r-bad", "reason": "x", "payload": "{}", "receiptHandle": "rh-1"},
        {"recordId": "r-ok", "reason": "x", "payload": "{}", "receiptHandle": "rh-2"},
    ]

    out = recovery.quarantine(
        {"source": kinesis_source(pipeline), "records": [], "items": items}, context
    )

    assert [(r["recordId"], r["outcome"]) for r in out["records"]] == [
        ("r-bad", "failed"),
        ("r-ok", "quarantined"),
    ]


def test_given_a_quarantined_record_when_replayed_then_handed_back_to_quarantine(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    item = transient("r-q", json.dumps(order_event()))
    src = kinesis_source(pipeline)
    recovery.quarantine({"source": src, "records": [], "items": [item]}, context)

    outcome, [again] = replay_one(recovery, src, item, context)

    assert outcome == "" and again["recordId"] == "r-q"
