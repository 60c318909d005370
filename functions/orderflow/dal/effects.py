"""The ``effects`` table: an exactly-once sink keyed by effect id (``fulfil#<order>``...)."""

from __future__ import annotations

from datetime import UTC, datetime

from orderflow.dal.clients import client

__all__ = ["EffectsRepository"]


class EffectsRepository:
    """Records side effects once; a redelivered task finds its effect already there.

    Example::

        >>> repo = EffectsRepository("effects")                               # doctest: +SKIP
        >>> repo.put_once("fulfil#o-1", order_id="o-1", kind="fulfil", event_id=eid)
        True
        >>> repo.put_once("fulfil#o-1", order_id="o-1", kind="fulfil", event_id=eid)
        False
    """

    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def put_once(self, effect_id: str, *, order_id: str, kind: str, event_id: str) -> bool:
        """Insert the effect if absent; True when this call created it."""
        ddb = client("dynamodb")
        try:
            ddb.put_item(
                TableName=self.table_name,
                Item={
                    "effect_id": {"S": effect_id},
                    "order_id": {"S": order_id},
                    "kind": {"S": kind},
                    "event_id": {"S": event_id},
                    "created_at": {"S": datetime.now(UTC).isoformat()},
                },
                ConditionExpression="attribute_not_exists(effect_id)",
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            return False
        return True
