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
import time
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
    business_id_of,
    quarantine_key,
)
from orderflow.recovery_contract import (
    AcknowledgeInput,
    DrainInput,
    DrainResult,
    ItemClass,
    ItemOutcome,
    ItemState,
    Outcome,
    QuarantineDocument,
    QuarantineInput,
    QuarantineOutput,
    QuarantineResult,
    RecoverySummary,
    ReplayInput,
    ReplayOutput,
    SourceResult,
    SourceState,
    SummarizeInput,
)
from orderflow.recovery_drain import deferred_item, items_for_message
from orderflow.recovery_outcomes import (
    item_outcome,
    longest_wait,
    settle_outcomes,
    summarize_sources,
)
from orderflow.settings import DrainSettings, QuarantineSettings, ReplaySettings, load_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "acknowledge",
    "drain",
    "quarantine",
    "quarantine_item",
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
    return {
        "source": source,
        "items": items,
        "count": len(items),
        "waitSeconds": longest_wait(items),
    }


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


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def replay(event: ReplayInput, context: LambdaContext) -> ReplayOutput:
    """Replay one source's transient items; hand poison and exhausted ones to quarantine.

    One call per source and run, however many records it drained: a Step Functions
    transition costs more than this whole call does per record (see the README's cost notes).
    Each record still gets its own outcome: ``replayed``; ``failed`` (the target refused it
    on every pass, or the call ran out of time: its message stays and comes back next run);
    or it goes on to quarantine (poison, or its replay attempts are used up).
    """
    settings = load_settings(ReplaySettings)
    source = event["source"]
    ledger = RecoveryLedger(settings.recovery_table)
    records: list[ItemOutcome] = []
    to_quarantine: list[ItemState] = []
    pending: list[tuple[ItemState, int]] = []  # (item, its attempt number) still to publish
    items = event.get("items") or []
    for item in items:
        if item.get("classification") == ItemClass.POISON:
            to_quarantine.append(item)
        elif item.get("classification") != ItemClass.TRANSIENT:
            # "deferred" (not drained this run) or unknown: never replayed on a guess
            records.append(item_outcome(item, Outcome.FAILED))
        elif _out_of_time(context):
            records.append(item_outcome(item, Outcome.FAILED))
        else:
            try:
                attempts = _begin(ledger, settings, source, item)
            except Exception as exc:  # the ledger refused for now: this record waits a run
                logger.warning(
                    "Replay not begun",
                    extra={"record_id": item.get("recordId"), "reason": describe(exc)},
                )
                records.append(item_outcome(item, Outcome.FAILED))
                continue
            if attempts is None:
                exhausted = dict(item)
                exhausted["reason"] = (
                    f"{item.get('reason') or 'transient'}; "
                    f"{settings.max_replay_attempts} replay attempts used up"
                )
                to_quarantine.append(cast(ItemState, exhausted))
            else:
                pending.append((item, attempts))
    for pause in (*REPLAY_PASS_PAUSES, None):
        pending = _publish_pass(source, pending, records, context)
        if not pending or pause is None or _out_of_time(context, pause):
            break
        time.sleep(pause)  # the target refused some: give it a moment, then only those again
    records.extend(item_outcome(item, Outcome.FAILED) for item, _ in pending)
    logger.info(
        "Replayed source",
        extra={
            "source": source["name"],
            "replayed": sum(r["outcome"] == Outcome.REPLAYED for r in records),
            "failed": sum(r["outcome"] == Outcome.FAILED for r in records),
            "to_quarantine": len(to_quarantine),
        },
    )
    return {"records": records, "quarantine": to_quarantine, "count": len(items)}


#: Pauses (seconds) between publish passes over the records the target refused: three passes
#: in all, bounded per call, not per record.
REPLAY_PASS_PAUSES = (1.0, 2.0)
#: Stop starting records with less time than this left: an unfinished call would settle none.
_TIME_RESERVE_MS = 10_000


def _out_of_time(context: LambdaContext, pause: float = 0.0) -> bool:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining is not None and remaining() < _TIME_RESERVE_MS + pause * 1000


def _begin(
    ledger: RecoveryLedger, settings: ReplaySettings, source: SourceState, item: ItemState
) -> int | None:
    """Count one more replay of ``item`` (None: its attempts are used up or it is quarantined)."""
    return ledger.begin_replay(
        str(item.get("recordId", "")),
        max_attempts=settings.max_replay_attempts,
        kind=str(source.get("kind", "")),
        source=str(source["name"]),
        reason=str(item.get("reason", "")),
    )


def _publish_pass(
    source: SourceState,
    pending: list[tuple[ItemState, int]],
    records: list[ItemOutcome],
    context: LambdaContext,
) -> list[tuple[ItemState, int]]:
    """Publish each pending item once; append the replayed ones' outcomes; the rest again."""
    refused: list[tuple[ItemState, int]] = []
    for position, (item, attempts) in enumerate(pending):
        if _out_of_time(context):
            return refused + pending[position:]
        record_id = str(item.get("recordId", ""))
        try:
            publish_replay(
                source["target"], str(item.get("payload", "")), dedup_suffix=f"replay:{attempts}"
            )
        except Exception as exc:
            logger.warning(
                "Replay refused",
                extra={"record_id": record_id, "attempts": attempts, "reason": describe(exc)},
            )
            refused.append((item, attempts))
            continue
        logger.info("Replayed record", extra={"record_id": record_id, "attempts": attempts})
        records.append(item_outcome(item, Outcome.REPLAYED))
    return refused


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def quarantine(event: QuarantineInput, context: LambdaContext) -> QuarantineOutput:
    """Quarantine each item (an S3 object and its index entry); pass replay's outcomes on.

    An item whose quarantine fails ends ``failed``: its message stays for the next run.
    """
    settings = load_settings(QuarantineSettings)
    source = event["source"]
    records = list(event.get("records") or [])
    for item in event.get("items") or []:
        try:
            quarantine_item(settings, source, item)
        except Exception:
            logger.exception("Quarantine failed", extra={"record_id": item.get("recordId")})
            records.append(item_outcome(item, Outcome.FAILED))
        else:
            records.append(item_outcome(item, Outcome.QUARANTINED))
    return {"records": records, "count": len(records)}


def quarantine_item(
    settings: QuarantineSettings, source: SourceState, item: ItemState
) -> QuarantineResult:
    """Store the record in S3 and index it in the recovery table (idempotent: fixed key)."""
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
