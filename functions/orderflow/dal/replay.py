"""Publishing a failed record again: the one replay path of the workflow and of `streamline`.

The recovery workflow's ``replay`` task and the ``streamline replay`` / ``quarantine release``
commands must put a record back exactly the same way, so both call :func:`publish_replay`.

Targets (the workflow's :class:`~orderflow.recovery_contract.ReplayTarget`, by ``type``):

- ``kinesis``: PutRecord to the stream, partition key = the record's own or the order id;
- ``sqs``: SendMessage with a fresh FIFO deduplication id (``<task id>:<suffix>``): the original
  id may still be inside FIFO's 5-minute window, which would drop the replay silently; the
  effects table dedups instead;
- ``lambda``: a DynamoDB stream record, re-run through its consumer as a one-record stream event
  (synchronously; a function error or a batch item failure is a failed replay);
- ``lambda-async``: a notification task, handed to the notifier asynchronously.

Example::

    publish_replay({"type": "kinesis", "streamName": "order-events"}, payload, dedup_suffix="r1")
"""

from __future__ import annotations

import json

from orderflow.dal.invoker import FunctionInvoker
from orderflow.dal.queues import send_message
from orderflow.dal.recovery import kinesis_put
from orderflow.events import fifo_group_id, parse_task
from orderflow.recovery import partition_key_for, synthetic_stream_event
from orderflow.recovery_contract import ReplayTarget, TargetType

__all__ = ["ReplayPublishError", "publish_replay"]


class ReplayPublishError(RuntimeError):
    """The target refused the replayed record (a function error or a batch item failure)."""


def publish_replay(
    target: ReplayTarget,
    payload: str | bytes,
    *,
    dedup_suffix: str,
    partition_key: str | None = None,
) -> str:
    """Publish ``payload`` to ``target``; returns where it went (for logs and reports)."""
    kind = target.get("type")
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    if kind == TargetType.KINESIS:
        data = payload if isinstance(payload, bytes) else payload.encode()
        key = partition_key or partition_key_for(text)
        sequence = kinesis_put(target["streamName"], data, key)
        return f"kinesis {target['streamName']} (key {key}, sequence {sequence})"
    if kind == TargetType.SQS:
        task = parse_task(text)
        message_id = send_message(
            target["queueUrl"],
            text,
            group_id=fifo_group_id(task.order_id),
            dedup_id=f"{task.task_id}:{dedup_suffix}",
        )
        return f"sqs {target['queueUrl'].rsplit('/', 1)[-1]} (message {message_id})"
    if kind == TargetType.LAMBDA:
        event = synthetic_stream_event(text, target.get("streamArn"))
        result = FunctionInvoker().invoke_sync(target["functionName"], json.dumps(event).encode())
        failures = (
            result.payload.get("batchItemFailures") if isinstance(result.payload, dict) else None
        )
        if result.function_error or failures:
            raise ReplayPublishError(
                f"{target['functionName']} failed the replay: "
                f"{result.function_error or 'batchItemFailures'}"
            )
        return f"lambda {target['functionName']} (synchronous)"
    if kind == TargetType.LAMBDA_ASYNC:
        parse_task(text)
        FunctionInvoker().invoke_async(target["functionName"], text.encode())
        return f"lambda {target['functionName']} (asynchronous)"
    raise ValueError(f"unknown replay target type {kind!r}")
