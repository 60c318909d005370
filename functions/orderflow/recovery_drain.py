"""Drain's core: one failure message into the workflow items of its records.

The ``drain`` task (``recovery/handler.py``) receives the messages of one failure queue and
calls :func:`items_for_message` for each; it keeps the I/O of the queue and of S3. The records
of a stream failure message are re-read through the :class:`~orderflow.dal.StreamReader` it
passes in; every other kind carries its payload (see ``orderflow.recovery`` for the kinds).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from orderflow.errors import ErrorKind, PoisonRecordError, describe
from orderflow.events import read_json
from orderflow.notifications import is_batch, read_notifications
from orderflow.recovery import (
    Classification,
    DestinationFailure,
    DlqMessage,
    FailedRecord,
    PoisonEnvelope,
    Unreadable,
    make_item,
    parse_failure_message,
    raw_text,
)
from orderflow.recovery_contract import ItemClass, ItemState, RecoveryKind, SourceState, TargetType

if TYPE_CHECKING:
    from orderflow.dal import StreamReader

__all__ = ["MAX_RECORDS_PER_RANGE", "deferred_item", "items_for_message"]

#: Records re-read per stream failure message. When a range holds more, the last item carries
#: the rest of the range as a new on-failure record (StreamBatchFailure.continued_from), which
#: acknowledge sends right before it deletes the message: bounded state, no record dropped.
MAX_RECORDS_PER_RANGE = 50


def items_for_message(
    source: SourceState, message: dict[str, Any], reader: StreamReader
) -> list[FailedRecord]:
    """The items of one received failure message (an SQS ReceiveMessage entry).

    Raises:
        Exception: a stream read failed for now (``reader.is_transient``): the caller defers
            the message to the next run. A range that can never be read becomes one poison item.
    """
    name = str(source["name"])
    target_type = str(source.get("target", {}).get("type", TargetType.SQS))
    receipt = message["ReceiptHandle"]
    attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    parsed = parse_failure_message(message["Body"], str(source.get("kind", RecoveryKind.SQS_DLQ)))

    def item(
        payload: str, known: Classification | None = None, record_id: str | None = None
    ) -> FailedRecord:
        return make_item(
            source_name=name,
            target_type=target_type,
            payload=payload,
            receipt_handle=receipt,
            attempt=attempt,
            known=known,
            record_id=record_id,
        )

    if isinstance(parsed, Unreadable):
        poison = Classification(ErrorKind.POISON, f"unreadable: {parsed.reason}")
        return [item(parsed.raw, poison, f"{name}#unreadable#{_digest(parsed.raw)}")]
    if isinstance(parsed, PoisonEnvelope):
        record_id = f"{name}#envelope#{parsed.envelope_id}" if parsed.envelope_id else None
        payload = _omitted_payload(parsed, reader) if parsed.omitted_from else parsed.payload
        return [item(payload, Classification(ErrorKind.POISON, parsed.reason), record_id)]
    if isinstance(parsed, DestinationFailure):
        tasks = _batch_tasks(parsed.payload)
        if tasks is not None:
            # A batch failed as a whole; each task is judged on its own (re-validated): the
            # valid ones are replayed one by one, and those already done are deduplicated.
            retried = Classification(ErrorKind.TRANSIENT, parsed.reason)
            return [item(task, retried) for task in tasks]
        is_poison = parsed.error_type == "PoisonRecordError"
        kind = ErrorKind.POISON if is_poison else ErrorKind.TRANSIENT
        return [item(parsed.payload, Classification(kind, parsed.reason))]
    if isinstance(parsed, DlqMessage):
        return [item(parsed.payload, Classification(ErrorKind.TRANSIENT, "moved to DLQ"))]
    read = reader.kinesis_range if parsed.stream_kind == "kinesis" else reader.dynamodb_range
    try:
        records = read(
            parsed.stream_arn,
            parsed.shard_id,
            parsed.start_sequence,
            parsed.end_sequence,
            MAX_RECORDS_PER_RANGE + 1,
        )
    except Exception as exc:
        if reader.is_transient(exc):
            raise
        # A range that can never be read (no such stream or shard, a malformed sequence):
        # keep the on-failure record itself, with why.
        reason = f"{parsed.reason}; the stream range cannot be read: {describe(exc)}"
        return [item(message["Body"], Classification(ErrorKind.POISON, reason))]
    rest = ""
    if len(records) > MAX_RECORDS_PER_RANGE:
        rest = parsed.continued_from(records[MAX_RECORDS_PER_RANGE].sequence_number)
        records = records[:MAX_RECORDS_PER_RANGE]
    # The changes function ignores removals: there is nothing to replay for them.
    replayable = [record for record in records if record.event_name != "REMOVE"]
    if replayable:
        known = Classification(ErrorKind.TRANSIENT, parsed.reason)
        built = [item(_text(record.data), known) for record in replayable]
    else:
        # Only removals, or past the stream's retention: keep the metadata for a human.
        reason = f"{parsed.reason}; no replayable records left in the stream range"
        built = [item(message["Body"], Classification(ErrorKind.POISON, reason))]
    # The rest of the range is sent when this message is deleted, not before (acknowledge).
    built[-1].continuation = rest
    return built


def deferred_item(source: SourceState, message: dict[str, Any], exc: Exception) -> ItemState:
    """An item the run could not settle for now: the workflow marks it failed (and so fails)."""
    return {
        "recordId": f"{source['name']}#message#{message.get('MessageId', '?')}",
        "classification": ItemClass.DEFERRED,
        "reason": f"not drained this run: {describe(exc)}",
        "payload": "",
        "receiptHandle": message["ReceiptHandle"],
        "attempt": 0,
        "continuation": "",
    }


def _batch_tasks(payload: str) -> list[str] | None:
    """The task texts of a notification batch (None: the payload is not a readable batch)."""
    try:
        doc = read_json(payload, what="request payload")
        notifications = read_notifications(doc) if is_batch(doc) else None
    except PoisonRecordError:
        return None  # kept whole, as the destination's record says
    if notifications is None:
        return None
    return [json.dumps(n.task, separators=(",", ":"), ensure_ascii=False) for n in notifications]


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return raw_text(data)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _omitted_payload(envelope: PoisonEnvelope, reader: StreamReader) -> str:
    """The payload a handler left out of an envelope, re-read from its stream where it can be."""
    where = envelope.omitted_from
    if where is not None and where.stream_kind == "kinesis" and where.shard_id:
        try:
            found = reader.kinesis_range(
                where.stream_arn, where.shard_id, where.sequence, where.sequence, 1
            )
        except Exception as exc:
            if reader.is_transient(exc):
                raise
            found = []
        if found:
            return _text(found[0].data)
    # DynamoDB: the images are the item itself, still in its table; the envelope keeps the keys.
    return envelope.payload
