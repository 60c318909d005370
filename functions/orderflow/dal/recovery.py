"""AWS adapters of the recovery workflow: failure queues, stream re-reads, ledger, quarantine."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orderflow.dal.clients import client
from orderflow.errors import ErrorKind, classify

__all__ = [
    "FailureQueue",
    "IncompleteRangeRead",
    "QuarantineStore",
    "RecoveryLedger",
    "StreamReader",
    "StreamRecord",
    "kinesis_put",
]


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """A record re-read from a stream: its sequence number and payload."""

    sequence_number: str
    data: bytes  # Kinesis: the record data; DynamoDB: JSON of {"eventName", "dynamodb"}
    partition_key: str | None = None
    event_name: str | None = None  # DynamoDB: INSERT | MODIFY | REMOVE


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


class FailureQueue:
    """A DLQ or on-failure queue the workflow drains."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def receive(self, max_messages: int, visibility_timeout: int = 300) -> list[dict[str, Any]]:
        """Receive up to ``max_messages`` (SQS allows 10 per call) without waiting."""
        response = client("sqs").receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(max_messages, 10)),
            VisibilityTimeout=visibility_timeout,
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "MessageGroupId"],
        )
        return list(response.get("Messages", []))

    def send(self, body: str) -> str:
        """Put a failure message back (the rest of a stream range); returns its message id."""
        response = client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=body)
        return str(response["MessageId"])

    def release(self, receipt_handle: str) -> None:
        """Make a received message visible again (it did not fit in this run)."""
        client("sqs").change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0
        )

    def delete(self, receipt_handles: Sequence[str]) -> tuple[int, list[str]]:
        """DeleteMessageBatch in chunks of 10; returns (deleted, failed receipt handles)."""
        deleted, failed = 0, list[str]()
        unique = list(dict.fromkeys(receipt_handles))
        for start in range(0, len(unique), 10):
            chunk = unique[start : start + 10]
            response = client("sqs").delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
            )
            deleted += len(response.get("Successful", []))
            failed.extend(chunk[int(entry["Id"])] for entry in response.get("Failed", []))
        return deleted, failed


class IncompleteRangeRead(RuntimeError):
    """A stream range could not be read to its end this time (only empty pages came back while
    the shard still had records ahead): recovery leaves the message for its next run."""


class StreamReader:
    """Re-reads a closed sequence range of one shard (stream on-failure records hold only that).

    Reads until the range's end or ``limit`` records. Empty pages are read through while the
    shard has records ahead (Kinesis can return an empty page in the middle of a shard); when
    it cannot tell the range is complete it raises :class:`IncompleteRangeRead` rather than
    return part of the range as if it were all of it.
    """

    MAX_PAGES = 100
    #: DynamoDB Streams say nothing of what lies ahead: this many empty pages in a row mean the
    #: open shard's tip.
    EMPTY_PAGES_AT_TIP = 3
    # Answers that say a stream range can never be read (no such stream or shard, a sequence
    # number that is not one, records past retention): a verdict on the message, not a hiccup.
    RANGE_GONE = frozenset(
        {
            "ResourceNotFoundException",
            "InvalidArgumentException",
            "TrimmedDataAccessException",
            "ValidationException",
        }
    )

    @classmethod
    def is_transient(cls, exc: BaseException) -> bool:
        """A read failed with a throttle, a 5xx or a lost connection: worth another run, not a
        verdict on the record."""
        from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

        if isinstance(exc, IncompleteRangeRead):
            return True
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            return code not in cls.RANGE_GONE and classify(exc) is ErrorKind.TRANSIENT
        # A parameter the SDK refuses (a forged shard id too short to be one) never gets better.
        return isinstance(exc, BotoCoreError) and not isinstance(exc, ParamValidationError)

    def kinesis_range(
        self, stream_arn: str, shard_id: str, start: str, end: str, limit: int
    ) -> list[StreamRecord]:
        kinesis = client("kinesis")
        iterator = kinesis.get_shard_iterator(
            StreamARN=stream_arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=start,
        )["ShardIterator"]
        out: list[StreamRecord] = []
        for _ in range(self.MAX_PAGES):
            if not iterator:
                return out  # a closed shard, read to its end
            response = kinesis.get_records(ShardIterator=iterator, Limit=1000, StreamARN=stream_arn)
            records = response.get("Records", [])
            for record in records:
                if int(record["SequenceNumber"]) > int(end) or len(out) >= limit:
                    return out
                out.append(
                    StreamRecord(record["SequenceNumber"], record["Data"], record["PartitionKey"])
                )
            if not records and not response.get("MillisBehindLatest"):
                return out  # the shard's tip: nothing of the range lies ahead
            iterator = response.get("NextShardIterator")
        raise IncompleteRangeRead(
            f"{shard_id} from {start}: not read to {end} in {self.MAX_PAGES} pages"
        )

    def dynamodb_range(
        self, stream_arn: str, shard_id: str, start: str, end: str, limit: int
    ) -> list[StreamRecord]:
        streams = client("dynamodbstreams")
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=start,
        )["ShardIterator"]
        out: list[StreamRecord] = []
        empty = 0
        for _ in range(self.MAX_PAGES):
            if not iterator:
                return out  # a closed shard, read to its end
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            records = response.get("Records", [])
            for record in records:
                sequence = record["dynamodb"]["SequenceNumber"]
                if int(sequence) > int(end) or len(out) >= limit:
                    return out
                body = {"eventName": record.get("eventName"), "dynamodb": record["dynamodb"]}
                # B/BS values come back as bytes: base64 text, as in the stream's own JSON.
                data = json.dumps(body, default=_json_default).encode()
                out.append(StreamRecord(sequence, data, event_name=record.get("eventName")))
            empty = 0 if records else empty + 1
            if empty >= self.EMPTY_PAGES_AT_TIP:
                return out
            iterator = response.get("NextShardIterator")
        raise IncompleteRangeRead(
            f"{shard_id} from {start}: not read to {end} in {self.MAX_PAGES} pages"
        )


class RecoveryLedger:
    """The ``recovery`` table: replay attempts and quarantine index per failed record."""

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def begin_replay(
        self, record_id: str, *, max_attempts: int, kind: str, source: str, reason: str
    ) -> int | None:
        """Count one more replay; None when ``max_attempts`` are used up or it is quarantined.

        The conditional update makes the bound hold even when two executions race.
        """
        ddb = client("dynamodb")
        try:
            response = ddb.update_item(
                TableName=self.table_name,
                Key={"record_id": {"S": record_id}},
                UpdateExpression=(
                    "SET #state = :replaying, kind = :kind, #source = :source,"
                    " reason = :reason, updated_at = :now ADD attempts :one"
                ),
                ConditionExpression=(
                    "attribute_not_exists(record_id) OR"
                    " (attempts < :max AND #state <> :quarantined)"
                ),
                ExpressionAttributeNames={"#state": "state", "#source": "source"},
                ExpressionAttributeValues={
                    ":replaying": {"S": "REPLAYING"},
                    ":quarantined": {"S": "QUARANTINED"},
                    ":kind": {"S": kind},
                    ":source": {"S": source},
                    ":reason": {"S": reason[:1000]},
                    ":now": {"S": datetime.now(UTC).isoformat()},
                    ":one": {"N": "1"},
                    ":max": {"N": str(max_attempts)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return None
        return int(response["Attributes"]["attempts"]["N"])

    def mark_quarantined(
        self,
        record_id: str,
        *,
        kind: str,
        source: str,
        reason: str,
        s3_key: str,
        business_id: str | None = None,
    ) -> None:
        """Index a quarantined record; ``business_id`` (its event or task id) helps find it."""
        update = (
            "SET #state = :q, kind = :kind, #source = :source, reason = :reason,"
            " s3_key = :key, updated_at = :now, attempts = if_not_exists(attempts, :zero)"
        )
        values = {
            ":q": {"S": "QUARANTINED"},
            ":kind": {"S": kind},
            ":source": {"S": source},
            ":reason": {"S": reason[:1000]},
            ":key": {"S": s3_key},
            ":now": {"S": datetime.now(UTC).isoformat()},
            ":zero": {"N": "0"},
        }
        if business_id:
            update += ", business_id = :business"
            values[":business"] = {"S": business_id[:64]}
        client("dynamodb").update_item(
            TableName=self.table_name,
            Key={"record_id": {"S": record_id}},
            UpdateExpression=update,
            ExpressionAttributeNames={"#state": "state", "#source": "source"},
            ExpressionAttributeValues=values,
        )

    def get(self, record_id: str) -> dict[str, Any] | None:
        item = (
            client("dynamodb")
            .get_item(
                TableName=self.table_name, Key={"record_id": {"S": record_id}}, ConsistentRead=True
            )
            .get("Item")
        )
        if not item:
            return None
        return {key: next(iter(value.values())) for key, value in item.items()}


class QuarantineStore:
    """Quarantine objects in S3, one per record at a deterministic key (so puts are idempotent)."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> None:
        client("s3").put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)


def kinesis_put(stream_name: str, data: bytes, partition_key: str) -> str:
    """PutRecord; returns the new sequence number."""
    response = client("kinesis").put_record(
        StreamName=stream_name, Data=data, PartitionKey=partition_key
    )
    return str(response["SequenceNumber"])
