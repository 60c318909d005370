"""Recovery workflow tasks (Step Functions): ``drain``, ``replay``, ``quarantine``, ``acknowledge``,
``summarize`` (one Lambda function each).

Their inputs and results are typed in ``orderflow.recovery_contract`` (the one description of
the workflow's states). These tasks do the I/O; the decisions are made in ``orderflow``:
``recovery`` (classification), ``recovery_drain`` (a failure message into items) and
``recovery_outcomes`` (what to delete, the run's summary).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

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
    FailedRecord,
    ReplayAttemptsExhausted,
    TransientReplayError,
    business_id_of,
    quarantine_key,
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
    RecoverySummary,
    ReplayResult,
    SourceResult,
    SourceState,
    SummarizeInput,
)
from orderflow.recovery_drain import deferred_item, items_for_message
from orderflow.recovery_outcomes import settle_outcomes, summarize_sources
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

# A payload longer than this goes to S3 (``payloads/``) and the state carries its beginning.
_STATE_PAYLOAD_CHARS = 4096


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
                for entry in items_for_message(source, message, reader)
            ]
        except Exception as exc:
            logger.warning(
                "Failure message not drained this run",
                extra={"source": source["name"], "reason": describe(exc)},
                exc_info=exc if not reader.is_transient(exc) else None,
            )
            built = [deferred_item(source, message, exc)]
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
