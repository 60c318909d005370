"""Before anything is sent: serialise each event and validate it against the shared schema.

Validation runs on the exact JSON bytes that will be sent, parsed the way ingest parses them, and
on every event before the first call, so an invalid event stops the send with nothing sent. The
only records that skip it are ``poison`` events from fault injection.

:func:`poisoned` turns a poison event into the record another destination would hold (a task
body, an orders item) while keeping it invalid in the same fields, so the destination's consumer
quarantines it just as ingest would.

Example::

    >>> prepare_events([{"event_id": "...", "amount_cents": -1}], validate=True)
    Traceback (most recent call last):
    InvalidEventError: event 1 (...) is invalid: OrderEvent invalid: event_id: must be a UUID ...
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orderflow.errors import PoisonRecordError
from orderflow.events import (
    STATUS_FOR_EVENT,
    EventType,
    FulfilmentTask,
    NotificationTask,
    OrderEvent,
    OrderState,
    OrderStatus,
    parse_event,
)
from pydantic import BaseModel, ValidationError

from streamline.producers.generate import Fault, PlannedEvent

__all__ = ["InvalidEventError", "Prepared", "encode", "poisoned", "prepare_events"]

# uuid5 namespace for the task ids of poison tasks (a real task id is derived from a valid state).
_POISON_NAMESPACE = uuid.UUID("0f7b9f55-3f5e-4c1e-9a55-6d0c2b1e7a11")

# Where an OrderEvent field lands in each destination record, when the name differs.
_RENAMED: dict[type[BaseModel], dict[str, str]] = {
    OrderState: {"event_id": "last_event_id", "type": "status", "occurred_at": "updated_at"},
    NotificationTask: {"type": "status"},
    FulfilmentTask: {},
}


class InvalidEventError(ValueError):
    """An event fails the shared schema and fault injection did not ask for it."""


@dataclass(frozen=True)
class Prepared:
    """One event ready to map onto a destination; ``event`` is None exactly for poison."""

    position: int  # 1-based, in the order given
    event_id: str
    order_id: str
    fault: Fault
    payload: Mapping[str, Any]
    data: bytes  # the payload as sent to Kinesis
    event: OrderEvent | None


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON, the bytes a Kinesis record carries."""
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def prepare_events(
    events: Iterable[PlannedEvent | Mapping[str, Any]], *, validate: bool = True
) -> list[Prepared]:
    """Serialise and validate every event; mappings are plain order events (no fault).

    With ``validate=False`` an invalid event is kept and treated as poison instead of raising.

    Raises:
        InvalidEventError: naming the event's position and id and every bad field.
    """
    prepared: list[Prepared] = []
    for position, item in enumerate(events, start=1):
        if isinstance(item, PlannedEvent):
            payload: Mapping[str, Any] = item.payload
            fault: Fault = item.fault
            event_id, order_id = item.event_id, item.order_id
        elif isinstance(item, Mapping):
            payload = item
            fault = "none"
            event_id, order_id = str(item.get("event_id", "")), str(item.get("order_id", ""))
        else:
            raise InvalidEventError(
                f"event {position} is a {type(item).__name__}, not an event mapping"
            )
        try:
            data = encode(payload)
        except (TypeError, ValueError) as exc:
            raise InvalidEventError(f"event {position} ({event_id}) is not JSON: {exc}") from None
        event: OrderEvent | None = None
        if fault != "poison":
            try:
                event = parse_event(data)
            except PoisonRecordError as exc:
                if validate:
                    raise InvalidEventError(
                        f"event {position} ({event_id or 'no event_id'}) is invalid: {exc}"
                    ) from None
                fault = "poison"
        prepared.append(Prepared(position, event_id, order_id, fault, payload, data, event))
    return prepared


def _invalid_fields(payload: Mapping[str, Any]) -> list[str]:
    try:
        OrderEvent.model_validate_json(encode(payload))
    except ValidationError as exc:
        return sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]})
    return []


def _int(value: Any, floor: int) -> int:
    return value if type(value) is int and value >= floor else floor


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value else default


def poisoned(prepared: Prepared, model: type[BaseModel]) -> dict[str, Any]:
    """The record of kind ``model`` a poison event stands for, invalid in the event's bad fields.

    Valid fields are filled from the payload (or harmless defaults); each invalid field keeps its
    bad value under the destination's name for it, or is carried over unknown (extra fields are
    forbidden everywhere). Should the result still pass ``model``, a ``poison`` field is added:
    a poison record must never be accepted.
    """
    payload = prepared.payload
    try:
        status = STATUS_FOR_EVENT[EventType(payload.get("type"))]
    except (TypeError, ValueError):
        status = OrderStatus.CREATED
    common = {
        "order_id": prepared.order_id,
        "customer_id": _text(payload.get("customer_id"), "c-unknown"),
        "version": _int(payload.get("version"), 1),
    }
    record: dict[str, Any]
    if model is OrderState:
        record = {
            **common,
            "status": status.value,
            "last_event_id": prepared.event_id,
            "amount_cents": _int(payload.get("amount_cents"), 0),
            "updated_at": _text(payload.get("occurred_at"), datetime.now(UTC).isoformat()),
        }
    else:
        record = {
            "kind": "fulfil" if model is FulfilmentTask else "notify",
            "task_id": str(uuid.uuid5(_POISON_NAMESPACE, f"{model.__name__}#{prepared.event_id}")),
            **common,
            "event_id": prepared.event_id,
        }
        if model is FulfilmentTask:
            record["amount_cents"] = _int(payload.get("amount_cents"), 0)
        else:
            record["status"] = status.value
    renamed = _RENAMED[model]
    for name in _invalid_fields(payload):
        record[renamed.get(name, name)] = payload.get(name)
    try:
        model.model_validate_json(encode(record))
    except ValidationError:
        return record
    record["poison"] = "fault injection"
    return record
