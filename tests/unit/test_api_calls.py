"""The API call counter: keys, windows, thread safety, and what each request meters."""

from __future__ import annotations

import base64
import json
import threading

import pytest

from streamline.local import api_calls
from streamline.local.api_calls import (
    ApiCallCounter,
    CallTally,
    caller_of,
    request_shape,
    sqs_units,
)
from streamline.local.identities import IDENTITIES


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counts_by_caller_service_and_operation() -> None:
    counter = ApiCallCounter()

    counter.record("ingest-fn", "dynamodb", "PutItem")
    counter.record("ingest-fn", "dynamodb", "PutItem", units=3)
    counter.record("lambda-esm", "sqs", "DeleteMessageBatch", calls=2, items=15, fifo=True)

    assert counter.snapshot() == {
        ("ingest-fn", "dynamodb", "PutItem"): 2,
        ("lambda-esm", "sqs", "DeleteMessageBatch"): 2,
    }
    tallies = counter.tallies()
    assert tallies[("ingest-fn", "dynamodb", "PutItem")] == CallTally(2, 2, 0, 4, 0)
    assert tallies[("lambda-esm", "sqs", "DeleteMessageBatch")] == CallTally(2, 15, 0, 2, 2)
    counter.reset()
    assert counter.snapshot() == {}


def test_since_gives_the_calls_made_after_a_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = ApiCallCounter()
    monkeypatch.setattr(api_calls, "API_CALLS", counter)
    counter.record("client", "sqs", "SendMessage")
    before = counter.snapshot()

    counter.record("client", "sqs", "SendMessage")
    counter.record("fn", "sqs", "SendMessage")

    assert api_calls.since(before) == {
        ("client", "sqs", "SendMessage"): 1,
        ("fn", "sqs", "SendMessage"): 1,
    }
    assert api_calls.tallies_since({})[("fn", "sqs", "SendMessage")].calls == 1


def test_a_window_reads_only_the_buckets_from_its_start() -> None:
    clock = Clock()
    counter = ApiCallCounter(clock)
    counter.record("fn", "sqs", "SendMessage")
    clock.now += 60
    counter.record("fn", "sqs", "SendMessage", calls=3)

    assert counter.tallies(since_epoch=clock.now - 5)[("fn", "sqs", "SendMessage")].calls == 3
    assert counter.tallies()[("fn", "sqs", "SendMessage")].calls == 4
    # the same through the JSON the local cloud serves
    document = json.loads(json.dumps(counter.as_json()))
    windowed = ApiCallCounter.from_json(document, since_epoch=clock.now - 5)
    assert windowed == {("fn", "sqs", "SendMessage"): CallTally(3, 3, 0, 3)}
    assert ApiCallCounter.from_json(document)[("fn", "sqs", "SendMessage")].calls == 4


def test_buckets_older_than_a_day_are_dropped_but_totals_stay() -> None:
    clock = Clock()
    counter = ApiCallCounter(clock)
    counter.record("fn", "sqs", "SendMessage")
    clock.now += 2 * 24 * 3600
    counter.record("fn", "sqs", "SendMessage")

    assert len(counter.as_json()["buckets"]) == 1
    assert counter.snapshot()[("fn", "sqs", "SendMessage")] == 2


def test_concurrent_records_are_all_counted() -> None:
    counter = ApiCallCounter()

    def work() -> None:
        for _ in range(2000):
            counter.record("fn", "dynamodb", "PutItem")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counter.snapshot() == {("fn", "dynamodb", "PutItem"): 16_000}


def test_the_caller_is_the_function_whose_key_signed_or_client() -> None:
    identity = IDENTITIES.for_function("ingest-fn_1", "arn:aws:iam::123456789012:role/r")
    key = identity.access_key_id
    signed = {
        "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/20261207/us-east-1/sqs/"
        "aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
    }
    assert caller_of(signed) == "ingest-fn_1"
    assert caller_of({}, {"X-Amz-Credential": [f"{key}/20261207/us-east-1/s3/aws4_request"]}) == (
        "ingest-fn_1"
    )
    assert caller_of({}, {"AWSAccessKeyId": [key]}) == "ingest-fn_1"
    assert caller_of({"Authorization": f"AWS {key}:c2lnbmF0dXJl"}) == "ingest-fn_1"
    # Anyone else (the CLI's test keys, an unknown key, no signature) is a client.
    test_keys = signed["Authorization"].replace(key, "test")
    assert caller_of({"Authorization": test_keys}) == "client"
    assert caller_of(
        {"Authorization": signed["Authorization"].replace(key, "ASIA" + "Z" * 16)}
    ) == ("client")
    assert caller_of({}) == "client"
    # A user agent says nothing about the caller any more.
    assert caller_of({"User-Agent": "Boto3/1.44 app/ingest-fn_1"}) == "client"


def test_kinesis_puts_meter_25_kb_units_per_record() -> None:
    small = base64.b64encode(b"x" * 100).decode()
    big = base64.b64encode(b"x" * (30 * 1024)).decode()
    body = json.dumps(
        {
            "StreamName": "s",
            "Records": [{"Data": small, "PartitionKey": "k"}, {"Data": big, "PartitionKey": "k"}],
        }
    )

    shape = request_shape("kinesis", "PutRecords", body)

    assert shape == {"items": 2, "payload_bytes": 101 + 30 * 1024 + 1, "units": 1 + 2}


def test_sqs_requests_meter_64_kb_chunks_and_note_fifo_queues() -> None:
    body = json.dumps(
        {
            "QueueUrl": "http://localhost/123/q.fifo",
            "Entries": [{"Id": str(i), "MessageBody": "y" * 20_000} for i in range(4)],
        }
    )

    assert request_shape("sqs", "SendMessageBatch", body) == {
        "items": 4,
        "payload_bytes": 80_000,
        "units": 2,
        "fifo": True,
    }
    assert sqs_units(0) == 1 and sqs_units(64 * 1024 + 1) == 2


def test_dynamodb_writes_meter_1_kb_units_by_item_size() -> None:
    item = {
        "pk": {"S": "order-1"},
        "blob": {"S": "z" * 1500},
        "n": {"N": "12"},
        "ok": {"BOOL": True},
    }
    put = json.dumps({"TableName": "t", "Item": item})
    batch = json.dumps({"RequestItems": {"t": [{"PutRequest": {"Item": item}}] * 3}})

    size = (2 + 7) + (4 + 1500) + (1 + 2) + (2 + 1)
    assert request_shape("dynamodb", "PutItem", put) == {
        "items": 1,
        "payload_bytes": size,
        "units": 2,
    }
    assert request_shape("dynamodb", "BatchWriteItem", batch)["units"] == 6


def test_unreadable_or_unmetered_requests_are_plain_calls() -> None:
    assert request_shape("sqs", "SendMessage", "Action=SendMessage&QueueUrl=x") == {}
    assert request_shape("logs", "PutLogEvents", '{"logEvents": []}') == {}
    assert request_shape("kinesis", "PutRecords", '{"Records": [{"Data": "%%%"}]}') == {}
