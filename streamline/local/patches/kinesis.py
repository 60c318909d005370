"""Kinesis: a shard's first and last sequence numbers in constant time.

moto keeps a shard's records in an insertion-ordered dict and found its newest record by
building a list of every key (``list(self.records.keys())[-1]``), on every PutRecord(s) entry
and every DescribeStream/ListShards: PutRecords cost O(records in the shard), so a stream that
kept 24 hours of events slowed every producer as it filled (measured by ``bench/pipeline.py``:
20 ms a 100-record PutRecords on a shard that had taken 100,000 records, over half the server's
CPU in that phase). The answers are the same; only the walk is gone.
"""

from __future__ import annotations

from typing import Any

from streamline.local.patches.registry import install, moto_patch


@moto_patch(
    "moto.kinesis.models:Shard.get_max_sequence_number",
    "moto.kinesis.models:Shard.get_min_sequence_number",
)
def kinesis_shard_ends_constant_time() -> None:
    """A shard's newest and oldest sequence numbers are read from the ends of its ordered
    records instead of a list of every key (PutRecords was O(records in the shard))."""
    from moto.kinesis.models import Shard

    def get_max_sequence_number(self: Any) -> int:
        return next(reversed(self.records), 0)

    def get_min_sequence_number(self: Any) -> int:
        return next(iter(self.records), 0)

    install(Shard, "get_max_sequence_number", get_max_sequence_number)
    install(Shard, "get_min_sequence_number", get_min_sequence_number)
