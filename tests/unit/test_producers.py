"""Kinesis producer and the shared send loop: partial failures, limits, ordering, pacing.

Every producer here talks to a real boto3 client on in-process moto (which enforces
PutRecords' 500-record, 5 MiB and 1 MiB limits); a thin wrapper rejects chosen records on
chosen attempts, the way Kinesis answers a partly throttled call, and forwards the rest.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from orderflow.events import parse_event

from streamline.producers import (
    InvalidEventError,
    KinesisProducer,
    PlannedEvent,
    ProduceReport,
    generate_events,
)
from streamline.producers.retry import Backoff, TokenBucket, is_retryable_error

REGION = "us-east-1"
THROTTLED = "ProvisionedThroughputExceededException"


class FlakyKinesis:
    """A real Kinesis client that rejects each record its first ``fails[event_id]`` times.

    ``codes`` picks the error code per event (default a throttle); calls numbered in
    ``throttle_calls`` (1-based) fail whole, as a throttled request does.
    """

    def __init__(
        self,
        real: Any,
        fails: Mapping[str, int] | None = None,
        codes: Mapping[str, str] | None = None,
        throttle_calls: frozenset[int] = frozenset(),
    ) -> None:
        self.real = real
        self.fails = fails or {}
        self.codes = codes or {}
        self.throttle_calls = throttle_calls
        self.attempts: Counter[str] = Counter()
        self.calls: list[list[dict[str, Any]]] = []

    def put_records(self, **kwargs: Any) -> dict[str, Any]:
        records = kwargs["Records"]
        payloads = [json.loads(r["Data"]) for r in records]
        self.calls.append(payloads)
        for payload in payloads:
            self.attempts[payload["event_id"]] += 1
        if len(self.calls) in self.throttle_calls:
            raise ClientError(
                {
                    "Error": {"Code": THROTTLED, "Message": "Rate exceeded for stream"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                "PutRecords",
            )
        results: list[dict[str, Any]] = [{} for _ in records]
        passing = []
        for index, payload in enumerate(payloads):
            event_id = payload["event_id"]
            if self.attempts[event_id] <= self.fails.get(event_id, 0):
                code = self.codes.get(event_id, THROTTLED)
                results[index] = {"ErrorCode": code, "ErrorMessage": f"injected {code}"}
            else:
                passing.append(index)
        if passing:
            answer = self.real.put_records(**{**kwargs, "Records": [records[i] for i in passing]})
            for index, result in zip(passing, answer["Records"], strict=True):
                results[index] = result
        failed = sum("ErrorCode" in r for r in results)
        return {"FailedRecordCount": failed, "Records": results}


def new_stream(shards: int = 1) -> str:
    name = f"events-{uuid.uuid4().hex[:8]}"
    boto3.client("kinesis", region_name=REGION).create_stream(StreamName=name, ShardCount=shards)
    return name


def stream_payloads(stream: str) -> list[dict[str, Any]]:
    """Every record of the stream, shard by shard, in sequence order."""
    kinesis = boto3.client("kinesis", region_name=REGION)
    payloads = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            if not page["Records"]:
                break
            payloads.extend(json.loads(r["Data"]) for r in page["Records"])
            iterator = page.get("NextShardIterator")
    return payloads


def producer(client: Any, stream: str, **options: Any) -> tuple[KinesisProducer, list[float]]:
    sleeps: list[float] = []
    options = {"sleep": sleeps.append, "rng": random.Random(0), **options}
    return KinesisProducer(client, stream, **options), sleeps


def assert_per_order_version_order(payloads: list[dict[str, Any]]) -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    for payload in payloads:
        seen[payload["order_id"]].append(payload["version"])
    for order, versions in seen.items():
        assert versions == sorted(set(versions)), (order, versions)


def distinct_orders(count: int) -> list[dict[str, Any]]:
    """``count`` valid events, each of its own order."""
    now = datetime.now(UTC).isoformat()
    return [
        {
            "event_id": str(uuid.uuid4()),
            "order_id": f"o-{n}",
            "version": 1,
            "type": "OrderCreated",
            "occurred_at": now,
            "customer_id": "c-1",
            "amount_cents": n,
        }
        for n in range(count)
    ]


@pytest.fixture
def kinesis(aws: None) -> Iterator[Any]:
    yield boto3.client("kinesis", region_name=REGION)


# -- partial failures ------------------------------------------------------------------------


def test_given_any_failures_that_clear_when_sent_then_each_event_lands_once_in_order(
    kinesis: Any,
) -> None:
    @settings(max_examples=40, deadline=None)
    @given(data=st.data(), count=st.integers(1, 60), seed=st.integers(0, 2**32))
    def check(data: st.DataObject, count: int, seed: int) -> None:
        events = generate_events(count, poison_rate=0.1, transient_rate=0.2, seed=seed)
        ids = [e.event_id for e in events]
        fails = dict(
            zip(
                ids,
                data.draw(st.lists(st.integers(0, 4), min_size=count, max_size=count)),
                strict=True,
            )
        )
        codes = {i: data.draw(st.sampled_from([THROTTLED, "InternalFailure"])) for i in ids}
        throttles = frozenset(data.draw(st.sets(st.integers(1, 12), max_size=3)))
        stream = new_stream()
        flaky = FlakyKinesis(kinesis, fails, codes, throttles)
        # 4 record rejections + 3 whole-call throttles stay below 10 attempts: all clear.
        sender, sleeps = producer(flaky, stream, max_attempts=10)

        report = sender.send(events)

        assert (report.sent, report.failed, report.skipped) == (count, [], 0)
        landed = stream_payloads(stream)
        assert sorted(p["event_id"] for p in landed) == sorted(ids)  # each exactly once
        assert_per_order_version_order(landed)
        assert {p["event_id"]: p for p in landed} == {e.event_id: e.payload for e in events}
        for call in flaky.calls:
            assert len({p["order_id"] for p in call}) == len(call)  # one record per order
        assert report.calls == len(flaky.calls)
        assert report.retried_entries == sum(flaky.attempts.values()) - count
        assert all(0 <= s <= 2.0 for s in sleeps)

    check()


def test_given_retries_run_out_when_sent_then_those_events_are_reported_and_no_other_is_lost(
    kinesis: Any,
) -> None:
    @settings(max_examples=40, deadline=None)
    @given(data=st.data(), count=st.integers(1, 40), seed=st.integers(0, 2**32))
    def check(data: st.DataObject, count: int, seed: int) -> None:
        events = generate_events(count, seed=seed)
        ids = [e.event_id for e in events]
        fails = dict(
            zip(
                ids,
                data.draw(st.lists(st.integers(0, 5), min_size=count, max_size=count)),
                strict=True,
            )
        )
        # KMSAccessDeniedException is not retryable: one rejection fails the record.
        codes = {
            i: data.draw(
                st.sampled_from([THROTTLED, "InternalFailure", "KMSAccessDeniedException"])
            )
            for i in ids
        }
        stream = new_stream()
        sender, _ = producer(FlakyKinesis(kinesis, fails, codes), stream, max_attempts=3)

        report = sender.send(events)

        def gives_up(event_id: str) -> bool:
            if codes[event_id] == "KMSAccessDeniedException":
                return fails[event_id] >= 1
            return fails[event_id] >= 3

        expected_failed = {i for i in ids if gives_up(i)}
        assert {f.event_id for f in report.failed} == expected_failed
        assert all(f.code == codes[f.event_id] for f in report.failed)
        landed = [p["event_id"] for p in stream_payloads(stream)]
        assert sorted(landed) == sorted(set(ids) - expected_failed)  # once each, none lost
        assert report.sent + len(report.failed) == count

    check()


def test_given_a_throttled_record_when_retried_then_the_backoff_has_full_jitter_and_grows(
    kinesis: Any,
) -> None:
    events = distinct_orders(3)
    stream = new_stream()
    flaky = FlakyKinesis(kinesis, {events[0]["event_id"]: 5})
    sender, sleeps = producer(flaky, stream, base_delay=0.1, max_delay=0.8, max_attempts=8)

    report = sender.send(events)

    assert report.ok and report.calls == 6 and report.retried_entries == 5
    ceilings = [0.1, 0.2, 0.4, 0.8, 0.8]  # base * 2^(attempt-1), capped
    assert len(sleeps) == 5
    assert all(0 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) == 5  # jittered, not a fixed schedule


def test_given_a_whole_call_error_that_is_not_transient_then_every_event_is_reported_failed(
    kinesis: Any,
) -> None:
    events = generate_events(30, seed=1)
    sender, _ = producer(kinesis, "no-such-stream")

    report = sender.send(events)

    assert report.sent == 0 and report.calls == 1
    assert sorted(f.event_id for f in report.failed) == sorted(e.event_id for e in events)
    assert report.aborted and report.aborted.startswith("ResourceNotFoundException")


# -- limits ----------------------------------------------------------------------------------


def test_given_1200_events_when_sent_then_calls_carry_at_most_500_records(kinesis: Any) -> None:
    stream = new_stream()
    flaky = FlakyKinesis(kinesis)
    sender, _ = producer(flaky, stream)

    report = sender.send(distinct_orders(1200))

    assert report.sent == 1200
    assert [len(call) for call in flaky.calls] == [500, 500, 200]


def big(event_id: str, size: int) -> PlannedEvent:
    order = f"o-big-{event_id[:8]}"
    payload = {"event_id": event_id, "order_id": order, "padding": "x" * size}
    return PlannedEvent(event_id, order, 1, "OrderCreated", "poison", payload)


def test_given_records_over_5_mib_in_total_when_sent_then_calls_split_by_size(
    kinesis: Any,
) -> None:
    events = [big(str(uuid.uuid4()), 600_000) for _ in range(10)]
    stream = new_stream()
    flaky = FlakyKinesis(kinesis)
    sender, _ = producer(flaky, stream)

    report = sender.send(events)

    # moto refuses a call over 5 MiB, so success proves the split; 8 x 600 KB fit in one.
    assert report.ok and report.sent == 10
    assert [len(call) for call in flaky.calls] == [8, 2]


def test_given_a_record_over_1_mib_then_it_fails_before_any_call_and_the_rest_are_sent(
    kinesis: Any,
) -> None:
    huge, fine = big(str(uuid.uuid4()), 1024 * 1024), big(str(uuid.uuid4()), 10)
    stream = new_stream()
    sender, _ = producer(FlakyKinesis(kinesis), stream)

    report = sender.send([huge, fine])

    assert report.sent == 1 and report.calls == 1
    assert [(f.event_id, f.code) for f in report.failed] == [(huge.event_id, "RecordTooLarge")]


# -- what is sent ----------------------------------------------------------------------------


def test_given_events_when_sent_then_the_partition_key_is_the_order_and_data_the_payload(
    kinesis: Any,
) -> None:
    events = generate_events(20, seed=5)
    stream = new_stream()
    sender, _ = producer(kinesis, stream)

    sender.send(events)

    kinesis_records = []
    shard = kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    kinesis_records = kinesis.get_records(ShardIterator=iterator)["Records"]
    by_id = {e.event_id: e for e in events}
    for record in kinesis_records:
        event = parse_event(record["Data"])  # what ingest will parse
        assert record["PartitionKey"] == event.order_id
        assert json.loads(record["Data"]) == by_id[event.event_id].payload


def test_given_an_invalid_event_then_the_error_names_it_and_nothing_is_sent(kinesis: Any) -> None:
    events: list[Any] = distinct_orders(3)
    events[1] = {**events[1], "amount_cents": -5}
    flaky = FlakyKinesis(kinesis)
    sender, _ = producer(flaky, new_stream())

    with pytest.raises(InvalidEventError) as raised:
        sender.send(events)

    message = str(raised.value)
    assert message.startswith(f"event 2 ({events[1]['event_id']}) is invalid:")
    assert "amount_cents" in message and "\n" not in message
    assert flaky.calls == []


def test_given_poison_from_fault_injection_then_it_is_sent_unvalidated_and_findable(
    kinesis: Any,
) -> None:
    events = generate_events(20, poison_rate=0.2, seed=9)
    poison = [e for e in events if e.fault == "poison"]
    stream = new_stream()
    sender, _ = producer(kinesis, stream)

    report = sender.send(events)

    assert report.ok and report.sent == 20 and len(poison) == 4
    landed = {p["event_id"]: p for p in stream_payloads(stream)}
    for event in poison:
        assert landed[event.event_id] == event.payload
        assert uuid.UUID(landed[event.event_id]["event_id"])
        assert landed[event.event_id]["order_id"] == event.order_id


def test_given_validation_off_then_an_invalid_mapping_is_sent_as_poison(kinesis: Any) -> None:
    bad = {**distinct_orders(1)[0], "version": "one"}
    stream = new_stream()
    sender, _ = producer(kinesis, stream, validate=False)

    assert sender.send([bad]).sent == 1
    assert stream_payloads(stream) == [bad]


# -- pacing and progress ---------------------------------------------------------------------


def test_given_a_rate_when_sent_then_calls_stay_within_a_second_of_tokens(kinesis: Any) -> None:
    flaky = FlakyKinesis(kinesis)
    sender, sleeps = producer(flaky, new_stream(), rate=100)

    report = sender.send(distinct_orders(450))

    assert report.sent == 450
    assert max(len(call) for call in flaky.calls) <= 100
    # The first 100 ride the initial burst; the other 350 wait for tokens at 100/s.
    assert 0 < sum(sleeps) <= 3.5 + 1e-9


def test_token_bucket_asks_for_exactly_the_missing_time() -> None:
    now = [0.0]
    waits: list[float] = []
    bucket = TokenBucket(10.0, sleep=waits.append, clock=lambda: now[0])

    bucket.acquire(10)  # the burst
    bucket.acquire(5)  # 0.5 s of tokens
    now[0] = 2.0  # 1.5 s later the bucket is full again
    bucket.acquire(10)
    bucket.acquire(1)

    assert waits == pytest.approx([0.5, 0.1])
    assert bucket.max_batch == 10
    assert TokenBucket(0.5).max_batch == 1


def test_backoff_ceiling_doubles_to_the_cap() -> None:
    backoff = Backoff(0.05, 2.0, random.Random(3))
    assert [backoff.ceiling(n) for n in (1, 2, 3, 7, 100)] == [0.05, 0.1, 0.2, 2.0, 2.0]
    assert all(0 <= backoff.delay(4) <= 0.4 for _ in range(100))


def test_retryable_errors_are_throttles_server_faults_and_connection_failures() -> None:
    from botocore.exceptions import EndpointConnectionError

    def client_error(code: str, status: int) -> ClientError:
        meta = {"HTTPStatusCode": status}
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": meta}, "PutRecords")

    assert is_retryable_error(client_error(THROTTLED, 400))
    assert is_retryable_error(client_error("Whatever", 503))
    assert is_retryable_error(EndpointConnectionError(endpoint_url="http://x"))
    assert not is_retryable_error(client_error("ResourceNotFoundException", 400))
    assert not is_retryable_error(ValueError("bug"))


def test_progress_callback_counts_every_event_once(kinesis: Any) -> None:
    events = generate_events(120, seed=4)
    done: list[int] = []
    stream = new_stream()
    huge = big(str(uuid.uuid4()), 2 * 1024 * 1024)
    flaky = FlakyKinesis(kinesis, {events[0].event_id: 2})
    sender, _ = producer(flaky, stream, on_progress=done.append)

    report: ProduceReport = sender.send([*events, huge])

    assert sum(done) == 121 == report.total
