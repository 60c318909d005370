"""What Lambda sends to a destination, and the one way it gets there.

Two record shapes: :func:`failure_record`, a stream mapping's on-failure record (items 18-19,
sent to SQS, SNS or S3), and :func:`destination_record`, an asynchronous invocation's
OnSuccess / OnFailure record (item 26, sent to SQS, SNS, EventBridge or a Lambda function, which
the async engine queues itself). The async engine's dead-letter messages go the same way.

Delivery is in-process: each send is a registered operation on moto's backends, run through the
engine's ``Mutations`` (under the backends lock; journaled when the cloud persists: see
:mod:`streamline.local.durability`). The async engine used to send through boto3 to the local
endpoint; what that path added over this one, and why none of it is kept:

- moto's response layer: the SQS and SNS message-attribute checks and SNS's attribute
  reshaping (``DataType``/``StringValue`` to ``Type``/``Value``, done by :func:`_sns_attributes`
  for the only attributes sent, the dead-letter message's three); PutEvents' ``FailedEntryCount``,
  computed here from the backend's entries.
- the API-call count (:mod:`streamline.local.api_calls`): each send counted as a ``client``
  call, and so in the demo's producer calls per event. Lambda makes these calls, not a client;
  the stream mappings' sends were never counted either.
- nothing else: the function IAM audit judges only requests a function signs, the engine sent no
  X-Ray header, and every patch on these paths (SQS hot paths and counters, SNS fan-out to
  subscriptions, SNS to Lambda as an async event) is on moto's models, which both paths run.

Example::

    record = failure_record(condition="RetryAttemptsExhausted", ...)
    mutations.run("esm.send_failure_record", target, record, mapping_uuid, shard_id, now)
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamline.local.durability import operation

if TYPE_CHECKING:
    from streamline.local.contracts import InvokeResult

__all__ = [
    "destination_record",
    "failure_record",
    "iso_millis",
    "json_or_text",
    "send_dead_letter",
    "send_destination_record",
    "send_failure_record",
]


def iso_millis(epoch: float) -> str:
    """``2019-11-14T18:16:05.568Z``, the timestamp format of Lambda's invocation records."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_or_text(data: bytes) -> Any:
    """A payload as its JSON document, else as text (``None`` when empty)."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", errors="replace")


# -- record shapes ---------------------------------------------------------------------------


def failure_record(
    *,
    condition: str,
    function_arn: str,
    request_id: str | None,
    invoke_count: int,
    batch_info_key: str,
    shard_id: str,
    stream_arn: str,
    first_seq: str,
    last_seq: str,
    first_arrival: float,
    last_arrival: float,
    batch_size: int,
    now: float,
    status_code: int | None = None,
    function_error: str | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The invocation record AWS sends to a stream mapping's OnFailure destination.

    ``condition`` is ``RetryAttemptsExhausted`` (with a ``responseContext``) or
    ``RecordAgeExceeded`` (never invoked, so no ``responseContext``). ``batch_info_key`` is
    ``KinesisBatchInfo`` or ``DDBStreamBatchInfo``. ``payload`` (the S3 form) is the event the
    function would have received.
    """
    record: dict[str, Any] = {
        "requestContext": {
            "requestId": request_id or str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
    }
    if condition != "RecordAgeExceeded":
        record["responseContext"] = {
            "statusCode": status_code if status_code is not None else 200,
            "executedVersion": "$LATEST",
            "functionError": function_error,
        }
    record["version"] = "1.0"
    record["timestamp"] = iso_millis(now)
    record[batch_info_key] = {
        "shardId": shard_id,
        "startSequenceNumber": first_seq,
        "endSequenceNumber": last_seq,
        "approximateArrivalOfFirstRecord": iso_millis(first_arrival),
        "approximateArrivalOfLastRecord": iso_millis(last_arrival),
        "batchSize": batch_size,
        "streamArn": stream_arn,
    }
    if payload is not None:
        record["payload"] = json.dumps(payload)
    return record


def destination_record(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    invoke_count: int,
    request_payload: bytes,
    result: InvokeResult | None,
    timestamp: float,
) -> dict[str, Any]:
    """The record Lambda sends to an async invocation's destination (docs/esm-semantics.md item 26).

    ``function_arn`` is qualified (``...:function:name:$LATEST``), as AWS reports it. Without
    any invocation (an event too old before its first attempt) there is no response context.
    """
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": iso_millis(timestamp),
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": json_or_text(request_payload),
    }
    if result is not None:
        context: dict[str, Any] = {
            "statusCode": result.status_code,
            "executedVersion": result.executed_version,
        }
        if result.function_error:
            context["functionError"] = result.function_error
        record["responseContext"] = context
        record["responsePayload"] = json_or_text(result.payload)
    return record


# -- delivery (registered operations: run them through the engine's Mutations) -----------------


@operation("esm.send_failure_record")
def send_failure_record(
    backends: Any,
    destination_arn: str,
    record: dict[str, Any],
    mapping_uuid: str,
    shard_id: str,
    now: float,
) -> None:
    """Deliver a stream mapping's ``record`` to an SQS queue, SNS topic or S3 bucket ARN.

    S3 objects are keyed ``aws/lambda/<mapping uuid>/<shard id>/YYYY/MM/DD/<ISO time>-<uuid>``
    as on AWS. Raises on an unknown or missing destination so the caller can report it.
    """
    service = _service(destination_arn)
    if service not in ("sqs", "sns", "s3"):
        raise ValueError(f"unsupported on-failure destination {destination_arn}")
    key = None
    if service == "s3":
        # Only an S3 destination draws a uuid: moto's seeded random source must stay in step
        # with journals written before (see durability).
        from moto.moto_api._internal import mock_random

        moment = datetime.fromtimestamp(now, tz=UTC)
        key = (
            f"aws/lambda/{mapping_uuid}/{shard_id}/{moment:%Y/%m/%d}/"
            f"{moment:%Y-%m-%dT%H.%M.%S}-{mock_random.uuid4()}"
        )
    _deliver(backends, destination_arn, json.dumps(record), s3_key=key)


@operation("async.send_destination_record")
def send_destination_record(
    backends: Any, target: str, record: dict[str, Any], success: bool, function_arn: str
) -> None:
    """Deliver an async invocation's ``record`` to an SQS queue, SNS topic or EventBridge bus
    (source ``lambda``, detail-type ``Lambda Function Invocation Result - Success|Failure``)."""
    body = json.dumps(record)
    entry = None
    if _service(target) == "events":
        outcome = "Success" if success else "Failure"
        entry = {
            "Source": "lambda",
            "DetailType": f"Lambda Function Invocation Result - {outcome}",
            "Detail": body,
            "EventBusName": target.split(":", 5)[5].removeprefix("event-bus/"),
            "Resources": [target, function_arn],
        }
    _deliver(backends, target, body, event_entry=entry)


@operation("async.send_dead_letter")
def send_dead_letter(
    backends: Any, target: str, body: str, attributes: dict[str, dict[str, str]]
) -> None:
    """Send an async event's original payload to its function's dead-letter SQS queue or SNS
    topic, with ``attributes`` in the API's form (``{"DataType": ..., "StringValue": ...}``)."""
    if _service(target) not in ("sqs", "sns"):
        raise ValueError(f"unsupported dead-letter target {target}")
    _deliver(backends, target, body, attributes=attributes)


def _service(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 2 else ""


def _deliver(
    backends: Any,
    target: str,
    body: str,
    *,
    attributes: dict[str, dict[str, str]] | None = None,
    s3_key: str | None = None,
    event_entry: dict[str, Any] | None = None,
) -> None:
    """Send ``body`` to ``target``: SQS and SNS always, S3 given a key, EventBridge given its
    PutEvents entry (``body`` as its Detail): stream and async destinations differ there, as on
    AWS. Takes the lock."""
    parts = target.split(":")
    service = _service(target)
    with backends.lock:
        if service == "sqs":
            backends.sqs().send_message(parts[5], body, message_attributes=attributes)
        elif service == "sns":
            backends.sns().publish(body, arn=target, message_attributes=_sns_attributes(attributes))
        elif service == "s3" and s3_key is not None:
            backends.s3().put_object(parts[5], s3_key, body.encode())
        elif service == "events" and event_entry is not None:
            entries = backends.events().put_events([event_entry])
            if any("ErrorCode" in entry for entry in entries):
                raise RuntimeError(f"PutEvents failed: {entries}")
        else:
            raise ValueError(f"unsupported destination {target}")


def _sns_attributes(attributes: dict[str, dict[str, str]] | None) -> dict[str, Any] | None:
    """Message attributes as moto's SNS model keeps them (its Publish handler reshapes them)."""
    if attributes is None:
        return None
    return {
        name: {"Type": value["DataType"], "Value": value["StringValue"]}
        for name, value in attributes.items()
    }
