"""The partial-batch entry point every queue and stream handler is built on.

A per-record function decorated with :func:`partial_batch_handler` becomes the Lambda handler
``(event, context) -> {"batchItemFailures": [...]}``. The CDK constructs check for this decorator
at synth time, so a processor can never be wired to a handler that fails whole batches (the
silent-loss bug).

Per record the decorator:

- runs the function inside a Powertools batch processor (``BatchProcessor``, or
  ``SqsFifoPartialProcessor(skip_group_on_error=True)`` for FIFO queues, so a failure in one
  message group stops only that group);
- turns :class:`~orderflow.errors.PoisonRecordError` (and other poison errors) into a "poison
  envelope" on the function's failure queue and reports the record as handled: a bad payload
  is never retried and never blocks its shard or group;
- lets transient errors become batch item failures for AWS to retry.

Poison envelopes are sent once per record. Each has a deterministic ``envelopeId`` (the source
ARN and the record's id, hashed): the FIFO failure queue deduplicates on it, and recovery uses it
as the quarantine key, so a copy that a crash makes collapses there. On a stream, a poison record
*after* a failed one in the same batch is not sent: the mapping redelivers everything from the
failed record on, so it is reported failed and sent on the delivery that reaches it first (or,
if that range ends in the on-failure destination, quarantined by recovery from the stream).
An envelope too large for a queue leaves the record's data out and names it (stream records
are re-read by recovery); an SQS message too large is reported failed instead, so the queue's
redrive policy moves the original, intact, to the DLQ.

Per batch it logs each failure once (never successes), emits ``RecordsProcessed``,
``RecordsFailed`` and ``RecordsPoisoned`` as one EMF blob, traces the batch as one
subsegment annotated with those counts (a subsegment per record roughly doubles CPU per record),
and flushes the segments its records recorded in their upstream traces
(:data:`orderflow.observability.linked_traces`).

Deferred work: a handler may hand the decorator a ``deferred`` object (:class:`DeferredWork`,
e.g. ``orderflow.dal.TaskOutbox``) that collects what records want sent and does it once per
batch, so a batch costs a few batch calls instead of one call per record. While a record runs,
:func:`current_record_id` is its id (its ``itemIdentifier``: the sequence number on a stream,
the message id on SQS), which the deferred object keeps beside the work.

- A record that raises (transient or poison) has its deferred work discarded: it is redone when
  the record is retried or replayed, never sent on behalf of a record that failed.
- After the processor, ``deferred.flush()`` does the work and returns the ids of records whose
  work failed; they become batch item failures like any other (processed down, failed up). On
  an SQS FIFO source, the later records of such a record's message group fail too, so the group
  is never acknowledged ahead of its retried message.
- If ``flush()`` raises, every record that completed is reported failed (we cannot tell which
  of them deferred work): none is acknowledged without its work done.

On a stream, a failed record makes the event source mapping retry from it, so records after it
send their tasks again. That is harmless here: task ids are deterministic, the FIFO queue drops
a task id it has seen within five minutes, and the effects table keeps each effect id once.

Why one module of ~560 lines: the rules above (poison vs. transient, deferred work discarded
or flushed, FIFO groups failed together) interlock, and every processor depends on all of them
at once; about a fifth of it is this docstring. The pieces that stand alone live elsewhere
(errors, tracing, observability, dal).

Example::

    from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
        KinesisStreamRecord,
    )
    from orderflow.batch import Source, partial_batch_handler

    @partial_batch_handler(source=Source.KINESIS)
    def handler(record: KinesisStreamRecord) -> None:
        ...
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from aws_lambda_powertools.utilities.batch import (
    BasePartialBatchProcessor,
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.exceptions import SQSFifoMessageGroupCircuitBreakerError
from orderflow.errors import ErrorKind, PoisonRecordError, TransientError, classify, describe
from orderflow.observability import (
    MetricUnit,
    current_trace_header,
    linked_traces,
    logger,
    metrics,
    tracer,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import (
        PartialItemFailureResponse,
        PartialItemFailures,
    )
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "POISON_ENVELOPE_VERSION",
    "BatchHandler",
    "BatchResult",
    "DeferredWork",
    "PoisonSinkLike",
    "Source",
    "build_processor",
    "current_record_id",
    "partial_batch_handler",
    "poison_envelope",
    "sqs_trace_header",
]

POISON_ENVELOPE_VERSION = "poison/1"
#: Largest envelope sent: a quarter of SQS's 1 MiB message limit, and under its old 256 KiB one.
MAX_ENVELOPE_BYTES = 200 * 1024

R = TypeVar("R")


class Source(enum.Enum):
    """Event source kinds a batch handler can be wired to (checked by the CDK constructs)."""

    SQS = "SQS"
    SQS_FIFO = "SQS_FIFO"
    KINESIS = "KINESIS"
    DYNAMODB_STREAMS = "DYNAMODB_STREAMS"

    @property
    def is_stream(self) -> bool:
        return self in (Source.KINESIS, Source.DYNAMODB_STREAMS)

    @property
    def poison_queue_env(self) -> str:
        """Environment variable holding this source's failure queue (see the contract)."""
        return "DLQ_URL" if self in (Source.SQS, Source.SQS_FIFO) else "FAILURE_QUEUE_URL"


class PoisonSinkLike(Protocol):
    """Anything that can take a poison envelope (``orderflow.dal.PoisonSink`` in production)."""

    def send(
        self,
        envelope: Mapping[str, Any],
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
    ) -> str: ...


class DeferredWork(Protocol):
    """Work records defer to the end of their batch (``orderflow.dal.TaskOutbox`` in production).

    Keyed by record id (:func:`current_record_id` while the record ran).
    """

    def discard(self, record_id: str) -> None:
        """Drop what ``record_id`` deferred: it raised, and its retry will defer it again."""
        ...

    def flush(self) -> set[str]:
        """Do all deferred work, leave nothing pending; the ids of records whose work failed."""
        ...


# The record the runner is on. A ContextVar rather than an attribute on the runner, so deferred
# work needs no handle on the handler that runs it.
# Holds (source, record, its id or ""): the runner reads the id first only for deferred work,
# so handlers that never ask pay for a ContextVar set, not for parsing every record's id, and
# those that do ask get the id the runner already read.
_current_record: ContextVar[tuple[Source, Any, str]] = ContextVar("orderflow_current_record")


def current_record_id() -> str:
    """The id of the record being processed: its ``itemIdentifier`` in ``batchItemFailures``.

    Raises:
        RuntimeError: outside a record of a :func:`partial_batch_handler`.

    Example::

        outbox.add(task, record_id=current_record_id(), trace_header=header)
    """
    try:
        source, record, record_id = _current_record.get()
    except LookupError:
        raise RuntimeError("current_record_id() called outside a batch record") from None
    return record_id or _record_identity(source, record)[0]


def sqs_trace_header(record: Any) -> str | None:
    """An SQS record's ``AWSTraceHeader`` (the sender's trace), read from the raw event.

    The same value as ``record.attributes.aws_trace_header``, without the two wrapper objects
    those properties build per access (a record handler reads it for every record).
    """
    attributes = record.raw_event.get("attributes")
    return attributes.get("AWSTraceHeader") if isinstance(attributes, dict) else None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Outcome of one batch: the Lambda response plus the counts that become metrics.

    ``deferred_failed`` counts the records (within ``failed``) that failed after they ran,
    because their deferred work was not done.
    """

    response: PartialItemFailureResponse
    processed: int
    failed: int
    poisoned: int
    deferred_failed: int = 0


def build_processor(source: Source) -> BasePartialBatchProcessor:
    """The Powertools processor for ``source``.

    ``raise_on_entire_batch_failure`` is off: when every record fails we still answer with a
    partial batch response listing them all, which AWS treats like a failed batch but without
    counting a function error (that metric stays reserved for crashes).
    """
    processor: BasePartialBatchProcessor
    if source is Source.SQS_FIFO:
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    else:
        event_type = {
            Source.SQS: EventType.SQS,
            Source.KINESIS: EventType.KinesisDataStreams,
            Source.DYNAMODB_STREAMS: EventType.DynamoDBStreams,
        }[source]
        processor = BatchProcessor(event_type=event_type)
    processor.raise_on_entire_batch_failure = False
    return processor


def _record_identity(source: Source, record: Any) -> tuple[str, str | None]:
    """(record id, FIFO message group) of a Powertools data-class record.

    Read from the raw event: the data-class properties build a wrapper per access, and this
    runs for every record.
    """
    raw = record.raw_event
    if source in (Source.SQS, Source.SQS_FIFO):
        return raw["messageId"], raw.get("attributes", {}).get("MessageGroupId")
    if source is Source.KINESIS:
        return raw["kinesis"]["sequenceNumber"], None
    return raw["dynamodb"]["SequenceNumber"], None


def envelope_id(source: Source, record: Any) -> str:
    """Deterministic id of a record's poison envelope: the same record always gets the same id.

    Example::

        >>> envelope_id(Source.SQS, record)      # doctest: +SKIP
        'e3b0c44298fc1c149afbf4c8996fb924'
    """
    raw = record.raw_event
    record_id, _ = _record_identity(source, record)
    # Kinesis sequence numbers are unique per shard only: the eventID names the shard too.
    unique = raw.get("eventID") if source.is_stream else record_id
    text = f"{raw.get('eventSourceARN')}|{unique or record_id}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def poison_envelope(source: Source, record: Any, exc: BaseException, reason: str) -> dict[str, Any]:
    """The JSON document a poison record travels in (contract: ``streamline: poison/1``).

    ``record`` is the event source's record as delivered. When it would make the envelope larger
    than :data:`MAX_ENVELOPE_BYTES`, a stream record's payload (Kinesis ``data``, DynamoDB images)
    is replaced by ``"omitted": {"bytes"}`` and recovery re-reads the record from its stream.
    """
    raw = record.raw_event
    envelope: dict[str, Any] = {
        "streamline": POISON_ENVELOPE_VERSION,
        "envelopeId": envelope_id(source, record),
        "reason": reason,
        "errorType": type(exc).__name__,
        "source": {"kind": source.value, "arn": raw.get("eventSourceARN")},
        "record": raw,
    }
    size = len(json.dumps(raw, separators=(",", ":"), default=str))
    if size > MAX_ENVELOPE_BYTES - 4096:
        if not source.is_stream:
            raise _EnvelopeTooLarge(size)
        envelope["record"] = _without_payload(raw)
        envelope["omitted"] = {"bytes": size}
    return envelope


def _without_payload(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A stream record without its (large) payload, keeping what locates it in its shard."""
    slim = {key: value for key, value in raw.items() if key not in ("kinesis", "dynamodb")}
    kinesis = raw.get("kinesis")
    if isinstance(kinesis, Mapping):
        slim["kinesis"] = {key: value for key, value in kinesis.items() if key != "data"}
    dynamodb = raw.get("dynamodb")
    if isinstance(dynamodb, Mapping):
        slim["dynamodb"] = {
            key: value for key, value in dynamodb.items() if key not in ("NewImage", "OldImage")
        }
    return slim


class _EnvelopeTooLarge(Exception):
    """A queue message too large to travel in an envelope: its queue's redrive keeps it."""

    def __init__(self, size: int) -> None:
        super().__init__(f"record of {size} bytes is too large for a poison envelope")
        self.reason = str(self)


class _RecordRunner:
    """The record handler given to the Powertools processor.

    Per batch it counts poison and lists the records that completed, (id, FIFO group) in batch
    order: the candidates for failing late when their deferred work fails.
    """

    def __init__(
        self,
        fn: Callable[[Any], object],
        source: Source,
        sink: PoisonSinkLike | None,
        deferred: DeferredWork | None = None,
    ) -> None:
        self.fn = fn
        self.source = source
        self._sink = sink
        self.deferred = deferred
        self.poisoned = 0
        self.completed: list[tuple[str, str | None]] = []
        # A stream batch had a record fail: every later record will be delivered again.
        self.redelivered_from_here = False

    def start_batch(self) -> None:
        self.poisoned = 0
        self.completed = []
        self.redelivered_from_here = False

    def sink(self) -> PoisonSinkLike:
        if self._sink is None:
            # Imported here so a handler that never meets poison never loads the SQS adapter.
            from orderflow.dal import PoisonSink

            name = self.source.poison_queue_env
            url = os.environ.get(name)
            if not url:
                raise TransientError(f"missing environment variable {name} (poison sink)")
            self._sink = PoisonSink(url)
        return self._sink

    def _quarantine(self, record: Any, exc: BaseException, fields: dict[str, Any]) -> bool:
        """Send a poison record's envelope; False when it must be reported failed instead."""
        if self.redelivered_from_here:
            # Sent now, it would be sent again with the redelivery: see the module docstring.
            return False
        try:
            envelope = poison_envelope(self.source, record, exc, fields["reason"])
        except _EnvelopeTooLarge as too_large:
            fields["size_error"] = too_large.reason
            return False
        # If the sink itself fails, this raises: the record becomes a retried item failure
        # rather than being acknowledged without a copy anywhere.
        _, group_id = _record_identity(self.source, record)
        self.sink().send(envelope, group_id=group_id, dedup_id=envelope["envelopeId"])
        self.poisoned += 1
        logger.warning("Poison record sent to failure queue", extra=fields)
        return True

    def __call__(self, record: Any) -> None:
        deferred = self.deferred
        # Without deferred work the id is only needed when the record fails.
        # (`is not None`: an outbox is falsy while empty, which it is before a batch's first record)
        record_id, group_id = (
            _record_identity(self.source, record) if deferred is not None else ("", None)
        )
        token = _current_record.set((self.source, record, record_id))
        try:
            self.fn(record)
        except BaseException as exc:
            if not record_id:
                record_id, group_id = _record_identity(self.source, record)
            if self.deferred is not None:
                # Retried, it defers its work again; poisoned, its replay does. Sending what it
                # deferred before failing would act on half a record.
                self.deferred.discard(record_id)
            if not isinstance(exc, Exception):
                raise  # not a record's failure (an interrupt, an exit): the batch fails
            reason = describe(exc)
            fields = {"record_id": record_id, "reason": reason, "error_type": type(exc).__name__}
            try:
                if classify(exc) is ErrorKind.POISON and self._quarantine(record, exc, fields):
                    return
            except Exception as sink_error:
                # The failure queue refused the envelope: the record fails (and is redelivered).
                if self.source.is_stream:
                    self.redelivered_from_here = True
                logger.warning(
                    "Poison envelope not sent; record reported for retry",
                    extra={**fields, "sink_error": describe(sink_error)},
                )
                raise
            if self.source.is_stream:
                # Everything from here on is delivered again (see the module docstring).
                self.redelivered_from_here = True
            expected = isinstance(exc, (TransientError, PoisonRecordError)) or hasattr(
                exc, "response"
            )
            logger.warning(
                "Record failed; reported for retry",
                extra=fields,
                # A traceback only for the unexpected: throttles and chaos need no stack.
                exc_info=None if expected else exc,
            )
            raise
        else:
            if deferred is not None:
                self.completed.append((record_id, group_id))
        finally:
            _current_record.reset(token)


def _flush_deferred(deferred: DeferredWork, completed: list[tuple[str, str | None]]) -> list[str]:
    """Do the batch's deferred work; the completed records that must fail, in batch order."""
    try:
        failed = deferred.flush()
    except Exception as exc:
        logger.warning(
            "Deferred work failed; every completed record reported for retry",
            extra={"records": len(completed), "error_type": type(exc).__name__},
            exc_info=exc,
        )
        failed = {record_id for record_id, _ in completed}
    if not failed:
        return []
    late: list[str] = []
    broken: set[str] = set()  # FIFO groups with a failed record: later ones wait for it
    for record_id, group_id in completed:
        if record_id in failed or (group_id is not None and group_id in broken):
            late.append(record_id)
            if group_id is not None:
                broken.add(group_id)
    return late


class BatchHandler(Generic[R]):
    """A Lambda handler built from a per-record function (see :func:`partial_batch_handler`).

    ``handler(event, context)`` is the Lambda entry point with logging, tracing and metrics;
    ``handler.process(event)`` runs the same batch logic without them (tests, benchmarks).
    """

    def __init__(
        self,
        fn: Callable[[R], object],
        source: Source,
        sink: PoisonSinkLike | None = None,
        deferred: DeferredWork | None = None,
    ) -> None:
        self.record_function = fn
        self.source = source
        self.deferred = deferred
        self.processor = build_processor(source)
        self._runner = _RecordRunner(fn, source, sink, deferred)
        self.__name__ = getattr(fn, "__name__", "handler")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self._entry = logger.inject_lambda_context(clear_state=True)(
            tracer.capture_lambda_handler(capture_response=False)(
                metrics.log_metrics(self._lambda_handler)
            )
        )

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        return self._entry(event, context)

    def process(self, event: dict[str, Any], context: LambdaContext | None = None) -> BatchResult:
        """Run one batch through the processor, then its deferred work; the response and counts."""
        runner = self._runner
        runner.start_batch()
        linked_traces.new_batch()
        try:
            response = process_partial_response(
                event=event, record_handler=runner, processor=self.processor, context=context
            )
        except BaseException:
            # The whole batch fails and comes back: its records defer their work again then.
            if self.deferred is not None:
                for record_id, _ in runner.completed:
                    self.deferred.discard(record_id)
            raise
        late = [] if self.deferred is None else _flush_deferred(self.deferred, runner.completed)
        if late:
            items: list[PartialItemFailures] = [{"itemIdentifier": record_id} for record_id in late]
            response = {"batchItemFailures": [*response["batchItemFailures"], *items]}
        poisoned = runner.poisoned
        return BatchResult(
            response=response,
            processed=len(self.processor.success_messages) - poisoned - len(late),
            failed=len(self.processor.fail_messages) + len(late),
            poisoned=poisoned,
            deferred_failed=len(late),
        )

    def _lambda_handler(
        self, event: dict[str, Any], context: LambdaContext
    ) -> PartialItemFailureResponse:
        trace = current_trace_header()
        root = trace.split(";", 1)[0].removeprefix("Root=") if trace else None
        logger.set_correlation_id(root or getattr(context, "aws_request_id", None))
        try:
            result = self.process(event, context)
        finally:
            # The segments records hopped into their upstream traces: one datagram each.
            linked_traces.flush()
        # Deferred failures are logged by the flush (with their reasons), not by the runner.
        skipped = result.failed - result.deferred_failed - self._logged_failures(result)
        if skipped > 0:
            # FIFO circuit breaker: records behind a failed one in their group were not run.
            logger.warning(
                "Records skipped after an earlier failure in their message group",
                extra={"count": skipped},
            )
        metrics.add_metric(name="RecordsProcessed", unit=MetricUnit.Count, value=result.processed)
        metrics.add_metric(name="RecordsFailed", unit=MetricUnit.Count, value=result.failed)
        metrics.add_metric(name="RecordsPoisoned", unit=MetricUnit.Count, value=result.poisoned)
        # Powertools types the value as numbers.Number, which mypy does not see int as.
        for key, count in (
            ("RecordsProcessed", result.processed),
            ("RecordsFailed", result.failed),
            ("RecordsPoisoned", result.poisoned),
        ):
            tracer.put_annotation(key, cast(Any, count))
        return result.response

    def _logged_failures(self, result: BatchResult) -> int:
        # Failures raised by the record function were logged by the runner; the FIFO processor
        # fails the rest of a broken group without calling it.
        return sum(
            1
            for exc_type, _, _ in self.processor.exceptions
            if exc_type is not SQSFifoMessageGroupCircuitBreakerError
        )


def partial_batch_handler(
    *,
    source: Source,
    sink: PoisonSinkLike | None = None,
    deferred: DeferredWork | None = None,
) -> Callable[[Callable[[R], object]], BatchHandler[R]]:
    """Turn a per-record function into a partial-batch Lambda handler for ``source``.

    Args:
        source: the event source kind; must match the CDK construct the function is wired to.
        sink: where poison envelopes go; defaults to the queue in ``DLQ_URL`` (SQS sources) or
            ``FAILURE_QUEUE_URL`` (stream sources), resolved at the first poison record.
        deferred: work records defer to the end of the batch (see the module docstring);
            flushed after every batch, its failures reported as batch item failures.

    Example::

        @partial_batch_handler(source=Source.SQS_FIFO)
        def handler(record: SQSRecord) -> None:
            task = parse_task(record.body)      # PoisonRecordError -> failure queue
            effects.put_once(...)               # throttle -> batch item failure -> retry
    """

    def decorate(fn: Callable[[R], object]) -> BatchHandler[R]:
        return BatchHandler(fn, source, sink, deferred)

    return decorate
