"""The one schema of the pipeline: order events, order state and the tasks derived from it.

Producers, handlers, the recovery workflow and tests all import these models, so a payload that
one part accepts is accepted by every other part.

Example::

    >>> event = parse_event(
    ...     '{"event_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "order_id": "o-1",'
    ...     ' "version": 1, "type": "OrderCreated", "occurred_at": "2024-01-01T00:00:00Z",'
    ...     ' "customer_id": "c-1", "amount_cents": 1250}'
    ... )
    >>> event.status
    <OrderStatus.CREATED: 'CREATED'>

Cold start: the models are declared with ``defer_build``, and each handler builds the ones it
uses at INIT with :func:`build_models`, so a function pays only for its own models. This module
also does without ``from __future__ import annotations``: pydantic would otherwise re-evaluate
every field annotation from its string form at class creation.
"""

import enum
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Self, TypeVar

from orderflow.errors import PoisonRecordError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

__all__ = [
    "ChaosSpec",
    "EventType",
    "FulfilmentTask",
    "NotificationTask",
    "OrderEvent",
    "OrderState",
    "OrderStatus",
    "Task",
    "build_models",
    "parse_event",
    "parse_model",
    "parse_task",
    "summarise_validation_error",
]

# uuid5 namespace for task ids: the same change always yields the same task id, so a
# redelivered stream record produces a message the FIFO queue and the effects table dedup.
_TASK_NAMESPACE = uuid.UUID("5d0c3b8e-9f7e-4c1b-a8f4-2f4b8c6a1e01")


def _uuid_string(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ValueError("must be a UUID string") from exc


UuidStr = Annotated[str, AfterValidator(_uuid_string)]
NonEmptyStr = Annotated[str, Field(min_length=1, max_length=256)]


class EventType(enum.StrEnum):
    """What happened to an order (the ``type`` field of an event)."""

    ORDER_CREATED = "OrderCreated"
    ORDER_PAID = "OrderPaid"
    ORDER_SHIPPED = "OrderShipped"
    ORDER_DELIVERED = "OrderDelivered"
    ORDER_CANCELLED = "OrderCancelled"


class OrderStatus(enum.StrEnum):
    """Status of an order; ``rank`` orders the happy path, CANCELLED is terminal."""

    CREATED = "CREATED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @property
    def needs_fulfilment(self) -> bool:
        """True once the order is paid and not cancelled."""
        return self is not OrderStatus.CANCELLED and self.rank >= OrderStatus.PAID.rank


_RANKS = {
    OrderStatus.CREATED: 1,
    OrderStatus.PAID: 2,
    OrderStatus.SHIPPED: 3,
    OrderStatus.DELIVERED: 4,
    OrderStatus.CANCELLED: 5,
}

STATUS_FOR_EVENT: Mapping[EventType, OrderStatus] = {
    EventType.ORDER_CREATED: OrderStatus.CREATED,
    EventType.ORDER_PAID: OrderStatus.PAID,
    EventType.ORDER_SHIPPED: OrderStatus.SHIPPED,
    EventType.ORDER_DELIVERED: OrderStatus.DELIVERED,
    EventType.ORDER_CANCELLED: OrderStatus.CANCELLED,
}


class _Frozen(BaseModel):
    # Unknown fields are poison: a producer on a newer schema must not be half-understood.
    # defer_build: validators are built by build_models() or on first use (module docstring).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ChaosSpec(_Frozen):
    """Fault injection: fail transiently until ``transient_until`` (only if CHAOS_ENABLED)."""

    transient_until: AwareDatetime


class OrderEvent(_Frozen):
    """One event on the ``order-events`` stream (partition key = ``order_id``)."""

    event_id: UuidStr
    order_id: NonEmptyStr
    version: Annotated[int, Field(ge=1, strict=True)]
    type: EventType
    occurred_at: AwareDatetime
    customer_id: NonEmptyStr
    amount_cents: Annotated[int, Field(ge=0, strict=True)]
    chaos: ChaosSpec | None = None

    @property
    def status(self) -> OrderStatus:
        return STATUS_FOR_EVENT[self.type]


class OrderState(_Frozen):
    """One item of the ``orders`` table (also what the DynamoDB stream images hold)."""

    order_id: NonEmptyStr
    status: OrderStatus
    version: Annotated[int, Field(ge=1)]
    last_event_id: UuidStr
    amount_cents: Annotated[int, Field(ge=0)]
    customer_id: NonEmptyStr
    updated_at: datetime


def _task_id(*parts: object) -> str:
    return str(uuid.uuid5(_TASK_NAMESPACE, "#".join(str(part) for part in parts)))


class FulfilmentTask(_Frozen):
    """Body of a ``fulfilment.fifo`` message (group = order id, dedup = task id)."""

    kind: Literal["fulfil"] = "fulfil"
    task_id: UuidStr
    order_id: NonEmptyStr
    customer_id: NonEmptyStr
    amount_cents: Annotated[int, Field(ge=0)]
    version: Annotated[int, Field(ge=1)]
    event_id: UuidStr

    @classmethod
    def for_state(cls, state: OrderState) -> Self:
        return cls(
            task_id=_task_id("fulfil", state.order_id, state.version, state.last_event_id),
            order_id=state.order_id,
            customer_id=state.customer_id,
            amount_cents=state.amount_cents,
            version=state.version,
            event_id=state.last_event_id,
        )

    @property
    def effect_id(self) -> str:
        return f"fulfil#{self.order_id}"


class NotificationTask(_Frozen):
    """Body of a ``notifications`` message and the payload notifier is invoked with."""

    kind: Literal["notify"] = "notify"
    task_id: UuidStr
    order_id: NonEmptyStr
    customer_id: NonEmptyStr
    status: OrderStatus
    version: Annotated[int, Field(ge=1)]
    event_id: UuidStr

    @classmethod
    def for_state(cls, state: OrderState) -> Self:
        return cls(
            task_id=_task_id("notify", state.order_id, state.status, state.version),
            order_id=state.order_id,
            customer_id=state.customer_id,
            status=state.status,
            version=state.version,
            event_id=state.last_event_id,
        )

    @property
    def effect_id(self) -> str:
        return f"notify#{self.order_id}#{self.status}"


Task = FulfilmentTask | NotificationTask
M = TypeVar("M", bound=BaseModel)


def build_models(*models: type[BaseModel]) -> None:
    """Build the validators of ``models`` now; handlers call this at INIT for the models they use.

    Example::

        >>> build_models(OrderEvent, OrderState)    # ingest, at module scope
    """
    for model in models:
        model.model_rebuild()


def summarise_validation_error(error: ValidationError, limit: int = 3) -> str:
    """One line naming each bad field, e.g. ``"amount_cents: Input should be ... >= 0"``."""
    parts = []
    for item in error.errors()[:limit]:
        where = ".".join(str(loc) for loc in item["loc"]) or "payload"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return f"{error.title} invalid: " + "; ".join(parts)


def parse_model(model: type[M], data: bytes | str | Mapping[str, Any]) -> M:
    """Validate ``data`` (JSON bytes/str or a mapping) against ``model``.

    Raises:
        PoisonRecordError: with a one-line reason when the payload can never be valid.
    """
    try:
        if isinstance(data, (bytes, str)):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise PoisonRecordError(summarise_validation_error(exc)) from exc


def parse_event(data: bytes | str | Mapping[str, Any]) -> OrderEvent:
    """Parse one order event; see the module docstring for an example."""
    return parse_model(OrderEvent, data)


def parse_task(data: bytes | str | Mapping[str, Any]) -> Task:
    """Parse a task body of either kind, choosing the model from its ``kind`` field."""
    if isinstance(data, (bytes, str)):
        try:
            decoded = json.loads(data)
        except ValueError as exc:
            raise PoisonRecordError(f"task body is not JSON: {exc}") from exc
    else:
        decoded = data
    if not isinstance(decoded, Mapping):
        raise PoisonRecordError("task body is not a JSON object")
    kind = decoded.get("kind")
    if kind == "fulfil":
        return parse_model(FulfilmentTask, decoded)
    if kind == "notify":
        return parse_model(NotificationTask, decoded)
    raise PoisonRecordError(f"unknown task kind {kind!r}")
