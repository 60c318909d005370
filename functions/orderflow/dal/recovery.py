"""AWS adapters of the recovery workflow: failure queues, stream re-reads, ledger, quarantine."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orderflow.dal.clients import client

__all__ = [
    "FailureQueue",
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


class StreamReader:
    """Re-reads a closed sequence range of one shard (stream on-failure records hold only that)."""

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
        for page in self._pages(
            lambda it: kinesis.get_records(ShardIterator=it, Limit=1000, StreamARN=stream_arn),
            iterator,
        ):
            for record in page:
                if int(record["SequenceNumber"]) > int(end) or len(out) >= limit:
                    return out
                out.append(
                    StreamRecord(record["SequenceNumber"], record["Data"], record["PartitionKey"])
                )
        return out

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
        for page in self._pages(
            lambda it: streams.get_records(ShardIterator=it, Limit=1000), iterator
        ):
            for record in page:
                sequence = record["dynamodb"]["SequenceNumber"]
                if int(sequence) > int(end) or len(out) >= limit:
                    return out
                body = {"eventName": record.get("eventName"), "dynamodb": record["dynamodb"]}
                data = json.dumps(body, default=str).encode()
                out.append(StreamRecord(sequence, data, event_name=record.get("eventName")))
        return out

    @staticmethod
    def _pages(fetch: Any, iterator: str | None, max_pages: int = 20) -> Iterable[list[Any]]:
        # Bounded: an open shard returns empty pages forever; the range is closed, so an empty
        # page after data (or the page cap) means we have everything that still exists.
        for _ in range(max_pages):
            if not iterator:
                return
            response = fetch(iterator)
            records = response.get("Records", [])
            if not records:
                return
            yield records
            iterator = response.get("NextShardIterator")


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
        self, record_id: str, *, kind: str, source: str, reason: str, s3_key: str
    ) -> None:
        client("dynamodb").update_item(
            TableName=self.table_name,
            Key={"record_id": {"S": record_id}},
            UpdateExpression=(
                "SET #state = :q, kind = :kind, #source = :source, reason = :reason,"
                " s3_key = :key, updated_at = :now, attempts = if_not_exists(attempts, :zero)"
            ),
            ExpressionAttributeNames={"#state": "state", "#source": "source"},
            ExpressionAttributeValues={
                ":q": {"S": "QUARANTINED"},
                ":kind": {"S": kind},
                ":source": {"S": source},
                ":reason": {"S": reason[:1000]},
                ":key": {"S": s3_key},
                ":now": {"S": datetime.now(UTC).isoformat()},
                ":zero": {"N": "0"},
            },
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

    def put(self, key: str, body: bytes) -> None:
        client("s3").put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/json"
        )


def kinesis_put(stream_name: str, data: bytes, partition_key: str) -> str:
    """PutRecord; returns the new sequence number."""
    response = client("kinesis").put_record(
        StreamName=stream_name, Data=data, PartitionKey=partition_key
    )
    return str(response["SequenceNumber"])
