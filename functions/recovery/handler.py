"""Recovery workflow tasks (Step Functions): ``drain``, ``replay``, ``quarantine``, ``acknowledge``,
``summarize`` (one Lambda function each).

Their inputs and results are typed in ``orderflow.recovery_contract`` (the one description of
the workflow's states); the decisions are ``orderflow.recovery``'s, these tasks do the I/O.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from orderflow.dal import (
    FailureQueue,
    IncompleteRangeRead,
    QuarantineStore,
    RecoveryLedger,
    StreamReader,
)
from orderflow.dal.replay import publish_replay
from orderflow.errors import ErrorKind, classify, describe
from orderflow.observability import logger, tracer
from orderflow.recovery import (
    MAX_ITEMS,
    MAX_STATE_CHARS,
    Classification,
    DestinationFailure,
    DlqMessage,
    FailedRecord,
    PoisonEnvelope,
    ReplayAttemptsExhausted,
    TransientReplayError,
    Unreadable,
    business_id_of,
    make_item,
    parse_failure_message,
    quarantine_key,
    raw_text,
    settle_outcomes,
    summarize_sources,
)
from orderflow.recovery_contract import (
    AcknowledgeInput,
    DrainInput,
    DrainResult,
    ItemClass,
    ItemInput,
    ItemState,
    QuarantineDocument,
    QuarantineResult,
    RecoveryKind,
    RecoverySummary,
    ReplayResult,
    SourceResult,
    SourceState,
    SummarizeInput,
    TargetType,
)
from orderflow.settings import DrainSettings, QuarantineSettings, ReplaySettings, load_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "ReplayAttemptsExhausted",
    "TransientReplayError",
    "acknowledge",
    "drain",
    "quarantine",
    "replay",
    "summarize",
]

# Records re-read per stream failure message. When a range holds more, drain sends the rest of
# the range back to the queue as a new on-failure record (StreamBatchFailure.continued_from)
# before this message is deleted: bounded state, and no record of the range is dropped.
_MAX_RECORDS_PER_RANGE = 50
# Answers that say a stream range can never be read (no such stream or shard, a sequence
# number that is not one, records past retention): a verdict on the message, not a hiccup.
_RANGE_GONE = frozenset(
    {
        "ResourceNotFoundException",
        "InvalidArgumentException",
        "TrimmedDataAccessException",
        "ValidationException",
    }
)
# A payload longer than this goes to S3 (``payloads/``) and the state carries its beginning.
_STATE_PAYLOAD_CHARS = 4096


def _items_for_message(
    source: SourceState, message: dict[str, Any], reader: StreamReader, queue: FailureQueue
) -> list[FailedRecord]:
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
            _MAX_RECORDS_PER_RANGE + 1,
        )
    except Exception as exc:
        if _is_transient_aws_error(exc):
            raise
        # A range that can never be read (no such stream or shard, a malformed sequence):
        # keep the on-failure record itself, with why.
        reason = f"{parsed.reason}; the stream range cannot be read: {describe(exc)}"
        return [item(message["Body"], Classification(ErrorKind.POISON, reason))]
    rest = ""
    if len(records) > _MAX_RECORDS_PER_RANGE:
        rest = parsed.continued_from(records[_MAX_RECORDS_PER_RANGE].sequence_number)
        records = records[:_MAX_RECORDS_PER_RANGE]
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
            if _is_transient_aws_error(exc):
                raise
            found = []
        if found:
            return _text(found[0].data)
    # DynamoDB: the images are the item itself, still in its table; the envelope keeps the keys.
    return envelope.payload


def _is_transient_aws_error(exc: BaseException) -> bool:
    """A throttle, a 5xx or a lost connection: worth another run, not a verdict on the record."""
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    if isinstance(exc, IncompleteRangeRead):
        return True
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code not in _RANGE_GONE and classify(exc) is ErrorKind.TRANSIENT
    # A parameter the SDK refuses (a forged shard id too short to be one) never gets better.
    return isinstance(exc, BotoCoreError) and not isinstance(exc, ParamValidationError)


def _deferred_item(source: SourceState, message: dict[str, Any], exc: Exception) -> ItemState:
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


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def drain(event: DrainInput, context: LambdaContext) -> DrainResult:
    """Receive up to ``maxMessages`` failure messages and classify every record in them.

    Any message becomes items: an unreadable one is poison ("unreadable", its raw bytes kept);
    one that could not be read for now (a throttled stream read) is ``deferred``, which the
    workflow counts as failed, so the run ends FAILED and the alarm on it fires.

    Example::

        >>> drain({"source": source, "maxMessages": 10}, context)["count"]  # doctest: +SKIP
        3
    """
    source = event["source"]
    queue = FailureQueue(source["queueUrl"])
    reader = StreamReader()
    items: list[ItemState] = []
    size = 0
    for message in queue.receive(int(event.get("maxMessages", 10))):
        try:
            built = [
                _fit(entry, source).to_state()
                for entry in _items_for_message(source, message, reader, queue)
            ]
        except Exception as exc:
            logger.warning(
                "Failure message not drained this run",
                extra={"source": source["name"], "reason": describe(exc)},
                exc_info=exc if not _is_transient_aws_error(exc) else None,
            )
            built = [_deferred_item(source, message, exc)]
        cost = len(json.dumps(built))
        if items and (size + cost > MAX_STATE_CHARS or len(items) + len(built) > MAX_ITEMS):
            # Does not fit this run's state: make it visible again for the next run.
            queue.release(message["ReceiptHandle"])
            continue
        items.extend(built)
        size += cost
    poison = sum(1 for entry in items if entry["classification"] == ItemClass.POISON)
    logger.info(
        "Drained failure queue",
        extra={"source": source["name"], "count": len(items), "poison": poison},
    )
    return {"source": source, "items": items, "count": len(items)}


def _fit(entry: FailedRecord, source: SourceState) -> FailedRecord:
    """Keep a poison payload too large for the workflow state in S3; the state keeps its
    beginning. A replayable payload is bounded by the schema and travels whole (replay needs
    all of it); drain's state budget makes room for it."""
    if entry.classification is not ErrorKind.POISON or len(entry.payload) <= _STATE_PAYLOAD_CHARS:
        return entry
    bucket = load_settings(DrainSettings).quarantine_bucket
    data = entry.payload.encode("utf-8", "surrogatepass")
    key = f"payloads/{source['name']}/{hashlib.sha256(data).hexdigest()}"
    QuarantineStore(bucket).put(key, data, content_type="application/octet-stream")
    entry.payload = entry.payload[:_STATE_PAYLOAD_CHARS]
    entry.payload_ref = f"s3://{bucket}/{key}"
    return entry


def _item_of(event: ItemInput) -> ItemState:
    # (or the item's fields beside "source", as an operator may start a task by hand)
    item = event.get("item")
    return item if isinstance(item, dict) else cast(ItemState, event)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def replay(event: ItemInput, context: LambdaContext) -> ReplayResult:
    """Count the attempt, then publish the record back to its source's target.

    Raises:
        ReplayAttemptsExhausted: attempts used up (or the item is poison): quarantine it.
        TransientReplayError: the publish failed for now: retry with backoff.
    """
    settings = load_settings(ReplaySettings)
    source, item = event["source"], _item_of(event)
    record_id, payload = str(item["recordId"]), str(item["payload"])
    if item.get("classification") == ItemClass.POISON:
        raise ReplayAttemptsExhausted(f"{record_id}: poison records are quarantined, not replayed")
    attempts = RecoveryLedger(settings.recovery_table).begin_replay(
        record_id,
        max_attempts=settings.max_replay_attempts,
        kind=str(source.get("kind", "")),
        source=str(source["name"]),
        reason=str(item.get("reason", "")),
    )
    if attempts is None:
        raise ReplayAttemptsExhausted(
            f"{record_id}: {settings.max_replay_attempts} replay attempts used up"
        )
    target = source["target"]
    try:
        publish_replay(target, payload, dedup_suffix=f"replay:{attempts}")
    except (ReplayAttemptsExhausted, TransientReplayError):
        raise
    except Exception as exc:
        raise TransientReplayError(f"{record_id}: {describe(exc)}") from exc
    logger.info("Replayed record", extra={"record_id": record_id, "attempts": attempts})
    return {"recordId": record_id, "attempts": attempts, "target": target["type"]}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def quarantine(event: ItemInput, context: LambdaContext) -> QuarantineResult:
    """Store the record in S3 and index it in the recovery table (idempotent: fixed key)."""
    settings = load_settings(QuarantineSettings)
    source, item = event["source"], _item_of(event)
    record_id = str(item["recordId"])
    reason = str(item.get("reason") or "quarantined")
    key = quarantine_key(str(source["name"]), record_id)
    document: QuarantineDocument = {
        "recordId": record_id,
        "reason": reason,
        "classification": item.get("classification"),
        "payload": item.get("payload"),
        "payloadRef": item.get("payloadRef"),
        "source": source,
        "quarantinedAt": datetime.now(UTC).isoformat(),
    }
    QuarantineStore(settings.quarantine_bucket).put(key, json.dumps(document).encode())
    found = business_id_of(str(item.get("payload") or ""))
    RecoveryLedger(settings.recovery_table).mark_quarantined(
        record_id,
        kind=str(source.get("kind", "")),
        source=str(source["name"]),
        reason=reason,
        s3_key=key,
        business_id=found[1] if found else None,
    )
    logger.warning("Record quarantined", extra={"record_id": record_id, "reason": reason})
    return {
        "recordId": record_id,
        "bucket": settings.quarantine_bucket,
        "s3Key": key,
        "reason": reason,
    }


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def acknowledge(event: AcknowledgeInput, context: LambdaContext) -> SourceResult:
    """Settle one source: group its records by outcome and delete the fully handled messages.

    Called once per source, also with no records (then nothing is deleted). A delete that
    fails is reported under ``error`` instead of raised: the outcomes still reach the summary,
    and an undeleted message only comes back next run (replays and sinks are idempotent).
    """
    source = event["source"]
    name = str(source["name"])
    records = event.get("records")
    settled = settle_outcomes(records if isinstance(records, list) else [])
    result = settled.to_state(name)
    if not settled.deletable:
        return result
    queue = FailureQueue(str(source["queueUrl"]))
    try:
        # The rest of a long stream range first: once its message is deleted, this is all
        # that names those records.
        deletable = _send_continuations(queue, settled.deletable, settled.continuations)
        deleted, undeleted = queue.delete(deletable)
    except Exception as exc:
        logger.exception("Deleting handled failure messages failed", extra={"source": name})
        result["error"] = {"Error": type(exc).__name__, "Cause": describe(exc)}
        return result
    undeleted += [handle for handle in settled.deletable if handle not in deletable]
    result["deleted"] = deleted
    if undeleted:
        logger.warning(
            "Some failure messages were not deleted",
            extra={"source": name, "count": len(undeleted)},
        )
        result["error"] = {
            "Error": "DeleteMessageBatchFailed",
            "Cause": f"{len(undeleted)} of {len(settled.deletable)} messages not deleted",
        }
    logger.info(
        "Acknowledged source",
        extra={
            "source": name,
            "deleted": deleted,
            **{key: len(result[key]) for key in ("quarantined", "replayed", "failed")},
        },
    )
    return result


def _send_continuations(
    queue: FailureQueue, handles: list[str], continuations: dict[str, list[str]]
) -> list[str]:
    """Send each handle's continuations; the handles that may be deleted (all theirs sent)."""
    ready = []
    for handle in handles:
        try:
            for body in continuations.get(handle, []):
                queue.send(body)
        except Exception:
            logger.exception("Could not send the rest of a stream range; message kept")
            continue
        ready.append(handle)
    return ready


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def summarize(event: SummarizeInput, context: LambdaContext) -> RecoverySummary:
    """The workflow output from every source's result (counts over sources, quarantined ids)."""
    sources = event.get("sources")
    summary = summarize_sources(sources if isinstance(sources, list) else [])
    logger.info(
        "Recovery run summary",
        extra={key: summary[key] for key in ("quarantined", "replayed", "failed")},
    )
    return summary
