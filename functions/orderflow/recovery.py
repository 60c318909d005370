"""Pure core of the recovery workflow: read failure messages, classify records, build payloads.

The Step Functions tasks in ``recovery/handler.py`` are thin: they do the I/O (receive,
re-read streams, publish, S3, the ledger, deletes) and call these functions for every decision
(classification, which messages are deletable, the run's summary), so the rules are tested
without AWS and the state machine needs no JSONPath filter expressions.

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
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orderflow.errors import ErrorKind, PoisonRecordError
from orderflow.events import OrderEvent, OrderState, parse_model, parse_task
from orderflow.tracing import split_item_trace

__all__ = [
    "MAX_ITEMS",
    "MAX_PAYLOAD_CHARS",
    "MAX_STATE_CHARS",
    "Classification",
    "DestinationFailure",
    "DlqMessage",
    "FailedRecord",
    "Outcome",
    "PoisonEnvelope",
    "ReplayAttemptsExhausted",
    "SourceOutcomes",
    "StreamBatchFailure",
    "TransientReplayError",
    "backoff_seconds",
    "classify_payload",
    "make_item",
    "parse_failure_message",
    "partition_key_for",
    "quarantine_key",
    "record_id_for",
    "settle_outcomes",
    "summarize_sources",
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
    state, _ = split_item_trace(plain)  # the item's trace header is not part of the schema
    parse_model(OrderState, state)


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


# --- outcomes: what acknowledge deletes and what the workflow reports ---------------------


class Outcome(enum.StrEnum):
    """How the workflow's item Map ended for one record (its ``outcome`` field)."""

    QUARANTINED = "quarantined"
    REPLAYED = "replayed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SourceOutcomes:
    """One source's records by outcome (record ids) and the receipt handles safe to delete."""

    quarantined: list[str]
    replayed: list[str]
    failed: list[str]
    deletable: list[str]

    def to_state(self, source_name: str, deleted: int = 0) -> dict[str, Any]:
        return {
            "source": source_name,
            "quarantined": self.quarantined,
            "replayed": self.replayed,
            "failed": self.failed,
            "deleted": deleted,
        }


def _outcome_of(record: Mapping[str, Any]) -> Outcome:
    try:
        return Outcome(str(record.get("outcome", "")))
    except ValueError:
        # Unknown or missing: never delete on a guess; the message comes back next run.
        return Outcome.FAILED


def settle_outcomes(records: Iterable[Mapping[str, Any]]) -> SourceOutcomes:
    """Group the item Map's outcomes of one source and decide which messages to delete.

    A message is deletable when none of its records failed: a stream failure message expands
    into several records sharing one receipt handle, and deleting it while one of them failed
    would lose that record (kept, all of them come back next run; replays are idempotent).
    Record ids and handles are deduplicated in first-seen order.

    Example::

        >>> settle_outcomes([
        ...     {"recordId": "a", "receiptHandle": "m1", "outcome": "replayed"},
        ...     {"recordId": "b", "receiptHandle": "m1", "outcome": "failed"},
        ...     {"recordId": "c", "receiptHandle": "m2", "outcome": "quarantined"},
        ... ]).deletable
        ['m2']
    """
    ids: dict[Outcome, dict[str, None]] = {outcome: {} for outcome in Outcome}
    handled: dict[str, None] = {}
    blocked: set[str] = set()
    for record in records:
        outcome = _outcome_of(record)
        record_id = str(record.get("recordId") or "")
        if record_id:
            ids[outcome][record_id] = None
        handle = str(record.get("receiptHandle") or "")
        if not handle:
            continue
        if outcome is Outcome.FAILED:
            blocked.add(handle)
        else:
            handled[handle] = None
    return SourceOutcomes(
        quarantined=list(ids[Outcome.QUARANTINED]),
        replayed=list(ids[Outcome.REPLAYED]),
        failed=list(ids[Outcome.FAILED]),
        deletable=[handle for handle in handled if handle not in blocked],
    )


def _ids(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def summarize_sources(sources: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The workflow output: outcome counts over every source, quarantined ids, per-source results.

    Example::

        >>> summarize_sources([{"source": "s", "quarantined": ["s#1"], "replayed": [],
        ...                     "failed": [], "deleted": 1}])["quarantined"]
        1
    """
    totals: dict[Outcome, dict[str, None]] = {outcome: {} for outcome in Outcome}
    for source in sources:
        for outcome in Outcome:
            totals[outcome].update(dict.fromkeys(_ids(source.get(outcome.value))))
    quarantined = list(totals[Outcome.QUARANTINED])
    return {
        "quarantined": len(quarantined),
        "replayed": len(totals[Outcome.REPLAYED]),
        "failed": len(totals[Outcome.FAILED]),
        "quarantinedRecords": quarantined,
        "sources": [dict(source) for source in sources],
    }
