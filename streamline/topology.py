"""The pipeline's shape, written once: its processors, what feeds each, where its failures wait
for recovery, and the stack outputs that name them.

The stacks emit their outputs and the recovery workflow's sources from this table; every ops
command (status, logs, replay, cost) and the demo read it. Adding a processor means one row here
and its resources in one stack. Dependency-free on purpose: CDK apps, the CLI and the tests all
import it.

Example::

    from streamline import topology
    for p in topology.PROCESSORS:
        print(p.name, outputs[p.function_output], outputs[p.failure_output])
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CHANGES",
    "FULFIL",
    "INGEST",
    "NOTIFIER",
    "NOTIFY",
    "PROCESSORS",
    "RECOVERY_DRAIN_STATE",
    "STREAM_ALIASES",
    "Processor",
    "failure_queue_names",
    "function_outputs",
    "replayable_failure_outputs",
]


@dataclass(frozen=True, slots=True)
class Processor:
    """One batch-processing stage of the pipeline."""

    name: str  # how commands and the README name it
    source: str  # what feeds it, as `streamline status` shows it
    function_output: str  # the stack output holding its function's name
    failure_name: str  # its failure queue's short name (also its recovery source's name)
    failure_output: str  # the stack output holding that queue's URL
    backlog: str  # "stream", "queue" or "async": how its backlog is measured
    recovery_kind: str  # how the recovery workflow reads its failure messages
    queue_output: str | None = None  # the stack output holding its source queue's URL


INGEST = Processor(
    name="ingest",
    source="kinesis",
    function_output="IngestFunctionName",
    failure_name="ingest-failures",
    failure_output="IngestFailureQueueUrl",
    backlog="stream",
    recovery_kind="kinesis-failure",
)
CHANGES = Processor(
    name="changes",
    source="ddb stream",
    function_output="ChangesFunctionName",
    failure_name="changes-failures",
    failure_output="ChangesFailureQueueUrl",
    backlog="stream",
    recovery_kind="dynamodb-failure",
)
FULFIL = Processor(
    name="fulfil",
    source="sqs fifo",
    function_output="FulfilFunctionName",
    failure_name="fulfilment-dlq",
    failure_output="FulfilmentDlqUrl",
    backlog="queue",
    recovery_kind="sqs-dlq",
    queue_output="FulfilmentQueueUrl",
)
NOTIFY = Processor(
    name="notify",
    source="sqs",
    function_output="NotifyFunctionName",
    failure_name="notifications-dlq",
    failure_output="NotificationsDlqUrl",
    backlog="queue",
    recovery_kind="sqs-dlq",
    queue_output="NotificationsQueueUrl",
)
NOTIFIER = Processor(
    name="notifier",
    source="async",
    function_output="NotifierFunctionName",
    failure_name="notify-failures",
    failure_output="NotifyFailuresQueueUrl",
    backlog="async",
    recovery_kind="lambda-destination",
)

#: In pipeline order.
PROCESSORS: tuple[Processor, ...] = (INGEST, CHANGES, FULFIL, NOTIFY, NOTIFIER)

#: The recovery workflow's state that drains a source: its output's ``records.count`` is the
#: failed records the run took from that source (the cost model bills the workflow per run and
#: per record by the sum over a run's history).
RECOVERY_DRAIN_STATE = "Drain"

#: ``--stream`` names of the pipeline's streams (the Kinesis stream, the orders table's stream).
STREAM_ALIASES = ("order-events", "orders")


def function_outputs() -> dict[str, str]:
    """Processor name -> the stack output holding its function's name."""
    return {p.name: p.function_output for p in PROCESSORS}


def failure_queue_names() -> dict[str, str]:
    """Stack output of each failure queue -> its short name."""
    return {p.failure_output: p.failure_name for p in PROCESSORS}


def replayable_failure_outputs() -> dict[str, str]:
    """Processors fed by a stream (their failures name a range to replay) -> the stack output
    of their failure queue."""
    return {p.name: p.failure_output for p in PROCESSORS if p.backlog == "stream"}
