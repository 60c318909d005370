"""The ``orders`` table: one item per order, changed only by a newer event or a new status.

An item is an :class:`~orderflow.events.OrderState` plus storage attributes the schema does not
own (see :class:`~orderflow.events.OrderRecord`):

- ``seen_<STATUS>``: ``"<version>|<event id>"`` of the first valid event with that status, so
  the statuses an order went through are a set, whatever order its events arrived in;
- ``trace_header`` (:data:`orderflow.tracing.ITEM_ATTRIBUTE`), when the writing invocation was
  traced: its X-Ray header, which the table's stream carries to ``changes`` so the order's trace
  continues there (DynamoDB Streams carry no trace context of their own).

Anyone writing this table must go through :meth:`OrdersRepository.record` (ingest, the DynamoDB
producer): an unconditional write can move an order back to an older version.
"""

from __future__ import annotations

from typing import Any

from orderflow.dal.clients import client
from orderflow.events import OrderRecord, OrderState, parse_order_image, seen_attribute
from orderflow.tracing import ITEM_ATTRIBUTE

__all__ = ["NEWER_CONDITION", "OrdersRepository", "record_to_item", "state_to_item"]

#: Mirrors orderflow.logic.supersedes: write when the item is absent or the stored
#: (version, last_event_id) is smaller. Doing the comparison inside DynamoDB makes a concurrent
#: or redelivered write a no-op without a read first. An item whose version is not a number or
#: whose last_event_id is not a string (a careless writer's) is no state at all: a valid event
#: replaces it (the type checks come first: comparing different types is false, never newer).
NEWER_CONDITION = (
    "attribute_not_exists(order_id) OR NOT attribute_type(version, :number)"
    " OR NOT attribute_type(last_event_id, :string)"
    " OR version < :v OR (version = :v AND last_event_id < :eid)"
)
# A stale event whose status the item has not seen: record only its mark.
_UNSEEN = "attribute_exists(order_id) AND attribute_not_exists(#seen) AND #status <> :status"
_STATE_FIELDS = ("status", "version", "last_event_id", "amount_cents", "customer_id", "updated_at")


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
        seen_attribute(state.status): {"S": f"{state.version}|{state.last_event_id}"},
    }
    if trace_header:
        item[ITEM_ATTRIBUTE] = {"S": trace_header}
    return item


def record_to_item(record: OrderRecord) -> dict[str, Any]:
    """The whole orders item of a record: its state, every status mark, its trace header."""
    item = state_to_item(record.state, record.trace_header)
    for status, mark in record.seen.items():
        item[seen_attribute(status)] = {"S": mark.render()}
    return item


def _stored_status_seen(item: dict[str, Any] | None, state: OrderState) -> bool:
    """Whether the stored item (``ALL_OLD`` of a failed write) already has the state's status."""
    if not item:
        return False
    if seen_attribute(state.status) in item:
        return True
    return item.get("status", {}).get("S") == state.status.value


class OrdersRepository:
    """Conditional writes to the orders table.

    Example::

        >>> OrdersRepository("orders").record(state_for(event))   # doctest: +SKIP
        True
    """

    def __init__(self, table_name: str, *, ddb: Any | None = None) -> None:
        self.table_name = table_name
        #: The DynamoDB client; None is the shared one (``orderflow.dal.client``), per call.
        self.ddb = ddb

    def record(self, state: OrderState, *, trace_header: str | None = None) -> bool:
        """Record the event ``state`` stands for (``logic.state_for``); True if the item changed.

        As :func:`orderflow.logic.record_event`: a newer event replaces the state and adds its
        status's mark; an older one only adds the mark of a status not seen yet; a duplicate
        changes nothing. One request when the event is newest or a duplicate, two when it is a
        stale event (the failed write's old item says whether the second is needed).
        ``trace_header`` rides on the item (no extra request): see the module docstring.
        """
        ddb = self.ddb if self.ddb is not None else client("dynamodb")
        item = state_to_item(state, trace_header)
        names = {f"#{name}": name for name in _STATE_FIELDS}
        names["#seen"] = seen_attribute(state.status)
        values = {f":{name}": item[name] for name in _STATE_FIELDS}
        values[":mark"] = item[names["#seen"]]
        values[":v"], values[":eid"] = item["version"], item["last_event_id"]
        values[":number"], values[":string"] = {"S": "N"}, {"S": "S"}
        update = "SET " + ", ".join(f"#{name} = :{name}" for name in _STATE_FIELDS)
        update += ", #seen = if_not_exists(#seen, :mark)"
        if trace_header:
            names["#trace"], values[":trace"] = ITEM_ATTRIBUTE, item[ITEM_ATTRIBUTE]
            update += ", #trace = :trace"
        else:
            names["#trace"] = ITEM_ATTRIBUTE
            update += " REMOVE #trace"
        try:
            ddb.update_item(
                TableName=self.table_name,
                Key={"order_id": item["order_id"]},
                UpdateExpression=update,
                ConditionExpression=NEWER_CONDITION,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return True
        except ddb.exceptions.ConditionalCheckFailedException as exc:
            if _stored_status_seen(exc.response.get("Item"), state):
                return False  # a duplicate, or a stale event of a status already seen
        try:
            ddb.update_item(
                TableName=self.table_name,
                Key={"order_id": item["order_id"]},
                UpdateExpression="SET #seen = :mark",
                ConditionExpression=_UNSEEN,
                ExpressionAttributeNames={"#seen": names["#seen"], "#status": "status"},
                ExpressionAttributeValues={":mark": values[":mark"], ":status": values[":status"]},
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def get(self, order_id: str) -> OrderState | None:
        """Read one order (consistent read); used by tools and tests, not by the hot path."""
        ddb = self.ddb if self.ddb is not None else client("dynamodb")
        item = ddb.get_item(
            TableName=self.table_name, Key={"order_id": {"S": order_id}}, ConsistentRead=True
        ).get("Item")
        return parse_order_image(item).state if item else None
