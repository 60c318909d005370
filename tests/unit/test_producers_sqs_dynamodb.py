"""SQS and DynamoDB producers: the pipeline's own formats, partial failures retried, order kept.

Real boto3 clients on in-process moto (the unit ``pipeline`` fixture: the queues and tables as the
stacks create them); thin wrappers reject chosen entries on chosen attempts (SendMessageBatch
``Failed`` entries, BatchWriteItem ``UnprocessedItems``) and forward the rest.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from orderflow.dal import OrdersRepository
from orderflow.errors import PoisonRecordError
from orderflow.events import (
    FulfilmentTask,
    NotificationTask,
    OrderStatus,
    fifo_group_id,
    parse_event,
    parse_model,
    parse_order_image,
)
from orderflow.logic import state_for

from streamline.producers import DynamoDbProducer, SqsProducer, generate_events
from tests.orders import order_event

REGION = "us-east-1"


def quiet(**options: Any) -> dict[str, Any]:
    return {"sleep": lambda _: None, "rng": random.Random(0), **options}


class FlakySqs:
    """A real SQS client whose SendMessageBatch fails each message its first ``fails`` times."""

    def __init__(
        self,
        real: Any,
        fails: Mapping[str, int] | None = None,
        sender_faults: frozenset[str] = frozenset(),
    ) -> None:
        self.real = real
        self.fails = fails or {}
        self.sender_faults = sender_faults
        self.attempts: Counter[str] = Counter()
        self.calls: list[list[dict[str, Any]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        failed, passing = [], []
        for entry in Entries:
            event_id = json.loads(entry["MessageBody"])["event_id"]
            self.attempts[event_id] += 1
            if self.attempts[event_id] <= self.fails.get(event_id, 0):
                fault = event_id in self.sender_faults
                code = "InvalidParameterValue" if fault else "InternalError"
                failed.append(
                    {"Id": entry["Id"], "SenderFault": fault, "Code": code, "Message": "injected"}
                )
            else:
                passing.append(entry)
        answer = self.real.send_message_batch(QueueUrl=QueueUrl, Entries=passing) if passing else {}
        return {
            "Successful": answer.get("Successful", []),
            "Failed": failed + answer.get("Failed", []),
        }


class FlakyDynamoDb:
    """A real DynamoDB client whose writes are throttled for an event its first ``fails`` times."""

    def __init__(self, real: Any, fails: Mapping[str, int] | None = None) -> None:
        self.real = real
        self.exceptions = real.exceptions
        self.fails = fails or {}
        self.attempts: Counter[str] = Counter()
        self.written: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _throttle(self, event_id: str) -> None:
        with self._lock:
            self.attempts[event_id] += 1
            refused = self.attempts[event_id] <= self.fails.get(event_id, 0)
        if refused:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                "UpdateItem",
            )

    def update_item(self, **request: Any) -> dict[str, Any]:
        values = request["ExpressionAttributeValues"]
        event_id = values[":mark"]["S"].split("|", 1)[1]
        self._throttle(event_id)
        answer = self.real.update_item(**request)
        with self._lock:
            self.written.append({"order_id": request["Key"]["order_id"], **values})
        return answer

    def put_item(self, **request: Any) -> dict[str, Any]:
        self._throttle(request["Item"]["last_event_id"]["S"])
        return self.real.put_item(**request)


def new_queue(fifo: bool) -> str:
    sqs = boto3.client("sqs", region_name=REGION)
    name = f"tasks-{uuid.uuid4().hex[:8]}" + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def drain(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return messages
        for message in got:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(got)


def new_table() -> str:
    name = f"orders-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def table_items(table: str) -> dict[str, dict[str, Any]]:
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=table)["Items"]
    return {item["order_id"]["S"]: item for item in items}


# -- SQS -------------------------------------------------------------------------------------


def test_given_failures_that_clear_when_sent_to_fulfilment_then_each_paid_order_has_one_task(
    aws: None,
) -> None:
    sqs = boto3.client("sqs", region_name=REGION)

    @settings(max_examples=25, deadline=None)
    @given(data=st.data(), count=st.integers(1, 50), seed=st.integers(0, 2**32))
    def check(data: st.DataObject, count: int, seed: int) -> None:
        events = generate_events(count, seed=seed)
        fails = {e.event_id: data.draw(st.integers(0, 3)) for e in events}
        queue = new_queue(fifo=True)
        flaky = FlakySqs(sqs, fails)

        report = SqsProducer(flaky, queue, **quiet(max_attempts=4)).send(events)

        # The oracle: an order is fulfilled at its OrderPaid event, from that event's state.
        paid = [e for e in events if e.type == "OrderPaid"]
        expected = {
            e.order_id: FulfilmentTask.for_state(state_for(parse_event(e.payload))) for e in paid
        }
        assert (report.sent, report.failed, report.skipped) == (len(paid), [], count - len(paid))
        messages = drain(queue)
        assert len(messages) == len(paid)
        for message in messages:
            task = parse_model(FulfilmentTask, message["Body"])
            assert message["Body"] == expected[task.order_id].model_dump_json()
            assert message["Attributes"]["MessageGroupId"] == task.order_id
            assert message["Attributes"]["MessageDeduplicationId"] == task.task_id
        for call in flaky.calls:
            assert len(call) <= 10
            assert len({e["MessageGroupId"] for e in call}) == len(call)  # one per group

    check()


def test_given_notifications_then_every_event_becomes_the_task_changes_would_send(
    pipeline: Any,
) -> None:
    events = generate_events(35, seed=2)
    queue = pipeline.queues["notifications"]
    flaky = FlakySqs(boto3.client("sqs", region_name=REGION))

    report = SqsProducer(flaky, queue, **quiet()).send(events)

    assert (report.sent, report.skipped, report.calls) == (35, 0, 4)
    assert [len(c) for c in flaky.calls] == [10, 10, 10, 5]
    bodies = sorted(m["Body"] for m in pipeline.messages("notifications", limit=100))
    expected = sorted(
        NotificationTask.for_state(state_for(parse_event(e.payload))).model_dump_json()
        for e in events
    )
    assert bodies == expected
    assert all("MessageGroupId" not in entry for call in flaky.calls for entry in call)


def test_given_sender_faults_then_they_fail_at_once_and_service_faults_are_retried(
    pipeline: Any,
) -> None:
    events = generate_events(12, seed=3)
    rejected, flaky_one = events[0].event_id, events[1].event_id
    flaky = FlakySqs(
        boto3.client("sqs", region_name=REGION),
        {rejected: 9, flaky_one: 2},
        sender_faults=frozenset({rejected}),
    )

    report = SqsProducer(flaky, pipeline.queues["notifications"], **quiet()).send(events)

    assert [(f.event_id, f.code) for f in report.failed] == [(rejected, "InvalidParameterValue")]
    assert flaky.attempts[rejected] == 1 and flaky.attempts[flaky_one] == 3
    assert report.sent == 11 and report.retried_entries == 2
    delivered = [json.loads(m["Body"])["event_id"] for m in pipeline.messages("notifications", 50)]
    assert sorted(delivered) == sorted(e.event_id for e in events[1:])


@pytest.mark.parametrize("queue", ["notifications", "fulfilment.fifo"])
def test_given_poison_then_the_task_is_invalid_yet_names_its_event_and_order(
    pipeline: Any, queue: str
) -> None:
    events = [e for e in generate_events(30, poison_rate=0.2, seed=8) if e.fault == "poison"]
    assert {"amount_cents", "coupon_code"} & {k for e in events for k in e.payload}

    report = SqsProducer(boto3.client("sqs"), pipeline.queues[queue], **quiet()).send(events)

    assert report.sent == len(events) == 6
    model = FulfilmentTask if queue.endswith(".fifo") else NotificationTask
    messages = pipeline.messages(queue, limit=50)
    by_event = {json.loads(m["Body"])["event_id"]: json.loads(m["Body"]) for m in messages}
    for planned in events:
        body = by_event[planned.event_id]
        assert body["order_id"] == planned.order_id
        with pytest.raises(PoisonRecordError):
            parse_model(model, body)


def test_given_a_stale_event_then_its_notification_is_still_sent(pipeline: Any) -> None:
    # The contract: a notification for every status an order's valid events carry.
    newer, older = order_event("o-s", 2, "OrderPaid"), order_event("o-s", 1, "OrderCreated")

    report = SqsProducer(boto3.client("sqs"), pipeline.queues["notifications"], **quiet()).send(
        [newer, older]
    )

    assert (report.sent, report.skipped) == (2, 0)
    bodies = [json.loads(m["Body"]) for m in pipeline.messages("notifications")]
    assert sorted((b["status"], b["event_id"]) for b in bodies) == sorted(
        [("PAID", newer["event_id"]), ("CREATED", older["event_id"])]
    )


def test_given_a_group_id_sqs_would_refuse_then_the_fifo_message_is_still_sent(
    pipeline: Any,
) -> None:
    # SQS takes 1-128 characters of letters, digits and punctuation as a MessageGroupId.
    order = "ordre n°1 " + "x" * 200
    event = order_event(order, 2, "OrderPaid")

    report = SqsProducer(boto3.client("sqs"), pipeline.queues["fulfilment.fifo"], **quiet()).send(
        [event]
    )

    assert (report.sent, report.failed) == (1, [])
    [message] = pipeline.messages("fulfilment.fifo")
    assert json.loads(message["Body"])["order_id"] == order
    assert message["Attributes"]["MessageGroupId"] == fifo_group_id(order)


# -- DynamoDB --------------------------------------------------------------------------------


def item_of(table: str, order: str) -> dict[str, Any]:
    return boto3.client("dynamodb").get_item(TableName=table, Key={"order_id": {"S": order}})[
        "Item"
    ]


def test_given_throttles_that_clear_then_each_order_ends_at_its_last_state(aws: None) -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)

    @settings(max_examples=25, deadline=None)
    @given(data=st.data(), count=st.integers(1, 80), seed=st.integers(0, 2**32))
    def check(data: st.DataObject, count: int, seed: int) -> None:
        events = generate_events(count, seed=seed)
        fails = {e.event_id: data.draw(st.integers(0, 3)) for e in events}
        table = new_table()
        flaky = FlakyDynamoDb(ddb, fails)

        report = DynamoDbProducer(flaky, table, **quiet(max_attempts=4)).send(events)

        assert (report.sent, report.failed) == (count, [])
        last = {e.order_id: e for e in events}  # each order's events come in version order
        repository = OrdersRepository(table, ddb=ddb)
        for order, event in last.items():
            assert repository.get(order) == state_for(parse_event(event.payload))
        written: dict[str, list[int]] = defaultdict(list)
        for item in flaky.written:
            written[item["order_id"]["S"]].append(int(item[":version"]["N"]))
        # an order's next event waits until its previous one is written
        assert all(v == list(range(1, len(v) + 1)) for v in written.values()), written

    check()


def test_given_versions_in_reversed_or_shuffled_separate_calls_then_orders_end_at_the_highest(
    pipeline: Any,
) -> None:
    """Direct table writes cannot move an order back (they did: 24 of 24 reversed orders)."""
    rng = random.Random(20261207)
    lifecycle = ["OrderCreated", "OrderPaid", "OrderShipped", "OrderDelivered"]
    orders = {
        f"o-r{n}": [order_event(f"o-r{n}", v, t) for v, t in enumerate(lifecycle, 1)]
        for n in range(12)
    }
    sends = []
    for n, events in enumerate(orders.values()):
        sends += events[::-1] if n % 2 else rng.sample(events, len(events))
    producer = DynamoDbProducer(boto3.client("dynamodb"), pipeline.orders_table, **quiet())

    for event in sends:
        report = producer.send([event])  # every version in a call of its own
        assert report.failed == []

    for order, events in orders.items():
        record = parse_order_image(item_of(pipeline.orders_table, order))
        assert record.state == state_for(parse_event(events[-1]))
        assert set(record.seen) == {
            OrderStatus.CREATED,
            OrderStatus.PAID,
            OrderStatus.SHIPPED,
            OrderStatus.DELIVERED,
        }


def test_given_an_item_throttled_to_the_end_then_it_is_reported_and_the_order_moves_on(
    pipeline: Any,
) -> None:
    created, paid = order_event("o-d", 1, "OrderCreated"), order_event("o-d", 2, "OrderPaid")
    flaky = FlakyDynamoDb(boto3.client("dynamodb"), {created["event_id"]: 99})

    report = DynamoDbProducer(flaky, pipeline.orders_table, **quiet(max_attempts=3)).send(
        [created, paid]
    )

    assert [(f.event_id, f.code) for f in report.failed] == [
        (created["event_id"], "ProvisionedThroughputExceededException")
    ]
    assert report.sent == 1 and flaky.attempts[created["event_id"]] == 3
    assert OrdersRepository(pipeline.orders_table).get("o-d") == state_for(parse_event(paid))


def test_given_60_orders_then_each_reads_back_as_its_order_state(pipeline: Any) -> None:
    events = [order_event(f"o-{n}", 1, "OrderCreated") for n in range(60)]

    report = DynamoDbProducer(boto3.client("dynamodb"), pipeline.orders_table, **quiet()).send(
        events
    )

    assert report.sent == 60
    repository = OrdersRepository(pipeline.orders_table)
    assert all(repository.get(e["order_id"]) == state_for(parse_event(e)) for e in events)


def test_given_poison_then_the_item_is_written_but_fails_the_order_state_schema(
    pipeline: Any,
) -> None:
    events = [e for e in generate_events(20, poison_rate=0.25, seed=6) if e.fault == "poison"]

    report = DynamoDbProducer(boto3.client("dynamodb"), pipeline.orders_table, **quiet()).send(
        events
    )

    assert report.sent == len(events) == 5
    items = table_items(pipeline.orders_table)
    for planned in events:
        assert items[planned.order_id]["last_event_id"]["S"] == planned.event_id
        with pytest.raises(PoisonRecordError):
            parse_order_image(items[planned.order_id])


def test_given_a_stale_version_then_it_records_its_status_but_never_overwrites_the_newer(
    pipeline: Any,
) -> None:
    newer, older = order_event("o-t", 3, "OrderShipped"), order_event("o-t", 2, "OrderPaid")

    report = DynamoDbProducer(boto3.client("dynamodb"), pipeline.orders_table, **quiet()).send(
        [newer, older]
    )

    assert (report.sent, report.failed) == (2, [])
    record = parse_order_image(item_of(pipeline.orders_table, "o-t"))
    assert record.state == state_for(parse_event(newer))
    assert set(record.seen) == {OrderStatus.SHIPPED, OrderStatus.PAID}
