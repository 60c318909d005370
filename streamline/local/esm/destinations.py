"""On-failure records for stream mappings (items 18-19), delivered in-process to SQS, SNS or S3.

Example::

    record = failure_record(condition="RetryAttemptsExhausted", ...)
    send_failure_record(backends, "arn:aws:sqs:us-east-1:123456789012:dlq", record, ...)
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from streamline.local.durability import operation

__all__ = ["failure_record", "iso_millis", "send_failure_record"]


def iso_millis(epoch: float) -> str:
    """``2019-11-14T18:16:05.568Z``, the timestamp format of Lambda's invocation records."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


@operation("esm.send_failure_record")
def send_failure_record(
    backends: Any,
    destination_arn: str,
    record: dict[str, Any],
    mapping_uuid: str,
    shard_id: str,
    now: float,
) -> None:
    """Deliver ``record`` to an SQS queue, SNS topic or S3 bucket ARN (takes the backends lock).

    S3 objects are keyed ``aws/lambda/<mapping uuid>/<shard id>/YYYY/MM/DD/<ISO time>-<uuid>``
    as on AWS. Raises on an unknown or missing destination so the caller can report it. Run
    through the engine's ``run`` (journaled when the cloud persists: ``durability``).
    """
    from moto.moto_api._internal import mock_random

    body = json.dumps(record)
    parts = destination_arn.split(":")
    service = parts[2] if len(parts) > 2 else ""
    with backends.lock:
        if service == "sqs":
            backends.sqs().send_message(parts[5], body)
        elif service == "sns":
            backends.sns().publish(body, arn=destination_arn)
        elif service == "s3":
            bucket = parts[5]
            moment = datetime.fromtimestamp(now, tz=UTC)
            key = (
                f"aws/lambda/{mapping_uuid}/{shard_id}/{moment:%Y/%m/%d}/"
                f"{moment:%Y-%m-%dT%H.%M.%S}-{mock_random.uuid4()}"
            )
            backends.s3().put_object(bucket, key, body.encode())
        else:
            raise ValueError(f"unsupported on-failure destination {destination_arn}")
