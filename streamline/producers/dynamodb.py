"""DynamoDB producer: order states written into the ``orders`` table with BatchWriteItem,
as ingest would leave them, so the table's stream drives changes exactly as in the pipeline.

Each event is applied to its order's state in the order given (:func:`orderflow.logic.apply_event`;
a stale or repeated event writes nothing and is ``skipped``) and the new state is written in the
orders item format (:func:`orderflow.dal.orders.state_to_item`: typed attributes, ``version`` and
``amount_cents`` as numbers, ``updated_at`` as an ISO string). A poison event becomes an item
invalid in the same fields (:func:`streamline.producers.prepare.poisoned`), so changes
quarantines it. Items carry no ``chaos``: a transient event is written as its plain state.

BatchWriteItem writes unconditionally, so order matters: one call never holds two versions of
an order (DynamoDB also refuses two writes of one key in a call), and an order's next version is
written only after its previous one succeeded. ``UnprocessedItems`` are retried alone with
backoff. Limits: 25 items per call, 400 KB per item (16 MB per call cannot be reached).

Example::

    >>> DynamoDbProducer(boto3.client("dynamodb"), "orders").send(events)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from orderflow.dal.orders import state_to_item
from orderflow.events import OrderState
from orderflow.logic import apply_event

from streamline.producers.base import Producer
from streamline.producers.batching import Entry, Rejection
from streamline.producers.prepare import Prepared, poisoned
from streamline.producers.report import Failed

__all__ = ["DynamoDbProducer", "item_size"]


def item_size(item: dict[str, Any]) -> int:
    """An upper bound of DynamoDB's item size: names plus each value's text."""
    return sum(len(name.encode()) + len(str(value).encode()) for name, value in item.items())


def _plain(value: Any) -> Any:
    # TypeSerializer refuses floats; DynamoDB numbers are decimals.
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class DynamoDbProducer(Producer):
    """Writes the order state of each event into one orders table."""

    MAX_ENTRIES = 25
    MAX_CALL_BYTES = 16 * 1024 * 1024
    MAX_ENTRY_BYTES = 400 * 1024
    TOO_LARGE = "ItemTooLarge"

    def __init__(self, client: Any, table_name: str, **options: Any) -> None:
        super().__init__(client, **options)
        self.table_name = table_name

    def _entries(self, prepared: list[Prepared]) -> Iterator[Entry | Failed | None]:
        from boto3.dynamodb.types import TypeSerializer

        serializer = TypeSerializer()
        states: dict[str, OrderState] = {}
        for item in prepared:
            if item.event is None:
                if not item.order_id:
                    yield Failed(item.event_id, "MissingKey", "an orders item needs order_id")
                    continue
                record = poisoned(item, OrderState)
                record["order_id"] = item.order_id  # the key must stay a string to be written
                attributes = {k: serializer.serialize(_plain(v)) for k, v in record.items()}
            else:
                new = apply_event(states.get(item.order_id), item.event)
                if new is None:
                    yield None
                    continue
                states[item.order_id] = new
                attributes = state_to_item(new)
            request = {"PutRequest": {"Item": attributes}}
            yield Entry(item.event_id, item.order_id, request, item_size(attributes))

    def _call(self, batch: list[Entry]) -> Sequence[Rejection]:
        response = self.client.batch_write_item(
            RequestItems={self.table_name: [e.request for e in batch]}
        )
        unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
        # One write per order per call, so the key names the entry.
        by_key = {e.key: e for e in batch}
        rejections = []
        for request in unprocessed:
            key = request.get("PutRequest", {}).get("Item", {}).get("order_id", {}).get("S")
            entry = by_key.get(str(key))
            if entry is not None:
                rejections.append(
                    Rejection(entry, "UnprocessedItems", "returned in UnprocessedItems", True)
                )
        return rejections
