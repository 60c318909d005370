"""SQS producer: the tasks the pipeline would derive from order events, sent with
SendMessageBatch straight into a task queue (skipping ingest and changes).

The mapping is the pipeline's own logic, run here per order in the order given: each event is
recorded in the order's record (:func:`orderflow.logic.record_event`, so a repeated status
changes nothing) and the change becomes its tasks (:func:`orderflow.logic.tasks_for_change`):

- ``notify`` (the ``notifications`` queue): a NotificationTask for every status the order's
  events carry, so one per event of a normal lifecycle, in any order;
- ``fulfil`` (``fulfilment.fifo``): a FulfilmentTask for the first paid, shipped or delivered
  event; its other events cause no message here and are counted as ``skipped``.

Bodies are ``task.model_dump_json()`` and, on a FIFO queue, the group id is
:func:`orderflow.events.fifo_group_id` of the order and the deduplication id the task id,
exactly as the changes function sends them
(:class:`orderflow.dal.TaskOutbox`). The task kind follows the queue (FIFO: fulfil, standard:
notify) unless ``task`` says otherwise.

Faults: a poison event becomes a task body invalid in the same fields
(:func:`streamline.producers.prepare.poisoned`) with the event's ``event_id`` and ``order_id``,
always sent. Tasks have no ``chaos`` field, so a transient event is sent as its plain task:
only ingest (the Kinesis path) honours fault injection.

Limits (SendMessageBatch): 10 messages and 256 KiB per call, 256 KiB per message. Entries
failed with ``SenderFault: false`` (a service-side error) are retried; sender faults fail at
once. On a FIFO queue one call carries at most one message per group (order), so a partly
accepted call cannot reorder a group; retries reuse the deduplication id, so a FIFO queue drops
any copy a retry makes within its five-minute deduplication window.

Example::

    >>> SqsProducer(boto3.client("sqs"), fulfilment_url).send(events)   # doctest: +SKIP
    ProduceReport(sent=12, failed=[], calls=3, retried_entries=0, seconds=0.04, skipped=28, ...)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from orderflow.events import FulfilmentTask, NotificationTask, OrderRecord, fifo_group_id
from orderflow.events import sqs_deduplication_id as _sqs_id
from orderflow.logic import record_event, tasks_for_change

from streamline.producers.base import Producer
from streamline.producers.batching import Entry, Rejection
from streamline.producers.prepare import Prepared, encode, poisoned
from streamline.producers.report import Failed
from streamline.producers.retry import RETRYABLE_CODES

__all__ = ["SqsProducer", "TaskKind"]

TaskKind = Literal["fulfil", "notify"]
_MODELS = {"fulfil": FulfilmentTask, "notify": NotificationTask}


class SqsProducer(Producer):
    """Sends the ``task`` kind of task (default: by the queue's type) for each event."""

    MAX_ENTRIES = 10
    MAX_CALL_BYTES = 256 * 1024
    MAX_ENTRY_BYTES = 256 * 1024
    TOO_LARGE = "MessageTooLong"

    def __init__(
        self, client: Any, queue_url: str, *, task: TaskKind | None = None, **options: Any
    ) -> None:
        super().__init__(client, **options)
        self.queue_url = queue_url
        self.fifo = queue_url.endswith(".fifo")
        self.task: TaskKind = task or ("fulfil" if self.fifo else "notify")
        if self.task not in _MODELS:
            raise ValueError(f"task must be 'fulfil' or 'notify', got {task!r}")

    def _entries(self, prepared: list[Prepared]) -> Iterator[Entry | Failed | None]:
        states: dict[str, OrderRecord] = {}
        for number, item in enumerate(prepared):
            if item.event is None:
                body = poisoned(item, _MODELS[self.task])
                text = encode(body).decode()
                group, dedup = item.order_id, str(body["task_id"])
            else:
                current = states.get(item.order_id)
                new = record_event(current, item.event)
                if new is None:  # a repeated status: ingest would record nothing
                    yield None
                    continue
                states[item.order_id] = new
                tasks = [t for t in tasks_for_change(current, new) if t.kind == self.task]
                if not tasks:
                    yield None
                    continue
                task = tasks[0]
                text = task.model_dump_json()
                group, dedup = task.order_id, task.task_id
            # Ids only need to be unique within a call; the event's position is.
            request: dict[str, Any] = {"Id": f"m{number}", "MessageBody": text}
            if self.fifo:
                if not group:
                    yield Failed(item.event_id, "MissingGroupId", "a FIFO message needs order_id")
                    continue
                # As the changes function sends them (orderflow.dal.TaskOutbox).
                request["MessageGroupId"] = fifo_group_id(group)
                request["MessageDeduplicationId"] = _sqs_id(dedup)
            # Standard queues keep no order, so each message is its own ordering key.
            key = group if self.fifo else f"#{number}"
            yield Entry(item.event_id, key, request, len(text.encode()))

    def _call(self, batch: list[Entry]) -> Sequence[Rejection]:
        response = self.client.send_message_batch(
            QueueUrl=self.queue_url, Entries=[e.request for e in batch]
        )
        by_id = {e.request["Id"]: e for e in batch}
        rejections = []
        answered = {str(s["Id"]) for s in response.get("Successful", [])}
        for failure in response.get("Failed", []):
            entry = by_id.get(str(failure.get("Id")))
            if entry is None:
                continue
            answered.add(entry.request["Id"])
            code = str(failure.get("Code", "Unknown"))
            retryable = not failure.get("SenderFault", False) or code in RETRYABLE_CODES
            rejections.append(Rejection(entry, code, str(failure.get("Message", "")), retryable))
        # Every entry is answered in Successful or Failed; one that is not was not acknowledged.
        rejections.extend(
            Rejection(e, "NoResult", "no result for this entry", True)
            for e in batch
            if e.request["Id"] not in answered
        )
        return rejections
