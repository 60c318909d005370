"""SQS senders: the task outbox (batched, with X-Ray trace propagation) and the poison sink.

:class:`TaskOutbox` collects a batch's tasks while its records run and sends them at the end of
the batch with SendMessageBatch: a few calls per batch instead of one SendMessage per task.
It is the ``deferred`` work of ``orderflow.batch.partial_batch_handler``, which reports the
records whose tasks were not sent as batch item failures.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from orderflow.dal.clients import client
from orderflow.events import (
    FulfilmentTask,
    NotificationTask,
    Task,
    fifo_group_id,
    sqs_deduplication_id,
)
from orderflow.observability import current_trace_header, logger

__all__ = ["PoisonSink", "TaskOutbox", "is_fifo", "send_message"]


def is_fifo(queue_url: str) -> bool:
    return queue_url.endswith(".fifo")


def _message_fields(
    queue_url: str,
    body: str,
    *,
    group_id: str | None,
    dedup_id: str | None,
    trace_header: str | None,
) -> dict[str, Any]:
    """The fields SendMessage and a SendMessageBatch entry share."""
    fields: dict[str, Any] = {"MessageBody": body}
    if is_fifo(queue_url):
        # Both ids must be 1-128 characters SQS accepts; any other text is hashed, the same
        # text always to the same id, so a group keeps its order and a copy its dedup.
        fields["MessageGroupId"] = sqs_deduplication_id(group_id or "default")
        if dedup_id:
            fields["MessageDeduplicationId"] = sqs_deduplication_id(dedup_id)
    if trace_header:
        # SQS hands AWSTraceHeader to the consumer, whose code records its work in that trace
        # (orderflow.tracing: Lambda itself only links the consumer's new trace to it).
        fields["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": trace_header}
        }
    return fields


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
    header = (trace_header or current_trace_header()) if propagate_trace else None
    fields = _message_fields(
        queue_url, body, group_id=group_id, dedup_id=dedup_id, trace_header=header
    )
    return str(client("sqs").send_message(QueueUrl=queue_url, **fields)["MessageId"])


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a microsecond more per task
class _Entry:
    """One task waiting in the outbox: its SendMessageBatch entry (``Id`` set per call)."""

    record_id: str
    queue_url: str
    group_id: str | None  # FIFO queues only: the order, whose tasks must keep their order
    fields: dict[str, Any]
    size: int


class TaskOutbox:
    """Collects tasks per record and sends them per batch with SendMessageBatch.

    Fulfilment tasks go to the FIFO queue (group = order id, deduplication id = task id),
    notifications to the standard queue, each with its trace header as AWSTraceHeader.
    One outbox per function instance, reused by every invocation; :meth:`flush` empties it.

    Sending (per queue, in the order tasks were added):

    - a call holds at most 10 entries and 256 KiB of bodies and headers (SQS's limits), and at
      most one entry per FIFO group: if SQS takes a later task of an order and refuses an
      earlier one, retrying the earlier one would put it behind the later one;
    - entries SQS fails with ``SenderFault: false`` (its side) are retried in a call of their
      own, up to ``attempts`` tries with a short full-jitter backoff, before the next call;
      ``SenderFault: true`` entries (a bad request) fail at once;
    - a record with a task not sent fails, and its tasks not yet sent are not sent; on a FIFO
      queue neither are the later tasks of its order, so a retry cannot overtake them;
    - a call that raises (botocore has already retried throttles and 5xx) fails its entries and
      every entry of that queue not yet sent.

    Example::

        outbox = TaskOutbox(fulfil_url, notify_url)

        @partial_batch_handler(source=Source.DYNAMODB_STREAMS, deferred=outbox)
        def handler(record):
            for task in tasks_for(record):
                outbox.add(task, record_id=current_record_id(), trace_header=header)
    """

    MAX_ENTRIES = 10
    MAX_CALL_BYTES = 256 * 1024

    def __init__(
        self,
        fulfilment_queue_url: str,
        notifications_queue_url: str,
        *,
        sqs: Any | None = None,
        attempts: int = 3,
        backoff: float = 0.02,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be 1 or more, got {attempts}")
        self.fulfilment_queue_url = fulfilment_queue_url
        self.notifications_queue_url = notifications_queue_url
        #: The SQS client; None is the shared one (``orderflow.dal.client``), resolved per flush.
        self.sqs = sqs
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep
        self._pending: list[_Entry] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, task: Task, *, record_id: str, trace_header: str | None = None) -> None:
        """Queue ``task`` for ``record_id``; ``trace_header`` (the order's trace) overrides
        this invocation's."""
        if isinstance(task, FulfilmentTask):
            url = self.fulfilment_queue_url
        elif isinstance(task, NotificationTask):
            url = self.notifications_queue_url
        else:  # pragma: no cover - exhaustive over Task
            raise TypeError(f"unknown task {type(task).__name__}")
        body = task.model_dump_json()
        # Read now, not at flush: the header belongs to the invocation the record ran in.
        header = trace_header or current_trace_header()
        fields = _message_fields(
            url,
            body,
            group_id=fifo_group_id(task.order_id),
            dedup_id=task.task_id,
            trace_header=header,
        )
        size = len(body.encode()) + (len(header) if header else 0)
        group = fields.get("MessageGroupId")
        self._pending.append(_Entry(record_id, url, group, fields, size))

    def discard(self, record_id: str) -> None:
        """Forget the tasks ``record_id`` added (it failed; its retry adds them again)."""
        self._pending = [entry for entry in self._pending if entry.record_id != record_id]

    def flush(self) -> set[str]:
        """Send every pending task (see the class docstring); the records whose tasks failed."""
        pending, self._pending = self._pending, []
        failed: set[str] = set()
        if not pending:
            return failed
        sqs = self.sqs if self.sqs is not None else client("sqs")
        report = _FailureReport()
        for url in (self.fulfilment_queue_url, self.notifications_queue_url):
            entries = deque(entry for entry in pending if entry.queue_url == url)
            if entries:
                _QueueSend(self, sqs, url, failed, report).run(entries)
        if failed:
            # One line per batch, not per task: the codes say why, a sample per code says more.
            logger.warning(
                "Tasks not sent; their records reported for retry",
                extra={
                    "records": len(failed),
                    "entries": report.codes.total(),
                    "codes": dict(report.codes),
                    "samples": report.samples,
                },
            )
        return failed


@dataclass(slots=True)
class _FailureReport:
    """Why a flush's entries failed: a count per error code and the first message of each."""

    codes: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)

    def add(self, code: str, message: str) -> None:
        self.codes[code] += 1
        if message:
            self.samples.setdefault(code, message[:200])


class _QueueSend:
    """One flush's sends to one queue, and the failures they leave behind."""

    def __init__(
        self, outbox: TaskOutbox, sqs: Any, url: str, failed: set[str], report: _FailureReport
    ) -> None:
        self.outbox = outbox
        self.sqs = sqs
        self.url = url
        self.failed = failed
        self.report = report
        self.blocked: set[str] = set()  # FIFO groups with an unsent task: their later ones wait

    def run(self, entries: deque[_Entry]) -> None:
        while entries:
            call = self._take(entries)
            if call and not self._send(call):
                for entry in entries:
                    self._fail(entry, "NotSent", "an earlier call to its queue failed")
                return

    def _take(self, entries: deque[_Entry]) -> list[_Entry]:
        """The next call's entries, skipping (and failing) those that must not go."""
        call: list[_Entry] = []
        groups: set[str] = set()
        size = 0
        while entries and len(call) < self.outbox.MAX_ENTRIES:
            entry = entries[0]
            if entry.record_id in self.failed or entry.group_id in self.blocked:
                entries.popleft()
                self._fail(entry, "NotSent", "an earlier task of its record or order failed")
                continue
            if call and (
                size + entry.size > self.outbox.MAX_CALL_BYTES or entry.group_id in groups
            ):
                break
            entries.popleft()
            call.append(entry)
            size += entry.size
            if entry.group_id is not None:
                groups.add(entry.group_id)
        return call

    def _send(self, call: list[_Entry]) -> bool:
        """Send ``call``, retrying what SQS may take later; False when the call itself failed."""
        for attempt in range(1, self.outbox.attempts + 1):
            try:
                for position, entry in enumerate(call):
                    # Ids only need to be unique within a call: the position is.
                    entry.fields["Id"] = str(position)
                response = self.sqs.send_message_batch(
                    QueueUrl=self.url, Entries=[entry.fields for entry in call]
                )
            except (ClientError, BotoCoreError) as exc:
                code = (
                    str(exc.response.get("Error", {}).get("Code", "ClientError"))
                    if isinstance(exc, ClientError)
                    else type(exc).__name__
                )
                for entry in call:
                    self._fail(entry, code, str(exc))
                return False
            retry = self._settle(call, response, last=attempt == self.outbox.attempts)
            if not retry:
                return True
            call = retry
            # Full jitter: spread the retries of concurrent shards instead of syncing them.
            self.outbox.sleep(random.uniform(0, self.outbox.backoff * 2 ** (attempt - 1)))
        return True  # pragma: no cover - the last attempt retries nothing

    def _settle(
        self, call: list[_Entry], response: Mapping[str, Any], *, last: bool
    ) -> list[_Entry]:
        """Fail what SQS refused for good; the entries worth another try."""
        answered = {str(ok["Id"]) for ok in response.get("Successful", [])}
        retry: list[_Entry] = []
        for failure in response.get("Failed", []):
            n = str(failure.get("Id"))
            if not n.isdigit() or int(n) >= len(call):
                continue
            answered.add(n)
            entry, code = call[int(n)], str(failure.get("Code", "Unknown"))
            if failure.get("SenderFault", False) or last:
                self._fail(entry, code, str(failure.get("Message", "")))
            else:
                retry.append(entry)
        # SQS answers every entry; one it did not answer was not taken.
        for position, entry in enumerate(call):
            if str(position) not in answered:
                if last:
                    self._fail(entry, "NoResult", "SQS did not answer for this entry")
                else:
                    retry.append(entry)
        return retry

    def _fail(self, entry: _Entry, code: str, message: str = "") -> None:
        self.failed.add(entry.record_id)
        if entry.group_id is not None:
            self.blocked.add(entry.group_id)
        self.report.add(code, message)


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
