"""DynamoDB producer: order events recorded in the ``orders`` table the way ingest records them,
so the table's stream drives changes exactly as in the pipeline.

Each valid event goes through :meth:`orderflow.dal.OrdersRepository.record`, the same
conditional write ingest makes: a newer version replaces the order's state, an older one only
records its status (its notification is still due), and a duplicate changes nothing. So the
table converges to each order's highest version whatever order the events are given in, in one
call or many, and no writer can move an order back. A poison event becomes an item invalid in
the same fields (:func:`streamline.producers.prepare.poisoned`), written with a PutItem only
where the order does not exist yet, so that changes quarantines it and no valid order is
overwritten. Items carry no ``chaos``: a transient event is written as its plain state.

One conditional UpdateItem per event (BatchWriteItem has no conditions), up to 25 at a time on a
thread pool, never two of one order at once: an order's next event waits for its previous one.
Throttles are retried alone with backoff. Limit: 400 KB per item.

Example::

    >>> DynamoDbProducer(boto3.client("dynamodb"), "orders").send(events)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from orderflow.dal.orders import OrdersRepository, state_to_item
from orderflow.events import OrderState
from orderflow.logic import state_for

from streamline.producers.base import Producer
from streamline.producers.batching import Entry, Rejection
from streamline.producers.prepare import Prepared, poisoned
from streamline.producers.report import Failed
from streamline.producers.retry import error_code, is_retryable_error

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
    """Records each event in one orders table (see the module docstring)."""

    MAX_ENTRIES = 25
    MAX_CALL_BYTES = 16 * 1024 * 1024
    MAX_ENTRY_BYTES = 400 * 1024
    TOO_LARGE = "ItemTooLarge"
    #: Conditional writes in flight at once (one per order).
    WORKERS = 8

    def __init__(self, client: Any, table_name: str, **options: Any) -> None:
        super().__init__(client, **options)
        self.table_name = table_name
        self.orders = OrdersRepository(table_name, ddb=client)
        self._pool = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="dynamodb-producer")

    def _entries(self, prepared: list[Prepared]) -> Iterator[Entry | Failed | None]:
        from boto3.dynamodb.types import TypeSerializer

        serializer = TypeSerializer()
        for item in prepared:
            if item.event is None:
                if not item.order_id:
                    yield Failed(item.event_id, "MissingKey", "an orders item needs order_id")
                    continue
                record = poisoned(item, OrderState)
                record["order_id"] = item.order_id  # the key must stay a string to be written
                attributes = {k: serializer.serialize(_plain(v)) for k, v in record.items()}
                yield Entry(item.event_id, item.order_id, attributes, item_size(attributes))
            else:
                state = state_for(item.event)
                yield Entry(item.event_id, item.order_id, state, item_size(state_to_item(state)))

    def _write(self, entry: Entry) -> Rejection | None:
        try:
            if isinstance(entry.request, OrderState):
                self.orders.record(entry.request)
            else:
                # Fault injection writes a fresh order only: never over an order's valid state.
                self.client.put_item(
                    TableName=self.table_name,
                    Item=entry.request,
                    ConditionExpression="attribute_not_exists(order_id)",
                )
        except (ClientError, BotoCoreError) as exc:
            return Rejection(entry, error_code(exc), str(exc), is_retryable_error(exc))
        return None

    def _call(self, batch: list[Entry]) -> Sequence[Rejection]:
        # The batch holds at most one entry per order (BatchSender), so writes can overlap.
        return [r for r in self._pool.map(self._write, batch) if r is not None]
