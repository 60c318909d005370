"""TaskOutbox: a batch's tasks go out with SendMessageBatch, and records whose tasks did not fail.

Against in-process moto, through a client wrapper that records every SendMessageBatch and
refuses chosen entries the way SQS reports a partly failed batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from orderflow.dal import TaskOutbox
from orderflow.events import FulfilmentTask, NotificationTask, OrderState, OrderStatus

from .support import REGION, Pipeline

FULFILMENT = "fulfilment.fifo"
NOTIFICATIONS = "notifications"
ORDER_TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
INVOCATION_TRACE = "Root=1-6000aaaa-000000000000000000000001;Parent=1111111111111111;Sampled=1"


def keep_batch_trace_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto keep each SendMessageBatch entry's MessageSystemAttributes, as SQS does.

    moto 5.2 keeps them for SendMessage only; SQS documents AWSTraceHeader on batch entries
    (SendMessageBatchRequestEntry.MessageSystemAttributes).
    """
    from moto.sqs.models import SQSBackend

    original = SQSBackend.send_message_batch

    def send_message_batch(self: Any, queue_name: str, entries: dict[str, Any]) -> Any:
        # moto sends the entries one by one, in order, after validating them all.
        system = iter([entry.get("MessageSystemAttributes") for entry in entries.values()])
        send = self.send_message

        def send_with_system(*args: Any, **kwargs: Any) -> Any:
            return send(*args, system_attributes=next(system), **kwargs)

        self.send_message = send_with_system
        try:
            return original(self, queue_name, entries)
        finally:
            del self.send_message

    monkeypatch.setattr(SQSBackend, "send_message_batch", send_message_batch)


@pytest.fixture(autouse=True)
def trace_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    keep_batch_trace_headers(monkeypatch)


Refusal = tuple[str, bool]  # (Code, SenderFault)


class RecordingSqs:
    """The moto SQS client; records each SendMessageBatch and refuses chosen entries.

    ``refusals[order_id]`` lists what SQS answers for that order's entries, one item per try;
    once the list is used up the entry is taken. ``raise_for`` makes every call to a queue fail.
    """

    def __init__(
        self,
        refusals: dict[str, list[Refusal]] | None = None,
        raise_for: str | None = None,
    ) -> None:
        self.real = boto3.client("sqs", region_name=REGION)
        self.refusals = {order: list(answers) for order, answers in (refusals or {}).items()}
        self.raise_for = raise_for
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:
        self.calls.append((QueueUrl, Entries))
        if QueueUrl == self.raise_for:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "SendMessageBatch"
            )
        taken, failed = [], []
        for entry in Entries:
            answers = self.refusals.get(json.loads(entry["MessageBody"])["order_id"])
            if answers:
                code, sender_fault = answers.pop(0)
                failed.append(
                    {"Id": entry["Id"], "Code": code, "SenderFault": sender_fault, "Message": code}
                )
            else:
                taken.append(entry)
        response = (
            self.real.send_message_batch(QueueUrl=QueueUrl, Entries=taken)
            if taken
            else {"Successful": []}
        )
        response["Failed"] = [*response.get("Failed", []), *failed]
        return response

    def sizes(self, queue_url: str) -> list[int]:
        return [len(entries) for url, entries in self.calls if url == queue_url]

    def orders(self, queue_url: str) -> list[list[str]]:
        return [
            [json.loads(entry["MessageBody"])["order_id"] for entry in entries]
            for url, entries in self.calls
            if url == queue_url
        ]


def state(order: int | str, status: OrderStatus = OrderStatus.PAID, version: int = 2) -> OrderState:
    order_id = order if isinstance(order, str) else f"o-{order}"
    return OrderState(
        order_id=order_id,
        status=status,
        version=version,
        last_event_id=f"00000000-0000-4000-8000-{version:012d}",
        amount_cents=1250,
        customer_id="c-1",
        updated_at=datetime(2026, 11, 1, tzinfo=UTC),
    )


def both_tasks(s: OrderState) -> list[FulfilmentTask | NotificationTask]:
    return [FulfilmentTask.for_state(s), NotificationTask.for_state(s)]


@pytest.fixture
def outbox_for(pipeline: Pipeline) -> Callable[..., tuple[TaskOutbox, list[float]]]:
    """An outbox on the pipeline's queues with the given SQS client; sleeps recorded, not slept."""

    def make(sqs: RecordingSqs, **options: Any) -> tuple[TaskOutbox, list[float]]:
        sleeps: list[float] = []
        outbox = TaskOutbox(
            pipeline.queues[FULFILMENT],
            pipeline.queues[NOTIFICATIONS],
            sqs=sqs,
            sleep=sleeps.append,
            **options,
        )
        return outbox, sleeps

    return make


def received(pipeline: Pipeline, queue: str) -> list[dict[str, Any]]:
    return pipeline.messages(queue, limit=100)


def test_given_23_orders_when_flushed_then_3_batch_calls_per_queue_carry_all_46_tasks(
    pipeline, outbox_for
):
    sqs = RecordingSqs()
    outbox, _ = outbox_for(sqs)
    for n in range(23):
        for task in both_tasks(state(n)):
            outbox.add(task, record_id=f"r{n}", trace_header=ORDER_TRACE)

    assert outbox.flush() == set()

    fulfilment, notifications = pipeline.queues[FULFILMENT], pipeline.queues[NOTIFICATIONS]
    assert sqs.sizes(fulfilment) == [10, 10, 3]
    assert sqs.sizes(notifications) == [10, 10, 3]
    assert len(received(pipeline, FULFILMENT)) == 23
    assert len(received(pipeline, NOTIFICATIONS)) == 23
    assert len(outbox) == 0


def test_given_fifo_and_standard_tasks_when_flushed_then_group_dedup_and_trace_headers_are_set(
    pipeline, outbox_for, monkeypatch
):
    monkeypatch.setenv("_X_AMZN_TRACE_ID", INVOCATION_TRACE)
    outbox, _ = outbox_for(RecordingSqs())
    traced, untraced = state(1), state(2)
    for task in both_tasks(traced):
        outbox.add(task, record_id="r1", trace_header=ORDER_TRACE)
    for task in both_tasks(untraced):
        outbox.add(task, record_id="r2", trace_header=None)

    outbox.flush()

    fifo = {json.loads(m["Body"])["order_id"]: m for m in received(pipeline, FULFILMENT)}
    assert fifo["o-1"]["Attributes"]["MessageGroupId"] == "o-1"
    assert (
        fifo["o-1"]["Attributes"]["MessageDeduplicationId"]
        == FulfilmentTask.for_state(traced).task_id
    )
    assert fifo["o-1"]["Attributes"]["AWSTraceHeader"] == ORDER_TRACE
    # Without the order's trace, a task carries the invocation's (as SendMessage did).
    assert fifo["o-2"]["Attributes"]["AWSTraceHeader"] == INVOCATION_TRACE
    standard = {json.loads(m["Body"])["order_id"]: m for m in received(pipeline, NOTIFICATIONS)}
    assert standard["o-1"]["Attributes"]["AWSTraceHeader"] == ORDER_TRACE
    assert standard["o-2"]["Attributes"]["AWSTraceHeader"] == INVOCATION_TRACE
    assert "MessageGroupId" not in standard["o-1"]["Attributes"]


def test_given_two_tasks_of_one_order_when_flushed_then_they_go_in_separate_calls_in_order(
    pipeline, outbox_for
):
    sqs = RecordingSqs()
    outbox, _ = outbox_for(sqs)
    outbox.add(FulfilmentTask.for_state(state("o-A", version=2)), record_id="r1")
    outbox.add(FulfilmentTask.for_state(state("o-B", version=2)), record_id="r2")
    outbox.add(FulfilmentTask.for_state(state("o-A", version=3)), record_id="r3")

    assert outbox.flush() == set()

    # A call holds one task per order: a partly failed call can never reorder an order.
    assert sqs.orders(pipeline.queues[FULFILMENT]) == [["o-A", "o-B"], ["o-A"]]
    versions = [
        json.loads(m["Body"])["version"]
        for m in received(pipeline, FULFILMENT)
        if m["Attributes"]["MessageGroupId"] == "o-A"
    ]
    assert versions == [2, 3]


def test_given_tasks_over_the_byte_limit_when_flushed_then_calls_split_by_size(
    pipeline, outbox_for
):
    sqs = RecordingSqs()
    outbox, _ = outbox_for(sqs)
    for n in range(5):
        outbox.add(NotificationTask.for_state(state(n)), record_id=f"r{n}")
    entry_bytes = len(NotificationTask.for_state(state(0)).model_dump_json().encode())
    outbox.MAX_CALL_BYTES = 2 * entry_bytes + 1

    assert outbox.flush() == set()

    assert sqs.sizes(pipeline.queues[NOTIFICATIONS]) == [2, 2, 1]


def test_given_a_service_side_failure_when_flushed_then_only_that_entry_is_retried(
    pipeline, outbox_for
):
    sqs = RecordingSqs({"o-2": [("InternalError", False)]})
    outbox, sleeps = outbox_for(sqs)
    for n in (1, 2, 3):
        outbox.add(FulfilmentTask.for_state(state(n)), record_id=f"r{n}")

    assert outbox.flush() == set()

    assert sqs.orders(pipeline.queues[FULFILMENT]) == [["o-1", "o-2", "o-3"], ["o-2"]]
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= outbox.backoff
    assert len(received(pipeline, FULFILMENT)) == 3


def test_given_a_failure_that_outlasts_the_retries_when_flushed_then_its_records_fail(
    pipeline, outbox_for, logs
):
    # o-2 keeps failing: its record fails, and so does r4, the next task of the same order,
    # which must not overtake it. r2's notification is not sent either: the retry redoes it.
    sqs = RecordingSqs({"o-2": [("InternalError", False)] * 3})
    outbox, sleeps = outbox_for(sqs, attempts=3)
    for n in (1, 2, 3):
        for task in both_tasks(state(n)):
            outbox.add(task, record_id=f"r{n}")
    outbox.add(FulfilmentTask.for_state(state(2, version=3)), record_id="r4")

    assert outbox.flush() == {"r2", "r4"}

    fulfilment = pipeline.queues[FULFILMENT]
    assert sqs.orders(fulfilment) == [["o-1", "o-2", "o-3"], ["o-2"], ["o-2"]]
    assert len(sleeps) == 2
    assert sorted(json.loads(m["Body"])["order_id"] for m in received(pipeline, FULFILMENT)) == [
        "o-1",
        "o-3",
    ]
    assert sorted(json.loads(m["Body"])["order_id"] for m in received(pipeline, NOTIFICATIONS)) == [
        "o-1",
        "o-3",
    ]
    (line,) = [w for w in logs.warnings() if w["message"].startswith("Tasks not sent")]
    assert line["records"] == 2
    assert line["codes"] == {"InternalError": 1, "NotSent": 2}


def test_given_a_sender_fault_when_flushed_then_its_record_fails_without_a_retry(
    pipeline, outbox_for, logs
):
    sqs = RecordingSqs({"o-2": [("InvalidParameterValue", True)]})
    outbox, sleeps = outbox_for(sqs)
    for n in (1, 2, 3):
        outbox.add(NotificationTask.for_state(state(n)), record_id=f"r{n}")

    assert outbox.flush() == {"r2"}

    assert sqs.sizes(pipeline.queues[NOTIFICATIONS]) == [3]
    assert sleeps == []
    (line,) = [w for w in logs.warnings() if w["message"].startswith("Tasks not sent")]
    assert line["samples"] == {"InvalidParameterValue": "InvalidParameterValue"}


def test_given_a_call_that_raises_when_flushed_then_that_queues_records_fail_and_others_send(
    pipeline, outbox_for
):
    sqs = RecordingSqs(raise_for=pipeline.queues[FULFILMENT])
    outbox, _ = outbox_for(sqs)
    for n in range(12):
        outbox.add(FulfilmentTask.for_state(state(n)), record_id=f"r{n}")
    outbox.add(NotificationTask.for_state(state(99)), record_id="r99")

    assert outbox.flush() == {f"r{n}" for n in range(12)}

    # The queue refused a whole call: the rest of its tasks are not tried in this batch.
    assert sqs.sizes(pipeline.queues[FULFILMENT]) == [10]
    assert [json.loads(m["Body"])["order_id"] for m in received(pipeline, NOTIFICATIONS)] == [
        "o-99"
    ]


def test_given_a_discarded_record_when_flushed_then_only_the_others_tasks_are_sent(
    pipeline, outbox_for
):
    sqs = RecordingSqs()
    outbox, _ = outbox_for(sqs)
    for n in (1, 2):
        for task in both_tasks(state(n)):
            outbox.add(task, record_id=f"r{n}")

    outbox.discard("r1")

    assert outbox.flush() == set()
    assert [json.loads(m["Body"])["order_id"] for m in received(pipeline, FULFILMENT)] == ["o-2"]
    assert [json.loads(m["Body"])["order_id"] for m in received(pipeline, NOTIFICATIONS)] == ["o-2"]


def test_given_a_flushed_outbox_when_flushed_again_then_nothing_is_sent(pipeline, outbox_for):
    sqs = RecordingSqs()
    outbox, _ = outbox_for(sqs)
    outbox.add(NotificationTask.for_state(state(1)), record_id="r1")
    outbox.flush()

    assert outbox.flush() == set()

    assert len(sqs.calls) == 1
