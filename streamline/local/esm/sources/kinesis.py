"""Kinesis as a stream source: shards and records read from moto's Kinesis models (items 20-21).

Records are read under the backends lock from ``Shard.records`` directly, never through shard
iterators; each is shaped as Lambda's Kinesis record (data as base64).
"""

from __future__ import annotations

import base64
from typing import Any

from streamline.local.esm.sources.base import PolledRecord, ShardInfo

__all__ = ["KinesisSource"]


class KinesisSource:
    """A Kinesis stream in moto's Kinesis backend (``Shard.records``, numbered 1, 2, 3...)."""

    batch_info_key = "KinesisBatchInfo"

    def __init__(self, backends: Any, arn: str) -> None:
        self.backends = backends
        self.arn = arn

    def _stream(self) -> Any:
        for stream in self.backends.kinesis().streams.values():
            if stream.arn == self.arn:
                return stream
        raise LookupError(f"Kinesis stream {self.arn} does not exist")

    def shards(self) -> list[ShardInfo]:
        return [
            ShardInfo(s.shard_id, not s.is_open, s.parent) for s in self._stream().shards.values()
        ]

    def latest(self, shard_id: str) -> int:
        records = self._stream().shards[shard_id].records
        return int(next(reversed(records))) if records else 0

    def trim_horizon(self, shard_id: str) -> int:
        return 0

    def position_before(self, shard_id: str, when: float) -> int:
        """Sequence number of the last record that arrived before ``when`` (0 if none)."""
        records = self._stream().shards[shard_id].records
        for seq in reversed(records):
            if records[seq].created_at < when:
                return int(seq)
        return 0

    def read(self, shard_id: str, after: int, limit: int, role: str | None) -> list[PolledRecord]:
        records = self._stream().shards[shard_id].records
        out: list[PolledRecord] = []
        seq = after + 1
        # moto numbers each shard's records 1, 2, 3...: direct lookups keep reads O(batch).
        while len(out) < limit and seq in records:
            out.append(self._shape(shard_id, records[seq], role))
            seq += 1
        if not out and records and next(reversed(records)) > after:
            for key, value in records.items():  # a gap (resharding): fall back to a scan
                if key > after:
                    out.append(self._shape(shard_id, value, role))
                    if len(out) >= limit:
                        break
        return out

    def _shape(self, shard_id: str, record: Any, role: str | None) -> PolledRecord:
        data = record.data
        if isinstance(data, bytes):
            data = base64.b64encode(data).decode()
        seq = str(record.sequence_number)
        shaped = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": record.partition_key,
                "sequenceNumber": seq,
                "data": data,
                "approximateArrivalTimestamp": round(record.created_at, 3),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{seq}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": role or "",
            "awsRegion": self.backends.region,
            "eventSourceARN": self.arn,
        }
        return PolledRecord(
            int(record.sequence_number), seq, record.partition_key, record.created_at, shaped
        )
