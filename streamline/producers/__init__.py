"""Producers: order events into the pipeline's entry points, batched, paced and retried.

- :func:`generate_events` plans events (order lifecycles, poison and transient faults);
- :class:`KinesisProducer` puts them on ``order-events`` (PutRecords, key = order id);
- :class:`SqsProducer` sends the tasks the pipeline would derive to a task queue;
- :class:`DynamoDbProducer` writes the order states into the ``orders`` table.

Every producer validates each event against the shared schema (:mod:`orderflow.events`) before
the first call, fills calls up to the service's limits, retries only the entries the service
rejected (exponential backoff, full jitter, ``max_attempts``), keeps each order's records in
order, can be paced (``rate`` records/s), and reports every event as sent, failed or skipped
(:class:`ProduceReport`). Each takes a boto3 client, so tests wrap a real one to inject faults.

Example::

    >>> import boto3
    >>> events = generate_events(100, poison_rate=0.02, transient_rate=0.05, seed=1)
    >>> report = KinesisProducer(boto3.client("kinesis"), "order-events").send(events)
    >>> report.sent + len(report.failed)                                     # doctest: +SKIP
    100
"""

from __future__ import annotations

from streamline.producers.dynamodb import DynamoDbProducer
from streamline.producers.generate import PlannedEvent, generate_events
from streamline.producers.kinesis import KinesisProducer
from streamline.producers.prepare import InvalidEventError
from streamline.producers.report import Failed, ProduceReport
from streamline.producers.sqs import SqsProducer

__all__ = [
    "DynamoDbProducer",
    "Failed",
    "InvalidEventError",
    "KinesisProducer",
    "PlannedEvent",
    "ProduceReport",
    "SqsProducer",
    "generate_events",
]
