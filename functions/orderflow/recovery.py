"""Pure core of the recovery workflow: read failure messages, classify records, build payloads.

The Step Functions tasks in ``recovery/handler.py`` are thin: they do the I/O (receive,
re-read streams, publish, S3, the ledger, deletes) and call these functions for every decision
(classification here; which messages are deletable and the run's summary in
``orderflow.recovery_outcomes``), so the rules are tested without AWS and the state machine
needs no JSONPath filter expressions.

The states these functions read and build are typed in ``orderflow.recovery_contract``.
Failure message kinds (:class:`~orderflow.recovery_contract.RecoveryKind`) and what they hold:

``kinesis-failure`` / ``dynamodb-failure``
    AWS's on-failure record for a stream mapping: only metadata (``KinesisBatchInfo`` /
    ``DDBStreamBatchInfo``: shard and sequence range). The records are re-read from the stream.
``sqs-dlq``
    A message moved by a redrive policy: the body is the original task.
``lambda-destination``
    An async invocation's OnFailure record: ``requestPayload`` plus ``responsePayload`` with the
    function's ``errorType``/``errorMessage``.
any kind
    Our poison envelope (``{"streamline": "poison/1", "envelopeId", ...}``) sent by a batch
    handler. Its ``envelopeId`` is the record's id in the ledger and the quarantine.

A message that is none of these on a queue that only takes them (every kind but ``sqs-dlq``,
whose messages are the original bodies) is :class:`Unreadable`: quarantined as "unreadable" with
its raw bytes in base64 and the reason, never retried and never a crash of the workflow. Every
function here takes any input: a value or a poison classification, never an exception.

Example::

    >>> item = classify_payload('{"kind": "nope"}', target_type="sqs")
    >>> item.kind
    <ErrorKind.POISON: 'poison'>
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orderflow.errors import ErrorKind, PoisonRecordError
from orderflow.events import OrderEvent, parse_model, parse_order_image, parse_task, read_json
from orderflow.recovery_contract import ItemState, RecoveryKind, TargetType

__all__ = [
    "MAX_ITEMS",
    "MAX_PAYLOAD_CHARS",
    "MAX_STATE_CHARS",
    "Classification",
    "DestinationFailure",
    "DlqMessage",
    "FailedRecord",
    "PoisonEnvelope",
    "StreamBatchFailure",
    "Unreadable",
    "backoff_seconds",
    "business_id_of",
    "classify_payload",
    "make_item",
    "parse_failure_message",
    "partition_key_for",
    "quarantine_key",
    "raw_text",
    "record_id_for",
    "synthetic_stream_event",
]

# Step Functions state is capped at 256 KiB: payloads and items are bounded well below that.
MAX_PAYLOAD_CHARS = 32_768
#: SQS's largest message: any failure message is at most this.
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_STATE_CHARS = 160_000
MAX_ITEMS = 100


@dataclass(frozen=True, slots=True)
class Classification:
    kind: ErrorKind
    reason: str


@dataclass(frozen=True, slots=True)
class StreamLocation:
    """Where one stream record lives: recovery re-reads an envelope's omitted payload there."""

    stream_kind: str  # "kinesis" | "dynamodb"
    stream_arn: str
    shard_id: str | None  # DynamoDB stream records do not name their shard
    sequence: str


@dataclass(frozen=True, slots=True)
class PoisonEnvelope:
    reason: str
    error_type: str
    payload: str
    envelope_id: str | None = None
    #: Set when the handler left the record's payload out (too large): where to re-read it.
    omitted_from: StreamLocation | None = None


@dataclass(frozen=True, slots=True)
class StreamBatchFailure:
    stream_kind: str  # "kinesis" | "dynamodb"
    stream_arn: str
    shard_id: str
    start_sequence: str
    end_sequence: str
    reason: str
    document: Mapping[str, Any] = field(default_factory=dict)

    def continued_from(self, sequence: str) -> str:
        """The same on-failure record for the rest of the range, from ``sequence`` on.

        Drain re-reads a bounded number of records per message; when the range holds more, it
        sends this for the rest before the message is deleted, so no record of it is dropped.
        """
        key = "KinesisBatchInfo" if self.stream_kind == "kinesis" else "DDBStreamBatchInfo"
        info = dict(self.document.get(key) or {})
        info["startSequenceNumber"] = sequence
        return json.dumps({**self.document, key: info}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class DlqMessage:
    payload: str


@dataclass(frozen=True, slots=True)
class DestinationFailure:
    payload: str
    error_type: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A failure message recovery cannot read: kept whole, as base64, with the reason."""

    reason: str
    raw: str  # "base64:..." of the body's UTF-8 bytes


FailureMessage = PoisonEnvelope | StreamBatchFailure | DlqMessage | DestinationFailure | Unreadable


@dataclass(slots=True)
class FailedRecord:
    """One record to replay or quarantine, as the workflow state carries it.

    ``payload_ref`` (``s3://bucket/key``) is set when the payload was too large for the
    workflow's state: ``payload`` then holds its beginning and the object holds all of it.
    """

    record_id: str
    classification: ErrorKind
    reason: str
    payload: str
    receipt_handle: str
    attempt: int
    wait_seconds: int
    payload_ref: str | None = None
    #: The rest of a long stream range, as an on-failure record for the same queue: sent by
    #: acknowledge right before it deletes this record's message (so never twice, never lost).
    continuation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> ItemState:
        state: ItemState = {
            "recordId": self.record_id,
            "classification": self.classification.value,
            "reason": self.reason,
            "payload": self.payload,
            "receiptHandle": self.receipt_handle,
            "attempt": self.attempt,
            "waitSeconds": self.wait_seconds,
            "continuation": self.continuation,
        }
        if self.payload_ref:
            state["payloadRef"] = self.payload_ref
        return state


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Not text: keep it reversible so the quarantine object holds the exact bytes.
        return "base64:" + base64.b64encode(data).decode("ascii")


def raw_text(body: str | bytes) -> str:
    """A body kept whole and reversible, whatever it holds: ``base64:`` of its bytes."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return "base64:" + base64.b64encode(data).decode("ascii")


def _dumps(value: Any) -> str:
    # bytes (a B attribute as boto3 hands it) as AWS writes them in JSON: base64 text
    def default(item: Any) -> Any:
        if isinstance(item, (bytes, bytearray)):
            return base64.b64encode(bytes(item)).decode("ascii")
        return str(item)

    return json.dumps(value, default=default)


def _envelope_payload(record: Mapping[str, Any]) -> str:
    """The business payload inside a poison envelope's original record."""
    kinesis = record.get("kinesis")
    if isinstance(kinesis, Mapping):
        data = kinesis.get("data", "")
        if isinstance(data, str):
            try:
                return _text(base64.b64decode(data, validate=True))
            except ValueError:
                return data
        return _dumps(data)
    if isinstance(record.get("dynamodb"), Mapping):
        return _dumps({"eventName": record.get("eventName"), "dynamodb": record["dynamodb"]})
    body = record.get("body")
    if isinstance(body, str):
        return body
    return _dumps(record)


def _omitted_location(record: Mapping[str, Any]) -> StreamLocation | None:
    arn = record.get("eventSourceARN")
    if not isinstance(arn, str):
        return None
    kinesis = record.get("kinesis")
    if isinstance(kinesis, Mapping) and isinstance(kinesis.get("sequenceNumber"), str):
        event_id = record.get("eventID")
        shard = event_id.split(":", 1)[0] if isinstance(event_id, str) else None
        return StreamLocation("kinesis", arn, shard, kinesis["sequenceNumber"])
    dynamodb = record.get("dynamodb")
    if isinstance(dynamodb, Mapping) and isinstance(dynamodb.get("SequenceNumber"), str):
        return StreamLocation("dynamodb", arn, None, dynamodb["SequenceNumber"])
    return None


def _failure_reason(body: Mapping[str, Any]) -> str:
    request = body.get("requestContext")
    response = body.get("responseContext")
    request = request if isinstance(request, Mapping) else {}
    response = response if isinstance(response, Mapping) else {}
    parts = [str(request.get("condition") or "Failed")[:100]]
    if response.get("functionError"):
        parts.append(f"functionError={str(response['functionError'])[:100]}")
    if request.get("approximateInvokeCount"):
        parts.append(f"invocations={str(request['approximateInvokeCount'])[:20]}")
    return " ".join(parts)


_ENVELOPE_ID = re.compile(r"[0-9a-f]{32}")
_STREAM_INFO = {"KinesisBatchInfo": "kinesis", "DDBStreamBatchInfo": "dynamodb"}
_INFO_FIELDS = ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber")


def parse_failure_message(body: str, kind: str = RecoveryKind.SQS_DLQ) -> FailureMessage:
    """Recognise a failure message body (see the module docstring for the kinds).

    ``kind`` is the source's: on an ``sqs-dlq`` any body is a message moved there (its payload
    is judged by re-validating it); on the other kinds a body that is not one of their records
    is :class:`Unreadable`. Never raises.
    """
    dlq = kind == RecoveryKind.SQS_DLQ
    try:
        # A failure message wraps a record (an envelope, a destination's requestPayload): it
        # may be larger than a record may be; its depth is what is bounded.
        doc = read_json(body, what="failure message", limit=MAX_MESSAGE_BYTES)
    except PoisonRecordError as exc:
        return DlqMessage(payload=body) if dlq else Unreadable(exc.reason, raw_text(body))
    if not isinstance(doc, Mapping):
        if dlq:
            return DlqMessage(payload=body)
        return Unreadable("failure message is not a JSON object", raw_text(body))
    if str(doc.get("streamline", "")).startswith("poison/"):
        record = doc.get("record")
        if not isinstance(record, Mapping):
            # Nothing to take the payload from: the whole message is what there is to keep.
            said = str(doc.get("reason") or "")[:200]
            return Unreadable(f"poison envelope without its record ({said})", raw_text(body))
        envelope_id = doc.get("envelopeId")
        if not (isinstance(envelope_id, str) and _ENVELOPE_ID.fullmatch(envelope_id)):
            envelope_id = None  # not ours (forged or truncated): the content names it instead
        return PoisonEnvelope(
            reason=str(doc.get("reason") or "poison record")[:1000],
            error_type=str(doc.get("errorType") or "PoisonRecordError")[:100],
            payload=_envelope_payload(record),
            envelope_id=envelope_id,
            omitted_from=_omitted_location(record) if doc.get("omitted") else None,
        )
    for key, stream_kind in _STREAM_INFO.items():
        info = doc.get(key)
        if key not in doc:
            continue
        if not isinstance(info, Mapping) or not all(
            isinstance(info.get(name), str) and info[name] for name in _INFO_FIELDS
        ):
            return Unreadable(f"{key} without {', '.join(_INFO_FIELDS)}", raw_text(body))
        return StreamBatchFailure(
            stream_kind=stream_kind,
            stream_arn=info["streamArn"],
            shard_id=info["shardId"],
            start_sequence=info["startSequenceNumber"],
            end_sequence=info["endSequenceNumber"],
            reason=_failure_reason(doc),
            document=doc,
        )
    if "requestPayload" in doc and "requestContext" in doc:
        response = doc.get("responsePayload")
        error_type = error_message = None
        if isinstance(response, Mapping):
            error_type = response.get("errorType")
            error_message = response.get("errorMessage")
        reason = _failure_reason(doc)
        if error_type:
            reason += f" {str(error_type)[:100]}: {str(error_message or '')[:500]}".rstrip()
        payload = doc["requestPayload"]
        return DestinationFailure(
            payload=payload if isinstance(payload, str) else _dumps(payload),
            error_type=str(error_type)[:100] if error_type else None,
            reason=reason.strip(),
        )
    if dlq:
        return DlqMessage(payload=body)
    return Unreadable(
        "not an on-failure record, a destination record or a poison envelope", raw_text(body)
    )


def classify_payload(payload: str, target_type: str) -> Classification:
    """Re-validate a payload against the schema its target consumes.

    ``kinesis`` targets take an OrderEvent, ``lambda`` (the changes function) a DynamoDB stream
    change whose NewImage is an OrderState, ``sqs``/``lambda-async`` a task. Never raises.
    """
    if len(payload) > MAX_PAYLOAD_CHARS:
        # Every schema bounds its fields far below this, so such a payload is invalid anyway.
        return Classification(ErrorKind.POISON, f"payload larger than {MAX_PAYLOAD_CHARS} chars")
    try:
        if target_type == TargetType.KINESIS:
            parse_model(OrderEvent, payload)
        elif target_type == TargetType.LAMBDA:
            _validate_stream_change(payload)
        else:
            parse_task(payload)
    except PoisonRecordError as exc:
        return Classification(ErrorKind.POISON, exc.reason)
    return Classification(ErrorKind.TRANSIENT, "valid payload")


def _validate_stream_change(payload: str) -> None:
    change = read_json(payload, what="stream change")
    dynamodb = change.get("dynamodb") if isinstance(change, Mapping) else None
    image = dynamodb.get("NewImage") if isinstance(dynamodb, Mapping) else None
    if not isinstance(image, Mapping):
        raise PoisonRecordError("not a DynamoDB stream change with a NewImage")
    parse_order_image(image)


def business_id_of(payload: str) -> tuple[str, str] | None:
    """``("event_id" | "task_id", value)`` when the payload is a JSON object that names one.

    A poison record often still carries its id (a negative amount, an unknown field): the
    quarantine index keeps it, so an operator finds the record by the id the producer knows.
    Never raises.
    """
    try:
        doc = read_json(payload)
    except PoisonRecordError:
        return None
    if isinstance(doc, Mapping):
        for key in ("event_id", "task_id"):
            value = doc.get(key)
            if isinstance(value, str) and 0 < len(value) <= 64:
                return key, value
    return None


def record_id_for(source_name: str, payload: str, *, poison: bool = False) -> str:
    """Stable id of a failed record across drains and replays (for the ledger and quarantine).

    A valid payload is named by its business id (a replayed record fails again under a new
    message id or sequence number, but keeps its event/task id, so its attempts add up). A poison
    payload is named by its content: two different bad records that claim one id are quarantined
    apart, and copies of one record collapse. Never raises.
    """
    if not poison:
        found = business_id_of(payload)
        if found is not None:
            key, value = found
            return f"{source_name}#{key.split('_')[0]}#{value}"
    digest = hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{source_name}#sha256#{digest}"


def backoff_seconds(attempt: int, base: int = 2, cap: int = 300) -> int:
    """Exponential backoff before a replay, capped (Wait state input)."""
    return int(min(cap, base ** max(1, min(attempt, 12))))


def make_item(
    *,
    source_name: str,
    target_type: str,
    payload: str,
    receipt_handle: str,
    attempt: int,
    known: Classification | None = None,
    record_id: str | None = None,
) -> FailedRecord:
    """Build one workflow item: classification from ``known`` (poison envelope, error type)
    when it says poison, else from re-validating the payload.

    ``record_id`` overrides the derived id (an envelope's ``envelopeId``). The payload is kept
    whole: the drain task moves one too large for the workflow state to S3 (``payload_ref``).
    """
    checked = classify_payload(payload, target_type)
    if known is not None and known.kind is ErrorKind.POISON:
        result = known
    elif checked.kind is ErrorKind.POISON:
        result = checked
    else:
        result = known or checked
    poison = result.kind is ErrorKind.POISON
    return FailedRecord(
        record_id=record_id or record_id_for(source_name, payload, poison=poison),
        classification=result.kind,
        reason=result.reason[:1000],
        payload=payload,
        receipt_handle=receipt_handle,
        attempt=attempt,
        wait_seconds=0 if poison else backoff_seconds(attempt),
    )


def partition_key_for(payload: str) -> str:
    """Kinesis partition key of a replayed event (the order id, as producers use)."""
    return parse_model(OrderEvent, payload).order_id


def synthetic_stream_event(payload: str, stream_arn: str | None = None) -> dict[str, Any]:
    """A one-record DynamoDB stream event to replay a change into the changes function.

    Raises:
        PoisonRecordError: the payload is not a stream change.
    """
    change = read_json(payload, what="stream change")
    if not isinstance(change, Mapping) or not isinstance(change.get("dynamodb"), Mapping):
        raise PoisonRecordError("not a DynamoDB stream change")
    dynamodb = dict(change["dynamodb"])
    return {
        "Records": [
            {
                "eventID": f"replay-{dynamodb.get('SequenceNumber', '0')}",
                "eventName": change.get("eventName") or "MODIFY",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": (stream_arn or "arn:aws:dynamodb:us-east-1").split(":")[3],
                "dynamodb": dynamodb,
                "eventSourceARN": stream_arn or "replay",
            }
        ]
    }


def quarantine_key(source_name: str, record_id: str) -> str:
    """Deterministic S3 key: quarantining the same record twice overwrites one object."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.#" else "_" for ch in record_id)
    return f"quarantine/{source_name}/{safe.replace('#', '/')}.json"
