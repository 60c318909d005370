"""DynamoDB Streams as a stream source: a table's one stream shard in moto (items 20, 22).

Records are read under the backends lock from ``StreamShard.items`` directly (moto keeps every
DynamoDB shard iterator forever), each shaped as Lambda's DynamoDB record.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from streamline.local.esm.sources.base import PolledRecord, ShardInfo

__all__ = ["DynamoDBSource"]


class DynamoDBSource:
    """A table's stream in moto's DynamoDB backend (one shard, ``StreamShard.items``)."""

    batch_info_key = "DDBStreamBatchInfo"

    def __init__(self, backends: Any, arn: str) -> None:
        self.backends = backends
        self.arn = arn

    def _shard(self) -> Any:
        for table in self.backends.dynamodb().tables.values():
            shard = table.stream_shard
            if (
                shard is not None
                and f"{table.table_arn}/stream/{table.latest_stream_label}" == self.arn
            ):
                return shard
        raise LookupError(f"DynamoDB stream {self.arn} does not exist")

    def shards(self) -> list[ShardInfo]:
        return [ShardInfo(self._shard().id, False)]

    def latest(self, shard_id: str) -> int:
        shard = self._shard()
        return int(shard.starting_sequence_number) + len(shard.items) - 1

    def trim_horizon(self, shard_id: str) -> int:
        return int(self._shard().starting_sequence_number) - 1

    def position_before(self, shard_id: str, when: float) -> int:
        shard = self._shard()
        start = int(shard.starting_sequence_number)
        for index in range(len(shard.items) - 1, -1, -1):
            if _epoch(shard.items[index].record["dynamodb"]["ApproximateCreationDateTime"]) < when:
                return start + index
        return start - 1

    def read(self, shard_id: str, after: int, limit: int, role: str | None) -> list[PolledRecord]:
        shard = self._shard()
        begin = max(0, after + 1 - int(shard.starting_sequence_number))
        out: list[PolledRecord] = []
        for item in shard.items[begin : begin + limit]:
            raw = item.record
            # Binary (B, BS) as the stream's JSON carries it: base64 text. moto holds bytes,
            # which no JSON payload can hold (one such item once killed the shard's worker).
            # The walk builds new dicts and lists, so moto's record is never changed through
            # this copy (its leaves are immutable), without a deepcopy first.
            dynamodb = _binary_as_base64(raw["dynamodb"])
            arrival = _epoch(dynamodb["ApproximateCreationDateTime"])
            dynamodb["ApproximateCreationDateTime"] = int(arrival)
            ordered = {
                key: dynamodb[key]
                for key in (
                    "ApproximateCreationDateTime",
                    "Keys",
                    "NewImage",
                    "OldImage",
                    "SequenceNumber",
                    "SizeBytes",
                    "StreamViewType",
                )
                if key in dynamodb
            }
            shaped = {
                "eventID": raw["eventID"],
                "eventName": raw["eventName"],
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": self.backends.region,
                "dynamodb": ordered,
                "eventSourceARN": self.arn,
            }
            out.append(
                PolledRecord(
                    int(dynamodb["SequenceNumber"]),
                    str(dynamodb["SequenceNumber"]),
                    json.dumps(dynamodb.get("Keys"), sort_keys=True),
                    arrival,
                    shaped,
                )
            )
        return out


def _binary_as_base64(value: Any) -> Any:
    """A copy of ``value`` (new dicts and lists all the way down) with bytes as base64 text."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {key: _binary_as_base64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_binary_as_base64(item) for item in value]
    return value


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)
