"""changes: ``orders`` stream (NEW_AND_OLD_IMAGES) -> tasks on the fulfilment/notification queues.

Each status change becomes its tasks (pure logic), collected in the outbox and sent at the end of
the batch with SendMessageBatch (a record whose tasks are not sent fails and is retried). Task ids
are deterministic, so a redelivered stream record re-sends the same tasks and the FIFO queue and
effects table drop the copies.
The work is recorded in the trace of the ingest invocation that wrote the change (its header is
on the item), and the tasks carry that trace on to their consumers.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow coldstart.begin() on purpose)
from orderflow import coldstart

coldstart.begin()  # the cyclic GC sits out INIT: see orderflow.coldstart

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from orderflow.batch import Source, current_record_id, partial_batch_handler
from orderflow.dal import TaskOutbox
from orderflow.events import FulfilmentTask, NotificationTask, OrderState, build_models, parse_model
from orderflow.logic import tasks_for_change
from orderflow.observability import linked_traces
from orderflow.settings import ChangesSettings, load_settings
from orderflow.tracing import split_item_trace

__all__ = ["handler"]

build_models(OrderState, FulfilmentTask, NotificationTask)
settings = load_settings(ChangesSettings)
outbox = TaskOutbox(settings.fulfilment_queue_url, settings.notifications_queue_url)


def _state(image: Mapping[str, Any] | None) -> OrderState | None:
    return parse_model(OrderState, image) if image else None


@partial_batch_handler(source=Source.DYNAMODB_STREAMS, deferred=outbox)
def handler(record: DynamoDBRecord) -> None:
    """Queue the tasks one order change causes; REMOVE records cause none."""
    if record.event_name is DynamoDBRecordEventName.REMOVE:
        return
    change = record.dynamodb
    if change is None:  # pragma: no cover - AWS always sends the change body
        return
    new_image, order_trace = split_item_trace(change.new_image)
    old_image, _ = split_item_trace(change.old_image)
    with linked_traces.hop(order_trace) as trace_header:
        for task in tasks_for_change(_state(old_image), _state(new_image)):
            outbox.add(task, record_id=current_record_id(), trace_header=trace_header)


coldstart.end()
