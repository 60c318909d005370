"""The ``orders`` table: one item per order, written only by a newer event.

An item is an :class:`~orderflow.events.OrderState` plus, when the writing invocation was
traced, ``trace_header`` (:data:`orderflow.tracing.ITEM_ATTRIBUTE`): that invocation's X-Ray
header, which the table's stream carries to ``changes`` so the order's trace continues there
(DynamoDB Streams carry no trace context of their own). It is storage, not schema: readers
split it off with :func:`orderflow.tracing.split_item_trace` before validating the state.
"""

from __future__ import annotations

from typing import Any

from orderflow.dal.clients import client
from orderflow.events import OrderState
from orderflow.tracing import ITEM_ATTRIBUTE, split_item_trace

__all__ = ["OrdersRepository", "state_to_item"]

# Mirrors orderflow.logic.supersedes: write when the item is absent or the stored
# (version, last_event_id) is smaller. Doing the comparison inside DynamoDB makes a concurrent
# or redelivered write a no-op without a read first.
_NEWER = "attribute_not_exists(order_id) OR version < :v OR (version = :v AND last_event_id < :eid)"


def state_to_item(state: OrderState, trace_header: str | None = None) -> dict[str, Any]:
    """DynamoDB (typed JSON) item for an order state, with the writer's trace header if any."""
    item = {
        "order_id": {"S": state.order_id},
        "status": {"S": state.status.value},
        "version": {"N": str(state.version)},
        "last_event_id": {"S": state.last_event_id},
        "amount_cents": {"N": str(state.amount_cents)},
        "customer_id": {"S": state.customer_id},
        "updated_at": {"S": state.updated_at.isoformat()},
    }
    if trace_header:
        item[ITEM_ATTRIBUTE] = {"S": trace_header}
    return item


class OrdersRepository:
    """Conditional writes to the orders table.

    Example::

        >>> OrdersRepository("orders").put_if_newer(state)   # doctest: +SKIP
        True
    """

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def put_if_newer(self, state: OrderState, *, trace_header: str | None = None) -> bool:
        """Write ``state`` unless the table holds an equal or newer one; True if written.

        ``trace_header`` rides on the item (no extra request): see the module docstring.
        """
        ddb = client("dynamodb")
        try:
            ddb.put_item(
                TableName=self.table_name,
                Item=state_to_item(state, trace_header),
                ConditionExpression=_NEWER,
                ExpressionAttributeValues={
                    ":v": {"N": str(state.version)},
                    ":eid": {"S": state.last_event_id},
                },
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get(self, order_id: str) -> OrderState | None:
        """Read one order (consistent read); used by tools and tests, not by the hot path."""
        from boto3.dynamodb.types import TypeDeserializer

        item = (
            client("dynamodb")
            .get_item(
                TableName=self.table_name, Key={"order_id": {"S": order_id}}, ConsistentRead=True
            )
            .get("Item")
        )
        if not item:
            return None
        plain = {key: TypeDeserializer().deserialize(value) for key, value in item.items()}
        state, _ = split_item_trace(plain)
        return OrderState.model_validate(state)
