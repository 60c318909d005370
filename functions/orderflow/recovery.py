"""Pure core of the recovery workflow: read failure messages, classify records, build payloads.

The four Step Functions tasks in ``recovery/handler.py`` are thin: they do the I/O (receive,
re-read streams, publish, S3, the ledger) and call these functions for every decision, so the
rules are tested without AWS.

Failure message kinds (``source.kind``) and what they hold:

``kinesis-failure`` / ``dynamodb-failure``
    AWS's on-failure record for a stream mapping: only metadata (``KinesisBatchInfo`` /
    ``DDBStreamBatchInfo``: shard and sequence range). The records are re-read from the stream.
``sqs-dlq``
    A message moved by a redrive policy: the body is the original task.
``lambda-destination``
    An async invocation's OnFailure record: ``requestPayload`` plus ``responsePayload`` with the
    function's ``errorType``/``errorMessage``.
any kind
    Our poison envelope (``{"streamline": "poison/1", ...}``) sent by a batch handler.

Example::

    >>> item = classify_payload('{"kind": "nope"}', target_type="sqs")
    >>> item.kind
    <ErrorKind.POISON: 'poison'>
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orderflow.errors import ErrorKind, PoisonRecordError
from orderflow.events import OrderEvent, OrderState, parse_model, parse_task

__all__ = [
    "MAX_ITEMS",
    "MAX_PAYLOAD_CHARS",
    "MAX_STATE_CHARS",
    "Classification",
    "DestinationFailure",
    "DlqMessage",
    "FailedRecord",
    "PoisonEnvelope",
    "ReplayAttemptsExhausted",
    "StreamBatchFailure",
    "TransientReplayError",
    "backoff_seconds",
    "classify_payload",
    "make_item",
    "parse_failure_message",
    "partition_key_for",
    "quarantine_key",
    "record_id_for",
    "synthetic_stream_event",
]

# Step Functions state is capped at 256 KiB: payloads and items are bounded well below that.
MAX_PAYLOAD_CHARS = 32_768
MAX_STATE_CHARS = 160_000
MAX_ITEMS = 100


class ReplayAttemptsExhausted(Exception):
    """The record used up MAX_REPLAY_ATTEMPTS (or is poison/quarantined): quarantine it."""


class TransientReplayError(Exception):
    """Publishing the replay failed for now (throttle, timeout): retry the task with backoff."""


@dataclass(frozen=True, slots=True)
class Classification:
    kind: ErrorKind
    reason: str


@dataclass(frozen=True, slots=True)
class PoisonEnvelope:
    reason: str
    error_type: str
    payload: str


@dataclass(frozen=True, slots=True)
class StreamBatchFailure:
    stream_kind: str  # "kinesis" | "dynamodb"
    stream_arn: str
    shard_id: str
    start_sequence: str
    end_sequence: str
    reason: str


@dataclass(frozen=True, slots=True)
class DlqMessage:
    payload: str


@dataclass(frozen=True, slots=True)
class DestinationFailure:
    payload: str
    error_type: str | None
    reason: str


FailureMessage = PoisonEnvelope | StreamBatchFailure | DlqMessage | DestinationFailure


@dataclass(slots=True)
class FailedRecord:
    """One record to replay or quarantine, as the workflow state carries it."""

    record_id: str
    classification: ErrorKind
    reason: str
    payload: str
    receipt_handle: str
    attempt: int
    wait_seconds: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        return {
            "recordId": self.record_id,
            "classification": self.classification.value,
            "reason": self.reason,
            "payload": self.payload,
            "receiptHandle": self.receipt_handle,
            "attempt": self.attempt,
            "waitSeconds": self.wait_seconds,
        }


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Not text: keep it reversible so the quarantine object holds the exact bytes.
        return "base64:" + base64.b64encode(data).decode("ascii")


def _envelope_payload(record: Mapping[str, Any]) -> str:
    """The business payload inside a poison envelope's original record."""
    if isinstance(record.get("kinesis"), Mapping):
        data = record["kinesis"].get("data", "")
        try:
            return _text(base64.b64decode(data, validate=True))
        except ValueError:
            return str(data)
    if isinstance(record.get("dynamodb"), Mapping):
        return json.dumps(
            {"eventName": record.get("eventName"), "dynamodb": record["dynamodb"]}, default=str
        )
    if "body" in record:
        return str(record["body"])
    return json.dumps(record, default=str)


def _failure_reason(body: Mapping[str, Any]) -> str:
    request = body.get("requestContext") or {}
    response = body.get("responseContext") or {}
    parts = [str(request.get("condition") or "Failed")]
    if response.get("functionError"):
        parts.append(f"functionError={response['functionError']}")
    if request.get("approximateInvokeCount"):
        parts.append(f"invocations={request['approximateInvokeCount']}")
    return " ".join(parts)


def parse_failure_message(body: str) -> FailureMessage:
    """Recognise a failure message body (see the module docstring for the kinds)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return DlqMessage(payload=body)
    if not isinstance(doc, Mapping):
        return DlqMessage(payload=body)
    if str(doc.get("streamline", "")).startswith("poison/"):
        return PoisonEnvelope(
            reason=str(doc.get("reason") or "poison record"),
            error_type=str(doc.get("errorType") or "PoisonRecordError"),
            payload=_envelope_payload(doc.get("record") or {}),
        )
    for key, kind in (("KinesisBatchInfo", "kinesis"), ("DDBStreamBatchInfo", "dynamodb")):
        info = doc.get(key)
        if isinstance(info, Mapping):
            return StreamBatchFailure(
                stream_kind=kind,
                stream_arn=str(info["streamArn"]),
                shard_id=str(info["shardId"]),
                start_sequence=str(info["startSequenceNumber"]),
                end_sequence=str(info["endSequenceNumber"]),
                reason=_failure_reason(doc),
            )
    if "requestPayload" in doc and "requestContext" in doc:
        response = doc.get("responsePayload")
        error_type = error_message = None
        if isinstance(response, Mapping):
            error_type = response.get("errorType")
            error_message = response.get("errorMessage")
        reason = _failure_reason(doc)
        if error_type:
            reason += f" {error_type}: {error_message or ''}".rstrip()
        payload = doc["requestPayload"]
        return DestinationFailure(
            payload=payload if isinstance(payload, str) else json.dumps(payload, default=str),
            error_type=str(error_type) if error_type else None,
            reason=reason.strip(),
        )
    return DlqMessage(payload=body)


def classify_payload(payload: str, target_type: str) -> Classification:
    """Re-validate a payload against the schema its target consumes.

    ``kinesis`` targets take an OrderEvent, ``lambda`` (the changes function) a DynamoDB stream
    change whose NewImage is an OrderState, ``sqs``/``lambda-async`` a task.
    """
    if len(payload) > MAX_PAYLOAD_CHARS:
        # Every schema bounds its fields far below this, so such a payload is invalid anyway.
        return Classification(ErrorKind.POISON, f"payload larger than {MAX_PAYLOAD_CHARS} chars")
    try:
        if target_type == "kinesis":
            parse_model(OrderEvent, payload)
        elif target_type == "lambda":
            _validate_stream_change(payload)
        else:
            parse_task(payload)
    except PoisonRecordError as exc:
        return Classification(ErrorKind.POISON, exc.reason)
    return Classification(ErrorKind.TRANSIENT, "valid payload")


def _validate_stream_change(payload: str) -> None:
    from boto3.dynamodb.types import TypeDeserializer

    try:
        change = json.loads(payload)
        image = change["dynamodb"]["NewImage"]
        plain = {key: TypeDeserializer().deserialize(value) for key, value in image.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PoisonRecordError(f"not a DynamoDB stream change with a NewImage: {exc}") from exc
    parse_model(OrderState, plain)


def record_id_for(source_name: str, payload: str) -> str:
    """Stable id of a failed record across drains and replays (for the attempts ledger).

    Uses the business id when the payload has one (a replayed record fails again under a new
    message id or sequence number, but keeps its event/task id), else a content hash.
    """
    try:
        doc = json.loads(payload)
    except ValueError:
        doc = None
    if isinstance(doc, Mapping):
        for key in ("event_id", "task_id"):
            if isinstance(doc.get(key), str) and doc[key]:
                return f"{source_name}#{key.split('_')[0]}#{doc[key]}"
    digest = hashlib.sha256(payload.encode("utf-8", "replace")).hexdigest()[:32]
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
) -> FailedRecord:
    """Build one workflow item: classification from ``known`` (poison envelope, error type)
    when it says poison, else from re-validating the payload."""
    checked = classify_payload(payload, target_type)
    if known is not None and known.kind is ErrorKind.POISON:
        result = known
    elif checked.kind is ErrorKind.POISON:
        result = checked
    else:
        result = known or checked
    if len(payload) > MAX_PAYLOAD_CHARS:
        payload = payload[:MAX_PAYLOAD_CHARS] + "...[truncated]"
    return FailedRecord(
        record_id=record_id_for(source_name, payload),
        classification=result.kind,
        reason=result.reason[:1000],
        payload=payload,
        receipt_handle=receipt_handle,
        attempt=attempt,
        wait_seconds=0 if result.kind is ErrorKind.POISON else backoff_seconds(attempt),
    )


def partition_key_for(payload: str) -> str:
    """Kinesis partition key of a replayed event (the order id, as producers use)."""
    return parse_model(OrderEvent, payload).order_id


def synthetic_stream_event(payload: str, stream_arn: str | None = None) -> dict[str, Any]:
    """A one-record DynamoDB stream event to replay a change into the changes function."""
    change = json.loads(payload)
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
