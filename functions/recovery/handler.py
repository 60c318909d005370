"""Recovery workflow tasks (Step Functions): ``drain``, ``replay``, ``quarantine``, ``acknowledge``,
``summarize`` (one Lambda function each).

State shapes (one source = one failure queue and the target its records return to)::

    source = {"name": "ingest-failures", "kind": "kinesis-failure",
              "queueUrl": "https://sqs...",
              "target": {"type": "kinesis", "streamName": "order-events"}}

    drain({"source": source, "maxMessages": 10})
      -> {"source": source, "items": [{"recordId", "classification", "reason", "payload",
                                       "receiptHandle", "attempt", "waitSeconds"}], "count": n}
    replay({"source": source, "item": item})          (or the item's fields beside "source")
      -> {"recordId", "attempts", "target"}; raises ReplayAttemptsExhausted / TransientReplayError
    quarantine({"source": source, "item": item})       -> {"recordId", "bucket", "s3Key", "reason"}
    acknowledge({"source": source, "records": [{"recordId", "receiptHandle", "outcome"}...]})
      -> {"source": name, "quarantined": [ids], "replayed": [ids], "failed": [ids],
          "deleted": n, ["error": {"Error", "Cause"}]}
         outcome is "quarantined" | "replayed" | "failed"; deletes the messages none of whose
         records failed; with no records it deletes nothing and returns empty lists.
    summarize({"sources": [<acknowledge result>...]})
      -> {"quarantined", "replayed", "failed" (counts), "quarantinedRecords", "sources"}

Target types: ``kinesis`` (PutRecord, partition key = order id), ``sqs`` (SendMessage; FIFO
group = order id), ``lambda`` (synchronous invoke of the changes function with a synthetic
DynamoDB stream event), ``lambda-async`` (asynchronous invoke, e.g. notifier).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orderflow.dal import (
    FailureQueue,
    QuarantineStore,
    RecoveryLedger,
    StreamReader,
)
from orderflow.dal.replay import publish_replay
from orderflow.errors import ErrorKind, describe
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
    make_item,
    parse_failure_message,
    quarantine_key,
    settle_outcomes,
    summarize_sources,
)
from orderflow.settings import QuarantineSettings, ReplaySettings, load_settings

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

# Records re-read per stream failure message: bisect keeps failed ranges small; more than
# this is left for the next run rather than overflowing the state.
_MAX_RECORDS_PER_RANGE = 50


def _items_for_message(
    source: dict[str, Any], message: dict[str, Any], reader: StreamReader
) -> list[FailedRecord]:
    name = str(source["name"])
    target_type = str(source.get("target", {}).get("type", "sqs"))
    receipt = message["ReceiptHandle"]
    attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
    parsed = parse_failure_message(message["Body"])

    def item(payload: str, known: Classification | None = None) -> FailedRecord:
        return make_item(
            source_name=name,
            target_type=target_type,
            payload=payload,
            receipt_handle=receipt,
            attempt=attempt,
            known=known,
        )

    if isinstance(parsed, PoisonEnvelope):
        return [item(parsed.payload, Classification(ErrorKind.POISON, parsed.reason))]
    if isinstance(parsed, DestinationFailure):
        poison = parsed.error_type == "PoisonRecordError"
        kind = ErrorKind.POISON if poison else ErrorKind.TRANSIENT
        return [item(parsed.payload, Classification(kind, parsed.reason))]
    if isinstance(parsed, DlqMessage):
        return [item(parsed.payload, Classification(ErrorKind.TRANSIENT, "moved to DLQ"))]
    read = reader.kinesis_range if parsed.stream_kind == "kinesis" else reader.dynamodb_range
    records = read(
        parsed.stream_arn,
        parsed.shard_id,
        parsed.start_sequence,
        parsed.end_sequence,
        _MAX_RECORDS_PER_RANGE,
    )
    # The changes function ignores removals: there is nothing to replay for them.
    replayable = [record for record in records if record.event_name != "REMOVE"]
    if not replayable:
        # Past the stream's retention (or only removals): keep the metadata for a human.
        reason = f"{parsed.reason}; no replayable records left in the stream range"
        return [item(message["Body"], Classification(ErrorKind.POISON, reason))]
    known = Classification(ErrorKind.TRANSIENT, parsed.reason)
    return [item(record.data.decode("utf-8", "replace"), known) for record in replayable]


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def drain(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Receive up to ``maxMessages`` failure messages and classify every record in them.

    Example::

        >>> drain({"source": source, "maxMessages": 10}, context)["count"]  # doctest: +SKIP
        3
    """
    source = event["source"]
    queue = FailureQueue(source["queueUrl"])
    reader = StreamReader()
    items: list[dict[str, Any]] = []
    size = 0
    for message in queue.receive(int(event.get("maxMessages", 10))):
        built = [entry.to_state() for entry in _items_for_message(source, message, reader)]
        cost = len(json.dumps(built))
        if items and (size + cost > MAX_STATE_CHARS or len(items) + len(built) > MAX_ITEMS):
            # Does not fit this run's state: make it visible again for the next run.
            queue.release(message["ReceiptHandle"])
            continue
        items.extend(built)
        size += cost
    poison = sum(1 for entry in items if entry["classification"] == ErrorKind.POISON.value)
    logger.info(
        "Drained failure queue",
        extra={"source": source["name"], "count": len(items), "poison": poison},
    )
    return {"source": source, "items": items, "count": len(items)}


def _item_of(event: dict[str, Any]) -> dict[str, Any]:
    return event["item"] if isinstance(event.get("item"), dict) else event


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def replay(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Count the attempt, then publish the record back to its source's target.

    Raises:
        ReplayAttemptsExhausted: attempts used up (or the item is poison): quarantine it.
        TransientReplayError: the publish failed for now: retry with backoff.
    """
    settings = load_settings(ReplaySettings)
    source, item = event["source"], _item_of(event)
    record_id, payload = str(item["recordId"]), str(item["payload"])
    if item.get("classification") == ErrorKind.POISON.value:
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
def quarantine(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Store the record in S3 and index it in the recovery table (idempotent: fixed key)."""
    settings = load_settings(QuarantineSettings)
    source, item = event["source"], _item_of(event)
    record_id = str(item["recordId"])
    reason = str(item.get("reason") or "quarantined")
    key = quarantine_key(str(source["name"]), record_id)
    document = {
        "recordId": record_id,
        "reason": reason,
        "classification": item.get("classification"),
        "payload": item.get("payload"),
        "source": source,
        "quarantinedAt": datetime.now(UTC).isoformat(),
    }
    QuarantineStore(settings.quarantine_bucket).put(key, json.dumps(document).encode())
    RecoveryLedger(settings.recovery_table).mark_quarantined(
        record_id,
        kind=str(source.get("kind", "")),
        source=str(source["name"]),
        reason=reason,
        s3_key=key,
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
def acknowledge(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
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
    try:
        deleted, undeleted = FailureQueue(str(source["queueUrl"])).delete(settled.deletable)
    except Exception as exc:
        logger.exception("Deleting handled failure messages failed", extra={"source": name})
        result["error"] = {"Error": type(exc).__name__, "Cause": describe(exc)}
        return result
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


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def summarize(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The workflow output from every source's result (counts over sources, quarantined ids)."""
    sources = event.get("sources")
    summary = summarize_sources(sources if isinstance(sources, list) else [])
    logger.info(
        "Recovery run summary",
        extra={key: summary[key] for key in ("quarantined", "replayed", "failed")},
    )
    return summary
