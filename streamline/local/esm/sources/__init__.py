"""Stream sources of the event-source-mapping engine: Kinesis and DynamoDB Streams.

Example::

    from streamline.local.esm.sources import KinesisSource
    source = KinesisSource(backends, stream_arn)
    with backends.lock:
        records = source.read(source.shards()[0].shard_id, after=0, limit=10, role=None)
"""

from __future__ import annotations

from streamline.local.esm.sources.base import PolledRecord, ShardInfo, StreamSource
from streamline.local.esm.sources.dynamodb import DynamoDBSource
from streamline.local.esm.sources.kinesis import KinesisSource

__all__ = ["DynamoDBSource", "KinesisSource", "PolledRecord", "ShardInfo", "StreamSource"]
