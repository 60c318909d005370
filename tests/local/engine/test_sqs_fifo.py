"""FIFO queues at the API: a group comes out in order and not at all while one of it is in flight.

Through public SQS calls on the platform's moto server (every patch applied). Receives that must
time out use a 1 s visibility and the tests wait until the queue counts the messages visible
again (a condition, not a sleep); everything else holds its messages for 300 s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streamline.local.esm.testing import MotoHarness, wait_until

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def sqs() -> Iterator[Any]:
    with MotoHarness() as harness:
        yield harness.client("sqs")


def _fifo(sqs: Any, **attributes: str) -> str:
    return str(
        sqs.create_queue(
            QueueName=f"f{uuid.uuid4().hex[:12]}.fifo",
            Attributes={
                "FifoQueue": "true",
                "ContentBasedDeduplication": "true",
                "VisibilityTimeout": "300",
                **attributes,
            },
        )["QueueUrl"]
    )


def _send(sqs: Any, url: str, group: str, *bodies: str) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)


def _receive(sqs: Any, url: str, most: int = 10, hold: int = 300) -> list[dict[str, Any]]:
    """Receive up to ``most`` messages, each invisible for ``hold`` seconds."""
    return list(
        sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=most, WaitTimeSeconds=0, VisibilityTimeout=hold
        ).get("Messages", [])
    )


def _visible(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _timed_out(sqs: Any, url: str, count: int) -> None:
    """Wait until ``count`` messages are visible again (their visibility timed out)."""
    wait_until(lambda: _visible(sqs, url) >= count, timeout=30, interval=0.05)


def _bodies(messages: list[dict[str, Any]]) -> list[str]:
    return [m["Body"] for m in messages]


def _hold(sqs: Any, url: str, message: dict[str, Any], seconds: int) -> None:
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=seconds
    )


def test_a_group_visible_again_together_comes_back_in_order(sqs: Any) -> None:
    # moto 5.2.5 returned ['m3'] and then ['m1', 'm2'] here
    url = _fifo(sqs)
    _send(sqs, url, "g", "m1", "m2", "m3")
    assert _bodies(_receive(sqs, url, hold=1)) == ["m1", "m2", "m3"]

    _timed_out(sqs, url, 3)

    assert _bodies(_receive(sqs, url)) == ["m1", "m2", "m3"]


def test_nothing_of_a_group_while_any_of_it_is_in_flight(sqs: Any) -> None:
    url = _fifo(sqs)
    _send(sqs, url, "g", "g1", "g2", "g3")
    _send(sqs, url, "h", "h1")
    assert _bodies(_receive(sqs, url, most=1, hold=1)) == ["g1"]

    # g1 in flight: its group waits, another group flows
    assert _bodies(_receive(sqs, url)) == ["h1"]
    assert _receive(sqs, url) == []

    _timed_out(sqs, url, 3)
    g1, g2, g3 = _receive(sqs, url, hold=1)
    assert [g1["Body"], g2["Body"], g3["Body"]] == ["g1", "g2", "g3"]

    # g1 done; g2 times out while g3 is still in flight: still nothing of g
    sqs.delete_message(QueueUrl=url, ReceiptHandle=g1["ReceiptHandle"])
    _hold(sqs, url, g3, 300)
    _timed_out(sqs, url, 1)
    assert _receive(sqs, url) == []

    _hold(sqs, url, g3, 0)
    assert _bodies(_receive(sqs, url)) == ["g2", "g3"]


def test_a_head_redriven_to_the_dead_letter_queue_lets_its_tail_follow_in_order(
    sqs: Any,
) -> None:
    dlq = _fifo(sqs)
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = _fifo(sqs, RedrivePolicy=f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": 2}}')
    _send(sqs, url, "g", "head")
    assert _bodies(_receive(sqs, url, hold=1)) == ["head"]
    _send(sqs, url, "g", "tail-1", "tail-2")
    assert _receive(sqs, url) == []  # the tail waits while the head is in flight

    _timed_out(sqs, url, 3)
    assert _bodies(_receive(sqs, url, most=1, hold=1)) == ["head"]  # its second receive
    assert _receive(sqs, url) == []
    _timed_out(sqs, url, 3)

    # the next receive moves the head to the dead-letter queue and delivers the tail in order
    assert _bodies(_receive(sqs, url)) == ["tail-1", "tail-2"]
    assert _bodies(_receive(sqs, dlq)) == ["head"]


def test_receive_counts_and_group_attributes_stay_per_message(sqs: Any) -> None:
    url = _fifo(sqs)
    _send(sqs, url, "g", "m1", "m2")
    _receive(sqs, url, hold=1)
    _timed_out(sqs, url, 2)
    again = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again] == [
        ("m1", "2"),
        ("m2", "2"),
    ]
    assert {m["Attributes"]["MessageGroupId"] for m in again} == {"g"}
