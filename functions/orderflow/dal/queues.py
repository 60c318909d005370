"""SQS senders: task queues (with X-Ray trace propagation) and the poison sink."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from orderflow.dal.clients import client
from orderflow.events import FulfilmentTask, NotificationTask, Task
from orderflow.observability import current_trace_header

__all__ = ["PoisonSink", "TaskQueue", "is_fifo", "send_message"]


def is_fifo(queue_url: str) -> bool:
    return queue_url.endswith(".fifo")


def send_message(
    queue_url: str,
    body: str,
    *,
    group_id: str | None = None,
    dedup_id: str | None = None,
    propagate_trace: bool = True,
    trace_header: str | None = None,
) -> str:
    """Send one message; FIFO queues get the group and dedup ids. Returns the message id.

    The message carries ``trace_header`` as its AWSTraceHeader, or this invocation's header
    (unless ``propagate_trace`` is off).
    """
    params: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
    if is_fifo(queue_url):
        params["MessageGroupId"] = group_id or "default"
        if dedup_id:
            params["MessageDeduplicationId"] = dedup_id[:128]
    header = (trace_header or current_trace_header()) if propagate_trace else None
    if header:
        # SQS hands AWSTraceHeader to the consumer, whose code records its work in that trace
        # (orderflow.tracing: Lambda itself only links the consumer's new trace to it).
        params["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": header}
        }
    return str(client("sqs").send_message(**params)["MessageId"])


class TaskQueue:
    """Routes tasks: fulfilment to the FIFO queue (group = order id), notifications to standard.

    Example::

        >>> TaskQueue(fulfil_url, notify_url).send(task)   # doctest: +SKIP
    """

    def __init__(self, fulfilment_queue_url: str, notifications_queue_url: str) -> None:
        self.fulfilment_queue_url = fulfilment_queue_url
        self.notifications_queue_url = notifications_queue_url

    def send(self, task: Task, *, trace_header: str | None = None) -> str:
        """Send ``task``; ``trace_header`` (the order's trace) overrides this invocation's."""
        body = task.model_dump_json()
        if isinstance(task, FulfilmentTask):
            url = self.fulfilment_queue_url
        elif isinstance(task, NotificationTask):
            url = self.notifications_queue_url
        else:  # pragma: no cover - exhaustive over Task
            raise TypeError(f"unknown task {type(task).__name__}")
        return send_message(
            url, body, group_id=task.order_id, dedup_id=task.task_id, trace_header=trace_header
        )


class PoisonSink:
    """Sends poison envelopes to a failure queue or DLQ (the poison fast path).

    Example::

        >>> PoisonSink(url).send(envelope, group_id="o-1", dedup_id=message_id)  # doctest: +SKIP
    """

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(
        self,
        envelope: Mapping[str, Any],
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> str:
        return send_message(
            self.queue_url,
            json.dumps(envelope, separators=(",", ":"), default=str),
            group_id=group_id,
            dedup_id=dedup_id,
        )
