"""SQS: hot paths that cost O(1) per message, FIFO groups received in order, batches that keep
their system attributes, the message counters behind AWS/SQS metrics, FIFO queue names from
CloudFormation, and MessageGroupId / MessageDeduplicationId checked as SQS checks them.

Several of these wrap what an earlier one installed, so the package applies them in a fixed
order (see :mod:`streamline.local.patches`): the FIFO-order receive replaces the O(1) receive's
walk, the counters wrap send/receive/delete as installed, and the id checks wrap the hot-path
``_validate_message`` and the batch send that keeps system attributes. moto's built-in
SQS -> Lambda trigger is turned off in :mod:`.awslambda` (``builtin_triggers_off``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from streamline.local.patches.registry import install, moto_original, moto_patch, rewrite_method
from streamline.local.server import MOTO_LOCK

_CBD_TRUE = 'queue.attributes.get("ContentBasedDeduplication") == "true"'
_CBD_FALSE = 'queue.attributes.get("ContentBasedDeduplication") == "false"'
_CBD_SELF_TRUE = 'self.attributes.get("ContentBasedDeduplication") == "true"'


@moto_patch(
    "moto.sqs.models:SQSBackend.send_message",
    "moto.sqs.models:SQSBackend._validate_message",
    "moto.sqs.models:SQSBackend.is_message_valid_based_on_retention_period",
    "moto.sqs.models:Queue.add_message",
    "moto.sqs.models:Queue.delete_message",
    "moto.sqs.models:Queue.wait_for_messages",
    "moto.sqs.models:Queue.messages",
    "moto.sqs.models:Queue.approximate_number_of_messages_delayed",
    "moto.sqs.models:Queue.approximate_number_of_messages_not_visible",
)
def sqs_hot_paths_constant_time() -> None:
    """SendMessage, ReceiveMessage and DeleteMessage no longer cost O(queue depth) per message.

    ``Queue.attributes`` rebuilds every attribute, including three counts that scan all
    messages; send read one flag from it and receive read the retention period from it per
    message. We read the typed fields moto already keeps instead. DeleteMessage scanned twice and
    rebuilt the list; now it finds the message once and deletes it in place. Long polling
    releases the moto lock while it waits, so a waiting receive does not block the server.
    """
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue, SQSBackend

    cbd = "queue.content_based_deduplication"
    install(
        SQSBackend,
        "send_message",
        rewrite_method(SQSBackend, "send_message", [(_CBD_TRUE, f"bool({cbd})")]),
    )
    install(
        SQSBackend,
        "_validate_message",
        rewrite_method(SQSBackend, "_validate_message", [(_CBD_FALSE, f"not {cbd}")]),
    )
    install(
        Queue,
        "add_message",
        rewrite_method(
            Queue, "add_message", [(_CBD_SELF_TRUE, "bool(self.content_based_deduplication)")]
        ),
    )

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > unix_time())

    install(
        SQSBackend,
        "is_message_valid_based_on_retention_period",
        is_message_valid_based_on_retention_period,
    )

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # AWS accepts deleting an already deleted message
        with self._messages_lock:
            for index, message in enumerate(self._messages):  # noqa: B007 (used below)
                if message.had_receipt_handle(receipt_handle):
                    break
            else:
                raise ReceiptHandleIsInvalid()
            del self._messages[index]
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)

    install(Queue, "delete_message", delete_message)

    def wait_for_messages(self: Any, timeout: int) -> None:
        # The caller (a long-polling ReceiveMessage) holds MOTO_LOCK; hand it back while we
        # wait, or no SendMessage could ever arrive. The RLock may be held recursively, so use
        # its save/restore pair, exactly as threading.Condition does.
        saved = MOTO_LOCK._release_save() if MOTO_LOCK._is_owned() else None  # type: ignore[attr-defined]
        try:
            with self._messages_lock:
                self._messages_lock.wait_for(lambda: self.messages, timeout=timeout)
        finally:
            if saved is not None:
                MOTO_LOCK._acquire_restore(saved)  # type: ignore[attr-defined]

    install(Queue, "wait_for_messages", wait_for_messages)

    def messages(self: Any) -> VisibleMessages:
        return VisibleMessages(self)

    install(Queue, "messages", property(messages))

    # GetQueueAttributes counts: one clock read per call, not two per message (operators and
    # dashboards poll these while the queue is deep).
    def delayed(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    install(Queue, "approximate_number_of_messages_delayed", property(delayed))
    install(Queue, "approximate_number_of_messages_not_visible", property(not_visible))


class VisibleMessages:
    """A queue's visible messages, computed lazily (moto built a list of all of them).

    ReceiveMessage iterates ``queue.messages`` and stops after MaxNumberOfMessages, so a lazy
    view makes a receive cost what it returns plus the in-flight messages it skips, instead of
    the whole queue depth (two clock reads per message at 10,000 messages). The clock is read
    once per iteration. Truthiness (used by long polling) stops at the first visible message.
    """

    __slots__ = ("_queue",)

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def __iter__(self) -> Iterator[Any]:
        from moto.core.utils import unix_time_millis

        now = unix_time_millis()
        for message in self._queue._messages:
            if now > message.visible_at and not now < message.delayed_until:
                yield message

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self)


@moto_patch("moto.sqs.models:SQSBackend.receive_message")
def sqs_receive_keeps_fifo_group_order() -> None:
    """ReceiveMessage delivers a FIFO group in order and nothing of it while any is in flight.

    moto 5.2.5 recomputed the in-flight groups while it walked the queue: when m1, m2 and m3 of
    one group were visible again together, m1 and m2 were skipped (m3 still counted as in
    flight) and m3 went out first. We settle every timed-out receive before the walk, so a
    group is blocked exactly while one of its messages is in flight, as SQS documents. The
    rest is moto's: the redrive to the dead-letter queue at maxReceiveCount, retention, long
    polling (through ``Queue.wait_for_messages``).
    """
    from copy import deepcopy

    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend, _filter_message_attributes

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = self.get_queue(queue_name)
        polling_end = unix_time() + wait_seconds_timeout
        while True:
            result = _receive_once(
                self, queue, count, visibility_timeout, message_attribute_names or []
            )
            if result or not wait_seconds_timeout or unix_time() > polling_end:
                return result
            queue.wait_for_messages(1)

    def _receive_once(
        backend: Any, queue: Any, count: int, visibility_timeout: int, names: list[str]
    ) -> list[Any]:
        pending = queue.pending_messages
        for message in [m for m in pending if m.visible]:
            pending.discard(message)  # its visibility timed out: no longer in flight
        blocked = {m.group_id for m in pending if m.group_id is not None}
        fifo = bool(queue.fifo_queue)
        policy = queue.redrive_policy if queue.dead_letter_queue is not None else None
        result: list[Any] = []
        to_dlq: list[Any] = []
        for message in queue.messages:
            if fifo and message.group_id in blocked:
                continue
            if policy and message.approximate_receive_count >= policy["maxReceiveCount"]:
                to_dlq.append(message)
                continue
            if not backend.is_message_valid_based_on_retention_period(queue.name, message):
                break
            pending.add(message)
            message.mark_received(visibility_timeout=visibility_timeout)
            copy = deepcopy(message)  # attribute filtering must not change the stored message
            _filter_message_attributes(copy, names)
            result.append(copy)
            if len(result) >= count:
                break
        for message in to_dlq:
            queue._messages.remove(message)
            queue.dead_letter_queue.add_message(message)
        return result

    install(SQSBackend, "receive_message", receive_message)


@moto_patch("moto.sqs.models:SQSBackend.send_message_batch")
def sqs_batch_entries_keep_system_attributes() -> None:
    """SendMessageBatch keeps each entry's MessageSystemAttributes (AWSTraceHeader), as SQS does.

    moto passes them to the message for SendMessage only, so a task sent in a batch lost the
    trace header its consumer continues (orderflow.tracing; SendMessageBatchRequestEntry in the
    SQS API reference documents the attribute per entry).
    """
    from moto.sqs.models import SQSBackend

    install(
        SQSBackend,
        "send_message_batch",
        rewrite_method(
            SQSBackend,
            "send_message_batch",
            [
                (
                    'deduplication_id=entry.get("MessageDeduplicationId"),',
                    'deduplication_id=entry.get("MessageDeduplicationId"),'
                    ' system_attributes=entry.get("MessageSystemAttributes"),',
                )
            ],
        ),
    )


@moto_patch(
    "moto.sqs.models:SQSBackend.send_message",
    "moto.sqs.models:SQSBackend.receive_message",
    "moto.sqs.models:SQSBackend.delete_message",
)
def sqs_message_counters() -> None:
    """SendMessage, ReceiveMessage and DeleteMessage count into AWS/SQS's message metrics.

    moto keeps no NumberOfMessagesSent/Received/Deleted; the metrics
    publisher samples these counters (``streamline.local.metrics.SQS_ACTIVITY``). Batches go
    through the same backend methods per entry, so they are counted per message, as on AWS.
    Wraps whatever is installed (``sqs_hot_paths_constant_time`` runs first).
    NumberOfEmptyReceives is not published: the local poller's receives share this path, and
    their cadence is not AWS's 20-second long polls, so the count would mislead.
    """
    from moto.sqs.models import SQSBackend

    from streamline.local.metrics import SQS_ACTIVITY

    send, receive, delete = (
        SQSBackend.send_message,
        SQSBackend.receive_message,
        SQSBackend.delete_message,
    )

    def send_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        message = send(self, queue_name, *args, **kwargs)
        SQS_ACTIVITY.add(queue_name, "NumberOfMessagesSent")
        return message

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        messages = receive(self, queue_name, *args, **kwargs)
        if messages:
            SQS_ACTIVITY.add(queue_name, "NumberOfMessagesReceived", len(messages))
        return messages

    def delete_message(self: Any, queue_name: str, receipt_handle: str) -> None:
        delete(self, queue_name, receipt_handle)
        SQS_ACTIVITY.add(queue_name, "NumberOfMessagesDeleted")

    install(SQSBackend, "send_message", send_message)
    install(SQSBackend, "receive_message", receive_message)
    install(SQSBackend, "delete_message", delete_message)


@moto_patch("moto.sqs.models:Queue.create_from_cloudformation_json")
def sqs_cloudformation_fifo_name() -> None:
    """An unnamed FIFO queue gets a generated name ending in ".fifo", as CloudFormation does.

    moto used ``Stack-Logical-RAND``, which its own Queue then rejected, failing the deploy.
    """
    from moto.sqs.models import Queue

    create = moto_original(Queue, "create_from_cloudformation_json").__func__

    def create_from_cloudformation_json(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json.get("Properties", {})
        fifo = str(properties.get("FifoQueue", "")).lower() == "true"
        if fifo and not properties.get("QueueName") and not str(resource_name).endswith(".fifo"):
            resource_name = str(resource_name)[:75] + ".fifo"  # SQS names are at most 80 chars
        return create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    install(Queue, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json))


# SQS: 1 to 128 alphanumeric and punctuation characters (the SendMessage reference).
_SQS_ID = re.compile(r"[A-Za-z0-9!-/:-@\[-`{-~]{1,128}")


def _invalid_sqs_id(group_id: str | None, deduplication_id: str | None) -> str | None:
    for name, value in (("MessageGroupId", group_id), ("MessageDeduplicationId", deduplication_id)):
        if value is not None and not _SQS_ID.fullmatch(value):
            return (
                f"Value {value[:200]} for parameter {name} is invalid. Reason: {name} can only "
                "include alphanumeric and punctuation characters. 1 to 128 in length."
            )
    return None


@moto_patch(
    "moto.sqs.models:SQSBackend._validate_message",
    "moto.sqs.models:SQSBackend.send_message_batch",
)
def sqs_message_group_and_deduplication_ids_validated() -> None:
    """SendMessage refuses a MessageGroupId or MessageDeduplicationId that SQS refuses, and
    SendMessageBatch fails that entry alone (SenderFault) and sends the others, as SQS does
    (moto took any string: an empty one, 300 characters, spaces, non-ASCII)."""
    from moto.sqs.exceptions import InvalidParameterValue
    from moto.sqs.models import MAXIMUM_MESSAGE_LENGTH, SQSBackend

    # The installed ones: the hot-path rewrite and the batch that keeps system attributes.
    validate = SQSBackend._validate_message
    send_batch = SQSBackend.send_message_batch

    def _validate_message(
        self: Any,
        queue: Any,
        message_body: str,
        delay_seconds: int,
        deduplication_id: str | None = None,
        group_id: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        refusal = _invalid_sqs_id(group_id, deduplication_id)
        if refusal is not None:
            raise InvalidParameterValue(refusal)
        validate(
            self, queue, message_body, delay_seconds, deduplication_id, group_id, *args, **kwargs
        )

    def send_message_batch(
        self: Any, queue_name: str, entries: dict[str, dict[str, Any]]
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        refused: list[dict[str, Any]] = []
        kept: dict[str, dict[str, Any]] = {}
        for key, entry in entries.items():
            refusal = _invalid_sqs_id(
                entry.get("MessageGroupId"), entry.get("MessageDeduplicationId")
            )
            if refusal is None:
                kept[key] = entry
            else:
                refused.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": "InvalidParameterValue",
                        "Message": refusal,
                    }
                )
        if not refused or not _batch_is_well_formed(entries):
            # moto's batch-level errors (entry ids, count, size) come before any entry's.
            return send_batch(self, queue_name, entries)
        self.get_queue(queue_name)
        sent, failed = send_batch(self, queue_name, kept) if kept else ([], [])
        return sent, [*failed, *refused]

    def _batch_is_well_formed(entries: dict[str, dict[str, Any]]) -> bool:
        ids = [entry["Id"] for entry in entries.values()]
        return (
            len(ids) <= 10
            and len(set(ids)) == len(ids)
            and all(re.fullmatch(r"[\w-]{1,80}", i) for i in ids)
            and sum(len(e["MessageBody"]) for e in entries.values()) <= MAXIMUM_MESSAGE_LENGTH
        )

    install(SQSBackend, "_validate_message", _validate_message)
    install(SQSBackend, "send_message_batch", send_message_batch)
