"""What a stream source is: the shapes a shard worker reads and the protocol a source follows.

A source lists a stream's shards and reads records from moto's models directly (call every
method with the backends lock held); :mod:`streamline.local.esm.streams` does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["PolledRecord", "ShardInfo", "StreamSource"]


@dataclass(slots=True)
class PolledRecord:
    """One record polled from a shard, with what ordering, checkpoints and record age need
    (not orderflow's StreamRecord, a record re-read for a replay)."""

    seq: int
    seq_str: str
    partition_key: str
    arrival: float
    record: dict[str, Any]


@dataclass(slots=True)
class ShardInfo:
    shard_id: str
    closed: bool
    parent: str | None = None


class StreamSource(Protocol):
    """A Kinesis stream or DynamoDB stream as a shard worker reads it (under the lock)."""

    #: The failure record's key for the batch: ``KinesisBatchInfo`` or ``DDBStreamBatchInfo``.
    batch_info_key: str

    def shards(self) -> list[ShardInfo]: ...

    def latest(self, shard_id: str) -> int:
        """Sequence number of the shard's last record."""
        ...

    def trim_horizon(self, shard_id: str) -> int:
        """The position before the shard's first record."""
        ...

    def position_before(self, shard_id: str, when: float) -> int:
        """Sequence number of the last record that arrived before ``when``."""
        ...

    def read(
        self, shard_id: str, after: int, limit: int, role: str | None
    ) -> list[PolledRecord]: ...
