"""changes: ``orders`` stream (NEW_AND_OLD_IMAGES) -> tasks on the fulfilment/notification queues.

Both images are parsed strictly from the raw stream record (``orderflow.events.parse_order_image``:
an image a state cannot be is poison, whatever attribute types it holds). Each status that enters
the order's seen set becomes its tasks (pure logic), collected in the outbox and sent at the end of
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

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from orderflow.batch import Source, current_record_id, partial_batch_handler
from orderflow.dal import TaskOutbox
from orderflow.errors import PoisonRecordError
from orderflow.events import (
    FulfilmentTask,
    NotificationTask,
    OrderRecord,
    OrderState,
    build_models,
    parse_order_image,
)
from orderflow.logic import tasks_for_change
from orderflow.observability import linked_traces
from orderflow.settings import ChangesSettings, load_settings
from orderflow.tracing import ITEM_ATTRIBUTE

__all__ = ["handler"]

build_models(OrderState, FulfilmentTask, NotificationTask)
settings = load_settings(ChangesSettings)
outbox = TaskOutbox(settings.fulfilment_queue_url, settings.notifications_queue_url)


def _image(change: object, key: str) -> object:
    return change.get(key) if isinstance(change, dict) else None


def _trace_header(image: object) -> str | None:
    value = image.get(ITEM_ATTRIBUTE) if isinstance(image, dict) else None
    header = value.get("S") if isinstance(value, dict) else None
    return header if isinstance(header, str) else None


def _old_record(image: object) -> OrderRecord | None:
    if not image:
        return None
    try:
        return parse_order_image(image)
    except PoisonRecordError:
        # The order was malformed before this change and is valid now: every status it holds
        # is new to it (the effects table drops what was already done).
        return None


@partial_batch_handler(source=Source.DYNAMODB_STREAMS, deferred=outbox)
def handler(record: DynamoDBRecord) -> None:
    """Queue the tasks one order change causes; REMOVE records cause none."""
    raw = record.raw_event
    if raw.get("eventName") == "REMOVE":
        return
    # The raw images, not Powertools' deserialised ones: the strict parser sees the attribute
    # types as written (a version stored as a string is poison, not coerced).
    change = raw.get("dynamodb")
    new_image = _image(change, "NewImage")
    with linked_traces.hop(_trace_header(new_image)) as trace_header:
        if not new_image:
            raise PoisonRecordError("stream record has no NewImage (the view must be NEW_AND_OLD)")
        new = parse_order_image(new_image)
        old = _old_record(_image(change, "OldImage"))
        for task in tasks_for_change(old, new):
            outbox.add(task, record_id=current_record_id(), trace_header=trace_header)


coldstart.end()
