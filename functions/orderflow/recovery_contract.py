"""The recovery workflow's contract: the shapes of its states and the names of its kinds.

One definition, shared by the Step Functions tasks (``recovery/handler.py``), their pure core
(``orderflow.recovery``), the stack that builds the state machine (``stacks/recovery.py``,
``stacks/constructs/recovery_workflow.py``) and the ops commands that read what the workflow
wrote (``streamline status``, ``replay``, ``quarantine``). The states are JSON: these are
``TypedDict``s over plain dicts and ``StrEnum``s whose values are the strings on the wire, so
typing them changes no byte of a state or a template.

The flow, one execution::

    WorkflowInput --ForEachSource--> DrainInput --drain--> DrainResult
      --replay(ReplayInput)--> ReplayOutput --quarantine(QuarantineInput)--> QuarantineOutput
      --acknowledge(AcknowledgeInput)--> SourceResult
      --summarize(SummarizeInput)--> RecoverySummary

Unless ``RecoverySummary["complete"]`` (no record failed, every source drained and settled),
the execution then FAILS (``RecoveryIncomplete``, the summary as its cause), so the
RecoveryExecutionsFailed alarm fires rather than a run succeeding with work left behind.
"""

from __future__ import annotations

import enum
from typing import NotRequired, TypedDict

from orderflow.errors import ErrorKind

__all__ = [
    "AcknowledgeInput",
    "DrainInput",
    "DrainResult",
    "ItemClass",
    "ItemOutcome",
    "ItemState",
    "Outcome",
    "QuarantineDocument",
    "QuarantineInput",
    "QuarantineOutput",
    "QuarantineResult",
    "RecoveryKind",
    "RecoverySummary",
    "ReplayInput",
    "ReplayOutput",
    "ReplayTarget",
    "SourceResult",
    "SourceState",
    "StateError",
    "SummarizeInput",
    "TargetType",
    "WorkflowInput",
]


class RecoveryKind(enum.StrEnum):
    """How a source's failure messages are read (``SourceState["kind"]``).

    ``kinesis-failure`` / ``dynamodb-failure``: AWS's on-failure record for a stream mapping
    (metadata only; drain re-reads the records from the stream). ``sqs-dlq``: a message moved
    by a redrive policy (the body is the original task). ``lambda-destination``: an async
    invocation's OnFailure record. Any kind may also carry our poison envelope.
    """

    KINESIS_FAILURE = "kinesis-failure"
    DYNAMODB_FAILURE = "dynamodb-failure"
    SQS_DLQ = "sqs-dlq"
    LAMBDA_DESTINATION = "lambda-destination"


class TargetType(enum.StrEnum):
    """Where a replayed record goes (``ReplayTarget["type"]``).

    ``kinesis``: PutRecord, partition key = order id. ``lambda``: synchronous invoke of the
    changes function with a synthetic DynamoDB stream event. ``sqs``: SendMessage (FIFO group =
    order id). ``lambda-async``: asynchronous invoke (the notifier).
    """

    KINESIS = "kinesis"
    LAMBDA = "lambda"
    SQS = "sqs"
    LAMBDA_ASYNC = "lambda-async"


class ItemClass(enum.StrEnum):
    """What drain made of a record (``ItemState["classification"]``).

    ``transient`` and ``poison`` are :class:`ErrorKind`'s (one taxonomy for the batch handlers
    and recovery); ``deferred``: not drained this run (a throttled stream read), so the workflow
    marks it failed and the run fails.
    """

    TRANSIENT = ErrorKind.TRANSIENT.value
    POISON = ErrorKind.POISON.value
    DEFERRED = "deferred"


class Outcome(enum.StrEnum):
    """How one record ended this run (``ItemOutcome["outcome"]``)."""

    QUARANTINED = "quarantined"
    REPLAYED = "replayed"
    FAILED = "failed"


class ReplayTarget(TypedDict):
    """Where one source's records are replayed, by ``type``:

    ``kinesis`` {streamName, streamArn}; ``lambda`` {functionName (changes), streamArn};
    ``sqs`` {queueUrl (the source queue)}; ``lambda-async`` {functionName (notifier)}.
    """

    type: str  # a TargetType value
    streamName: NotRequired[str]
    streamArn: NotRequired[str]
    functionName: NotRequired[str]
    queueUrl: NotRequired[str]


class SourceState(TypedDict):
    """One failure queue the workflow drains and the target its records return to."""

    name: str
    kind: str  # a RecoveryKind value
    queueUrl: str
    target: ReplayTarget
    streamArn: NotRequired[str]  # the stream kinds: the stream the failure records point into


class WorkflowInput(TypedDict):
    """What the first state (BuildSources) sets; the execution's own input is ignored
    (scheduled runs send ``{"trigger": "schedule"}``)."""

    sources: list[SourceState]
    maxMessages: int


class DrainInput(TypedDict):
    source: SourceState
    maxMessages: int


class ItemState(TypedDict):
    """One record to replay or quarantine, as the workflow state carries it.

    ``payloadRef`` (``s3://bucket/key``) is there when the payload was too large for the
    state (``payload`` then holds its beginning); ``continuation`` is the rest of a long stream
    range as an on-failure record, or "" (acknowledge sends it before deleting the message).
    """

    recordId: str
    classification: str  # an ItemClass value
    reason: str
    payload: str
    receiptHandle: str
    attempt: int
    waitSeconds: NotRequired[int]  # absent on deferred items: no Backoff before failing them
    continuation: str
    payloadRef: NotRequired[str]


class DrainResult(TypedDict):
    source: SourceState
    items: list[ItemState]
    count: int
    waitSeconds: int  # the longest backoff among the transient items (the Backoff state)


class StateError(TypedDict):
    """A caught error as Step Functions writes it (and acknowledge reports a failed delete)."""

    Error: str
    Cause: str


class ReplayInput(TypedDict):
    """The replay task's input: one source's drained items, all of them at once."""

    source: SourceState
    items: list[ItemState]


class ReplayOutput(TypedDict):
    """Replay settled ``records`` (replayed, or failed for this run) and hands the rest on."""

    records: list[ItemOutcome]
    quarantine: list[ItemState]  # poison, and transient records whose attempts are used up
    count: int  # all the source's items: len(records) + len(quarantine)


class QuarantineInput(TypedDict):
    source: SourceState
    records: list[ItemOutcome]  # replay's, passed on
    items: list[ItemState]  # to quarantine


class QuarantineOutput(TypedDict):
    records: list[ItemOutcome]  # replay's and one per quarantine item
    count: int


class QuarantineResult(TypedDict):
    """Where one quarantined record went (the quarantine task, per item)."""

    recordId: str
    bucket: str
    s3Key: str
    reason: str


class QuarantineDocument(TypedDict):
    """The S3 object quarantine writes per record (``streamline quarantine show`` reads it)."""

    recordId: str
    reason: str
    classification: str | None
    payload: str | None
    payloadRef: str | None
    source: SourceState
    quarantinedAt: str


class ItemOutcome(TypedDict):
    """How one item ended this run (replay and quarantine write them, acknowledge settles)."""

    recordId: str
    receiptHandle: str
    outcome: str  # an Outcome value
    continuation: str


class AcknowledgeInput(TypedDict):
    """Once per source that drained records."""

    source: SourceState
    records: list[ItemOutcome]


class SourceResult(TypedDict):
    """One source settled: record ids by outcome and the messages deleted.

    When a task itself fails, a Pass state returns the same shape with empty lists and
    ``error``: DrainFailed, or SettleFailed (replay, quarantine or acknowledge failed), which
    also sets ``unsettled``, the number of records not settled. NothingDrained returns it
    with empty lists for a source with nothing to recover.
    """

    source: str
    quarantined: list[str]
    replayed: list[str]
    failed: list[str]
    deleted: int
    error: NotRequired[StateError]
    unsettled: NotRequired[int]


class SummarizeInput(TypedDict):
    sources: list[SourceResult]


class RecoverySummary(TypedDict):
    """The workflow's output: counts over every source, quarantined ids, per-source results."""

    quarantined: int
    replayed: int
    failed: int
    errors: int
    complete: bool
    quarantinedRecords: list[str]
    sources: list[SourceResult]
