"""SQS event source mappings (items 4-13), polling moto's SQS backend in-process.

Each mapping runs up to ``MaximumConcurrency`` poller threads (item 13); each poller gathers one
batch at a time (BatchSize, batching window up to 300 s, 6 MB cap: item 7), drops messages that
do not match the filter by deleting them (item 9), invokes the function with AWS's record shape
(item 10) and then deletes the batch, all but the reported failures, or nothing (items 4-5).

What the queue does, and we rely on rather than re-implement (moto 5.2.5's
``SQSBackend.receive_message``, with its FIFO walk replaced by
``patches.sqs.sqs_receive_keeps_fifo_group_order``): the queue's VisibilityTimeout hides received
messages and governs redelivery; ``ApproximateReceiveCount`` rises per receive; a message received
``maxReceiveCount`` times moves to the RedrivePolicy DLQ on the next receive (item 6); a FIFO group
with any message in flight is skipped while other groups flow, and a failed message, visible
again, is delivered before later messages of its group, however many come back together (item
8). The mapping never changes visibility.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from streamline.local.api_calls import API_CALLS, ESM, sqs_units
from streamline.local.durability import operation
from streamline.local.esm.config import MappingConfig
from streamline.local.esm.filters import FilterMatcher, filter_view
from streamline.local.esm.invoke import invoke_batch
from streamline.local.esm.responses import OutcomeKind, parse_batch_response
from streamline.local.esm.worker import EngineContext, MappingWorker, WorkerState
from streamline.local.metrics import SQS_ACTIVITY

log = logging.getLogger("streamline.local.esm")

__all__ = ["MAX_PAYLOAD_BYTES", "SqsWorker", "sqs_record"]

#: A batch closes before its event would exceed Lambda's 6 MB synchronous payload limit.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


@dataclass(slots=True)
class _Received:
    message_id: str
    receipt_handle: str
    record: dict[str, Any]
    size: int
    trace_header: str | None


def sqs_record(message: Any, *, queue_arn: str, region: str, fifo: bool) -> dict[str, Any]:
    """Lambda's SQS record for a moto ``Message`` (item 10), keys in AWS's order."""
    attributes: dict[str, str] = {
        "ApproximateReceiveCount": str(message.approximate_receive_count),
        "SentTimestamp": str(message.sent_timestamp),
        "SenderId": str(message.sender_id),
        "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
    }
    if fifo:
        if message.sequence_number is not None:
            attributes["SequenceNumber"] = str(message.sequence_number)
        if message.group_id is not None:
            attributes["MessageGroupId"] = message.group_id
        if message.deduplication_id is not None:
            attributes["MessageDeduplicationId"] = message.deduplication_id
    trace = (message.system_attributes or {}).get("AWSTraceHeader")
    if isinstance(trace, dict) and trace.get("StringValue"):
        attributes["AWSTraceHeader"] = trace["StringValue"]
    message_attributes: dict[str, Any] = {}
    for name, value in (message.message_attributes or {}).items():
        shaped: dict[str, Any] = {}
        if value.get("StringValue") is not None:
            shaped["stringValue"] = value["StringValue"]
        if value.get("BinaryValue") is not None:
            binary = value["BinaryValue"]
            shaped["binaryValue"] = (
                base64.b64encode(binary).decode() if isinstance(binary, bytes) else str(binary)
            )
        shaped["stringListValues"] = []
        shaped["binaryListValues"] = []
        shaped["dataType"] = value.get("DataType", "String")
        message_attributes[name] = shaped
    record: dict[str, Any] = {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
    }
    if message_attributes:
        record["md5OfMessageAttributes"] = message.attribute_md5
    record["md5OfBody"] = message.body_md5
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = region
    return record


class SqsWorker(MappingWorker):
    """One SQS mapping: ``config.sqs_concurrency`` pollers, each one batch at a time."""

    def __init__(self, config: MappingConfig, ctx: EngineContext) -> None:
        super().__init__(config, ctx)
        self.queue_name = config.source_arn.split(":")[5]
        self._threads: dict[int, threading.Thread] = {}
        self._threads_lock = threading.Lock()
        self._in_flight = 0
        # Messages a poller has received but not yet handed to an invocation (a batching
        # window filling, or a carried overflow): invisible in the queue and not in flight, so
        # idle() must count them or it reports idle while a batch is still being gathered.
        self._held: dict[int, int] = {}
        self._poller_states: dict[int, WorkerState] = {}
        # Messages the function failed: still ours until they are received again or moved to
        # the DLQ; idle() is False while any of them is still in the queue.
        self._awaiting: set[str] = set()
        self._state_lock = threading.Lock()
        # One poller gathers a batch at a time, so concurrent pollers do not split a batching
        # window's messages into fragments; invocations still run concurrently.
        self._gather_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.state = WorkerState.POLLING
        self._scale()

    def update(self, config: MappingConfig) -> None:
        super().update(config)
        self._scale()

    def _scale(self) -> None:
        """Run exactly ``sqs_concurrency`` pollers; surplus ones retire after their batch."""
        with self._threads_lock:
            for index in range(self.config.sqs_concurrency):
                thread = self._threads.get(index)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(
                        target=self._run,
                        args=(index,),
                        name=f"esm-sqs-{self.queue_name}-{index}",
                        daemon=True,
                    )
                    self._threads[index] = thread
                    thread.start()

    def join(self, timeout: float) -> None:
        for thread in list(self._threads.values()):
            thread.join(timeout)
        self.state = WorkerState.STOPPED

    def stopped(self) -> bool:
        return self.stop_event.is_set() and not any(
            t.is_alive() for t in list(self._threads.values())
        )

    # -- polling -----------------------------------------------------------------------------
    def _run(self, index: int) -> None:
        empty = self.ctx.empty_backoff
        errors = self.ctx.error_backoff
        carry: list[_Received] = []
        while not self.stop_event.is_set():
            config = self.config
            if index >= config.sqs_concurrency:
                break  # scaled down by an update
            self._poller_states[index] = WorkerState.POLLING
            if not self._gather_lock.acquire(timeout=0.1):
                continue  # another poller is gathering; re-check stop and scaling
            try:
                batch, carry = self._collect(config, carry, index)
            except Exception as exc:  # queue deleted, moto error: keep polling, slower
                self._hold(index, len(carry))
                self.error(f"receive failed: {type(exc).__name__}: {exc}")
                self._poller_states[index] = WorkerState.RETRYING
                self.wait(errors.next())
                continue
            finally:
                self._gather_lock.release()
            errors.reset()
            if not batch:
                self._poller_states[index] = WorkerState.WAITING
                self.wait(empty.next())
                continue
            empty.reset()
            self._poller_states[index] = WorkerState.INVOKING
            try:
                processed = self._process(config, batch)
            except Exception as exc:
                # Never a dead poller: the batch was not deleted, so it comes back after its
                # visibility timeout; the error shows in status and the metric.
                log.exception("ESM %s: batch failed unexpectedly", config.uuid)
                self.error(f"batch failed: {type(exc).__name__}: {exc}")
                processed = False
            self._hold(index, len(carry))  # _process counted the batch as in flight
            if not processed:
                self._poller_states[index] = WorkerState.RETRYING
                self.wait(errors.next())
        self._hold(index, 0)
        self._poller_states[index] = WorkerState.STOPPED

    def _hold(self, index: int, count: int) -> None:
        with self._state_lock:
            self._held[index] = count

    def _collect(
        self, config: MappingConfig, carry: list[_Received], index: int = 0
    ) -> tuple[list[_Received], list[_Received]]:
        """Gather one batch: up to BatchSize, within the batching window and 6 MB."""
        batch: dict[str, _Received] = {r.message_id: r for r in carry}
        size = sum(r.size for r in carry)
        overflow: list[_Received] = []
        deadline: float | None = None
        matcher = config.matcher()
        backends = self.ctx.backends
        while True:
            wanted = config.batch_size - len(batch)
            if wanted > 0 and not overflow:
                # Held from before the receive: idle() must not run between it and the count.
                self._hold(index, len(batch) + 1)
                received, dropped = self._receive(config, wanted, matcher)
                if dropped:
                    self.count(filtered=dropped)
                for item in received:
                    if item.message_id in batch:
                        # Redelivered during a long window: keep the newest receipt handle.
                        size -= batch[item.message_id].size
                    elif batch and size + item.size > MAX_PAYLOAD_BYTES:
                        overflow.append(item)
                        continue
                    batch[item.message_id] = item
                    size += item.size
                self._hold(index, len(batch) + len(overflow))
            if overflow or len(batch) >= config.batch_size or self.stop_event.is_set():
                break
            if not batch or config.batching_window <= 0:
                break
            now = self.ctx.clock.now()
            if deadline is None:
                deadline = now + config.batching_window
            if now >= deadline:
                break
            self.wait(min(deadline - now, max(self.ctx.poll_interval, 0.02), 0.1))
        del backends
        return list(batch.values()), overflow

    def _receive(
        self, config: MappingConfig, count: int, matcher: FilterMatcher
    ) -> tuple[list[_Received], int]:
        backends = self.ctx.backends
        region = backends.region
        kept: list[_Received] = []
        with backends.lock:
            if self.stop_event.is_set():
                # Disabled or deleted while this poller waited for the lock: the request that
                # did it has returned, so nothing more may be received.
                return [], 0
            sqs = backends.sqs()
            queue = sqs.get_queue(self.queue_name)
            # wait_seconds=0: never block while holding the lock; the queue's own
            # VisibilityTimeout hides what we receive (item 4). Journaled when durable.
            messages = self.ctx.run(
                "sqs.receive", self.queue_name, count, int(queue.visibility_timeout or 0)
            )
            if messages:
                # Billed to the queue owner as on AWS. Empty receives are not counted: this
                # loop's cadence is not AWS's 20 s long poll (the cost model prices idle polls).
                size = sum(len(str(m.body).encode()) for m in messages)
                API_CALLS.record(
                    ESM,
                    "sqs",
                    "ReceiveMessage",
                    items=len(messages),
                    payload_bytes=size,
                    units=sqs_units(size),
                    fifo=config.fifo,
                )
            rejected: list[str] = []
            for message in messages:
                record = sqs_record(
                    message, queue_arn=config.source_arn, region=region, fifo=config.fifo
                )
                if matcher.active and not matcher.matches(filter_view("sqs", record)):
                    rejected.append(message.receipt_handle)
                    continue
                trace = record["attributes"].get("AWSTraceHeader")
                kept.append(
                    _Received(
                        message.id,
                        message.receipt_handle,
                        record,
                        len(json.dumps(record)),
                        trace,
                    )
                )
            if rejected:
                # Item 9: filtered-out messages are deleted without an invocation.
                self.ctx.run("sqs.delete", self.queue_name, rejected)
        return kept, len(rejected)

    # -- invocation --------------------------------------------------------------------------
    def _process(self, config: MappingConfig, batch: list[_Received]) -> bool:
        """Invoke and settle one batch; False when the poller should back off (system error)."""
        trace = next((r.trace_header for r in batch if r.trace_header), None)
        with self._state_lock:
            self._in_flight += 1
        try:
            result = invoke_batch(
                self,
                config.function_arn,
                {"Records": [r.record for r in batch]},
                records=len(batch),
                # Nothing deleted: the messages come back after the visibility timeout.
                throttled="function throttled; batch left to the queue's visibility timeout",
                trace_header=trace,
            )
            if result is None:
                self._mark_awaiting(batch)
                return False
            outcome = parse_batch_response(
                result,
                report_item_failures=config.report_item_failures,
                batch_ids={r.message_id for r in batch},
            )
            if outcome.kind is OutcomeKind.SUCCESS:
                done, failed = batch, []
            elif outcome.kind is OutcomeKind.PARTIAL:
                failed_ids = set(outcome.failed_ids)
                done = [r for r in batch if r.message_id not in failed_ids]
                failed = [r for r in batch if r.message_id in failed_ids]
            else:
                done, failed = [], batch
                self.error(f"batch failed ({outcome.kind.value}): {outcome.reason}")
            if done:
                self._delete(done)
            self._mark_awaiting(failed)
            self.count(succeeded=len(done), failed=len(failed))
            return True
        finally:
            with self._state_lock:
                self._in_flight -= 1

    def _delete(self, items: list[_Received]) -> None:
        try:
            self.ctx.run("sqs.delete", self.queue_name, [r.receipt_handle for r in items])
        except Exception as exc:
            # Not deleted: the messages come back after their visibility timeout.
            self.error(f"delete failed: {exc}")
            return
        with self._state_lock:
            self._awaiting.difference_update(r.message_id for r in items)

    def _mark_awaiting(self, items: list[_Received]) -> None:
        if items:
            with self._state_lock:
                self._awaiting.update(r.message_id for r in items)

    # -- observation -------------------------------------------------------------------------
    def idle(self) -> bool:
        with self._state_lock:
            if self._in_flight or any(self._held.values()):
                return False
            awaiting = set(self._awaiting)
        backends = self.ctx.backends
        with backends.lock:
            try:
                queue = backends.sqs().get_queue(self.queue_name)
            except Exception:
                return True
            # Any message still in the queue is work to come: a visible one now, one in flight
            # when its visibility timeout passes (also one a crashed cloud had received).
            pending = False
            still: set[str] = set()
            for message in queue._messages:
                if message.id in awaiting:
                    still.add(message.id)
                elif not pending:
                    pending = True
        with self._state_lock:
            self._awaiting &= still | (self._awaiting - awaiting)
        return not pending and not still

    def status(self) -> dict[str, Any]:
        info = super().status()
        backends = self.ctx.backends
        backlog: int | None = None
        with backends.lock:
            try:
                queue = backends.sqs().get_queue(self.queue_name)
                backlog = sum(1 for m in queue._messages if m.visible and not m.delayed)
            except Exception:
                backlog = None
        info.update(
            backlog=backlog,
            in_flight=self._in_flight,
            pollers={i: s.value for i, s in sorted(self._poller_states.items())},
            awaiting_redelivery=len(self._awaiting),
            position=None,
        )
        return info


@operation("sqs.receive")
def _receive_operation(backends: Any, queue_name: str, count: int, visibility: int) -> Any:
    """The poller's receive (no wait: the lock is held)."""
    return backends.sqs().receive_message(queue_name, count, 0, visibility, ["All"])


@operation("sqs.delete")
def _delete_operation(backends: Any, queue_name: str, handles: list[str]) -> None:
    """The poller's delete of handled (or filtered-out) messages."""
    _delete_handles(backends.sqs().get_queue(queue_name), handles)


def _delete_handles(queue: Any, handles: list[str]) -> None:
    """Delete many messages in one pass (moto's ``Queue.delete_message`` scans and rebuilds the
    whole message list per call, which is quadratic for a batch). Same bookkeeping as moto: drop
    from pending, remember every receipt handle as deleted. Received messages sit near the front
    of the list, so the scan stops once all are found. Call with the backends lock held."""
    if handles:
        # Counted as the poller's DeleteMessageBatch calls: up to 10 receipt handles each.
        API_CALLS.record(
            ESM,
            "sqs",
            "DeleteMessageBatch",
            calls=-(-len(handles) // 10),
            items=len(handles),
            fifo=str(queue.name).endswith(".fifo"),
        )
    wanted = set(handles)
    remaining = len(wanted)
    with queue._messages_lock:
        messages = queue._messages
        doomed: list[int] = []
        for index, message in enumerate(messages):
            if message.receipt_handle in wanted or wanted.intersection(
                message._old_receipt_handles
            ):
                doomed.append(index)
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(message.all_receipt_handles)
                remaining -= 1
                if remaining <= 0:
                    break
        for index in reversed(doomed):
            del messages[index]
    # The poller deletes without DeleteMessage(Batch); count as AWS counts the poller's deletes.
    SQS_ACTIVITY.add(queue.name, "NumberOfMessagesDeleted", len(doomed))
