"""Kinesis producer: order events into ``order-events`` with PutRecords, partition key = order id.

Limits (AWS PutRecords): 500 records and 5 MiB per call including partition keys, 1 MiB per
record (data plus partition key). A record the service rejects with
``ProvisionedThroughputExceededException``, ``InternalFailure`` or ``KMSThrottlingException`` is
retried alone (see :mod:`streamline.producers.batching`); any other per-record error code fails
that record at once. At most one record per order rides in a call, so an order's records reach
its shard in version order even when a call is only partly accepted.

Example::

    >>> producer = KinesisProducer(boto3.client("kinesis"), "order-events", rate=200)
    >>> report = producer.send(generate_events(1000, poison_rate=0.01))   # doctest: +SKIP
    >>> report.sent, len(report.failed)
    (1000, 0)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from streamline.producers.base import Producer
from streamline.producers.batching import Entry, Rejection
from streamline.producers.prepare import Prepared
from streamline.producers.report import Failed

__all__ = ["RETRYABLE_RECORD_CODES", "KinesisProducer"]

#: Per-record error codes that a later attempt can fix.
RETRYABLE_RECORD_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException"}
)


class KinesisProducer(Producer):
    """Sends events to one stream (a name, or an ARN) as JSON records keyed by order id."""

    MAX_ENTRIES = 500
    MAX_CALL_BYTES = 5 * 1024 * 1024
    MAX_ENTRY_BYTES = 1024 * 1024
    TOO_LARGE = "RecordTooLarge"

    def __init__(self, client: Any, stream_name: str, **options: Any) -> None:
        super().__init__(client, **options)
        self.stream_name = stream_name
        self._stream = (
            {"StreamARN": stream_name}
            if stream_name.startswith("arn:")
            else {"StreamName": stream_name}
        )

    def _entries(self, prepared: list[Prepared]) -> Iterator[Entry | Failed | None]:
        for item in prepared:
            key = item.order_id
            if not 1 <= len(key) <= 256:
                yield Failed(item.event_id, "InvalidPartitionKey", "order_id must be 1-256 chars")
                continue
            request = {"Data": item.data, "PartitionKey": key}
            yield Entry(item.event_id, key, request, len(item.data) + len(key.encode()))

    def _call(self, batch: list[Entry]) -> Sequence[Rejection]:
        response = self.client.put_records(**self._stream, Records=[e.request for e in batch])
        results = response.get("Records", [])
        rejections = []
        for index, entry in enumerate(batch):
            # AWS answers one result per record, in request order; a missing one is not proof
            # of delivery, so it is retried (the documented duplicate risk of a retry).
            result = results[index] if index < len(results) else {"ErrorCode": "NoResult"}
            code = result.get("ErrorCode")
            if code:
                rejections.append(
                    Rejection(
                        entry,
                        code,
                        result.get("ErrorMessage", ""),
                        code in RETRYABLE_RECORD_CODES or code == "NoResult",
                    )
                )
        return rejections
