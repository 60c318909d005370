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

The contract, the same at every boundary (events on the stream, order states in stream images,
tasks on the queues and the notifier's payload):

- **Strict types.** A number is a JSON number that is an integer: ``"1"``, ``1.0`` and ``true``
  are not versions. Text is a JSON string, never a number or bytes. Times are ISO 8601 strings
  with an offset, never epoch numbers. Enums take only their values.
- **Nothing implied.** Every field without a stated default is required; a task's ``kind``
  (which queue it belongs to) is required; unknown fields are refused (a producer on a newer
  schema must not be half-understood).
- **Bounded.** Text is 1-256 characters, versions 1 to 2**31-1, amounts 0 to 10**12 cents, a
  whole record at most :data:`MAX_RECORD_BYTES`, JSON at most ~200 levels deep.
- **Any bytes in, a value or a reason out.** :func:`parse_model`, :func:`read_json` and
  :func:`parse_order_image` never raise anything but :class:`PoisonRecordError`, whose reason
  names the field, whatever they are given: invalid UTF-8, binary, empty, deep or huge input,
  DynamoDB ``B``/``BS``/``NULL``/nested ``M`` attributes.

Cold start: the models are declared with ``defer_build``, and each handler builds the ones it
uses at INIT with :func:`build_models`, so a function pays only for its own models. This module
also does without ``from __future__ import annotations``: pydantic would otherwise re-evaluate
every field annotation from its string form at class creation.

Why one module of ~560 lines: it is the contract itself. The rules above hold for every model
below, and a reviewer checks a new field against them in one read; about a quarter of it is
this docstring.
"""

import base64
import binascii
import enum
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Self, TypeVar

from orderflow.errors import PoisonRecordError
from orderflow.tracing import ITEM_ATTRIBUTE
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
)
from pydantic_core import from_json

__all__ = [
    "MAX_RECORD_BYTES",
    "SEEN_ATTRIBUTE_PREFIX",
    "ChaosSpec",
    "EventType",
    "FulfilmentTask",
    "NotificationTask",
    "OrderEvent",
    "OrderRecord",
    "OrderState",
    "OrderStatus",
    "StatusMark",
    "Task",
    "build_models",
    "fifo_group_id",
    "parse_event",
    "parse_model",
    "parse_order_image",
    "parse_task",
    "read_json",
    "seen_attribute",
    "sqs_deduplication_id",
    "summarise_validation_error",
]

#: Largest record any boundary accepts. A valid event, state or task is under 2 KiB (every field
#: is bounded), so anything larger is poison, refused before it is parsed.
MAX_RECORD_BYTES = 64 * 1024
MAX_TEXT_CHARS = 256
MAX_VERSION = 2**31 - 1
MAX_AMOUNT_CENTS = 10**12

# uuid5 namespace for task ids: the same change always yields the same task id, so a
# redelivered stream record produces a message the FIFO queue and the effects table dedup.
_TASK_NAMESPACE = uuid.UUID("5d0c3b8e-9f7e-4c1b-a8f4-2f4b8c6a1e01")


def _uuid_string(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ValueError("must be a UUID string") from exc


def _timestamp(value: object) -> datetime:
    """An ISO 8601 string with an offset (or an aware datetime built by our own code)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and 0 < len(value) <= 64 and ("T" in value or " " in value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 date-time string") from None
    else:
        # Epoch numbers and digit strings are refused: "1700000000" is ambiguous (s or ms).
        raise ValueError("must be an ISO 8601 date-time string")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("must carry a UTC offset (for example Z or +00:00)")
    return parsed


UuidStr = Annotated[str, Field(strict=True), AfterValidator(_uuid_string)]
Text = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_TEXT_CHARS)]
Version = Annotated[int, Field(strict=True, ge=1, le=MAX_VERSION)]
Cents = Annotated[int, Field(strict=True, ge=0, le=MAX_AMOUNT_CENTS)]
Timestamp = Annotated[datetime, PlainValidator(_timestamp)]
# Kept for readers of older code: the strict text type.
NonEmptyStr = Text


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

    transient_until: Timestamp


class OrderEvent(_Frozen):
    """One event on the ``order-events`` stream (partition key = ``order_id``)."""

    event_id: UuidStr
    order_id: Text
    version: Version
    type: EventType
    occurred_at: Timestamp
    customer_id: Text
    amount_cents: Cents
    chaos: ChaosSpec | None = None

    @property
    def status(self) -> OrderStatus:
        return STATUS_FOR_EVENT[self.type]


class OrderState(_Frozen):
    """The business part of one ``orders`` item (see :class:`OrderRecord` for the rest)."""

    order_id: Text
    status: OrderStatus
    version: Version
    last_event_id: UuidStr
    amount_cents: Cents
    customer_id: Text
    updated_at: Timestamp


def _task_id(*parts: object) -> str:
    return str(uuid.uuid5(_TASK_NAMESPACE, "#".join(str(part) for part in parts)))


class FulfilmentTask(_Frozen):
    """Body of a ``fulfilment.fifo`` message (group = :func:`fifo_group_id`, dedup = task id)."""

    kind: Literal["fulfil"]
    task_id: UuidStr
    order_id: Text
    customer_id: Text
    amount_cents: Cents
    version: Version
    event_id: UuidStr

    @classmethod
    def for_mark(cls, state: OrderState, mark: "StatusMark") -> Self:
        """The fulfilment of ``state``'s order, caused by the event ``mark`` names."""
        return cls(
            kind="fulfil",
            task_id=_task_id("fulfil", state.order_id, mark.version, mark.event_id),
            order_id=state.order_id,
            customer_id=state.customer_id,
            amount_cents=state.amount_cents,
            version=mark.version,
            event_id=mark.event_id,
        )

    @classmethod
    def for_state(cls, state: OrderState) -> Self:
        return cls.for_mark(state, StatusMark(state.version, state.last_event_id))

    @property
    def effect_id(self) -> str:
        return f"fulfil#{self.order_id}"


class NotificationTask(_Frozen):
    """Body of a ``notifications`` message and the payload notifier is invoked with."""

    kind: Literal["notify"]
    task_id: UuidStr
    order_id: Text
    customer_id: Text
    status: OrderStatus
    version: Version
    event_id: UuidStr

    @classmethod
    def for_mark(cls, state: OrderState, status: OrderStatus, mark: "StatusMark") -> Self:
        """The notification that ``state``'s order reached ``status`` (by the event ``mark``)."""
        return cls(
            kind="notify",
            task_id=_task_id("notify", state.order_id, status, mark.version),
            order_id=state.order_id,
            customer_id=state.customer_id,
            status=status,
            version=mark.version,
            event_id=mark.event_id,
        )

    @classmethod
    def for_state(cls, state: OrderState) -> Self:
        return cls.for_mark(state, state.status, StatusMark(state.version, state.last_event_id))

    @property
    def effect_id(self) -> str:
        return f"notify#{self.order_id}#{self.status}"


Task = FulfilmentTask | NotificationTask
M = TypeVar("M", bound=BaseModel)


# --- the orders item: state, statuses seen, trace header ---------------------------------------

#: ``seen_<STATUS>`` attributes of an orders item: ``"<version>|<event_id>"`` of the first valid
#: event that carried that status. They make the statuses an order went through a *set* that
#: does not depend on the order events arrive in (see ``orderflow.logic``).
SEEN_ATTRIBUTE_PREFIX = "seen_"
_MARK = re.compile(r"([1-9][0-9]{0,9})\|([0-9a-f-]{36})")


@dataclass(frozen=True, slots=True)
class StatusMark:
    """Which event first brought an order to a status: its version and id."""

    version: int
    event_id: str

    def render(self) -> str:
        return f"{self.version}|{self.event_id}"

    @classmethod
    def parse(cls, name: str, value: object) -> "StatusMark":
        match = _MARK.fullmatch(value) if isinstance(value, str) else None
        if match is None or int(match[1]) > MAX_VERSION:
            raise PoisonRecordError(f"OrderState invalid: {name}: must be '<version>|<event id>'")
        try:
            event_id = _uuid_string(match[2])
        except ValueError:
            raise PoisonRecordError(f"OrderState invalid: {name}: event id is not a UUID") from None
        return cls(int(match[1]), event_id)


def seen_attribute(status: OrderStatus) -> str:
    """The item attribute holding the mark of ``status``."""
    return SEEN_ATTRIBUTE_PREFIX + status.value


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One orders item as a stream image shows it.

    ``seen`` holds every status the order's valid events carried, with the event that first did
    (always including the state's own status); ``trace_header`` is the writing ingest
    invocation's X-Ray header (storage, not schema: ``orderflow.tracing``).
    """

    state: OrderState
    seen: Mapping[OrderStatus, StatusMark]
    trace_header: str | None = None

    @classmethod
    def of(cls, state: OrderState) -> "OrderRecord":
        """The record of an item that holds ``state`` and nothing else (a plain writer's)."""
        return cls(state, {state.status: StatusMark(state.version, state.last_event_id)})


# --- reading any bytes -----------------------------------------------------------------------


def read_json(
    data: bytes | bytearray | str, *, what: str = "payload", limit: int = MAX_RECORD_BYTES
) -> Any:
    """Decode JSON from any input: the value, or PoisonRecordError naming why not.

    Bounded by ``limit`` (a record's :data:`MAX_RECORD_BYTES` unless the caller reads something
    larger, such as a failure message around a record) and pydantic-core's nesting limit, so a
    hostile record
    (10,000 levels deep, megabytes, not UTF-8) costs microseconds and never a RecursionError.

    Example::

        >>> read_json('[' * 5000)
        Traceback (most recent call last):
        PoisonRecordError: payload is not JSON: recursion limit exceeded at line 1 column 255
    """
    if len(data) > limit:
        raise PoisonRecordError(f"{what} larger than {limit} bytes ({len(data)})")
    try:
        return from_json(data)
    except (ValueError, TypeError, UnicodeError) as exc:  # TypeError: text with lone surrogates
        raise PoisonRecordError(f"{what} is not JSON: {_one_line(str(exc))}") from None


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        parts.append(f"{where}: {_one_line(item['msg'], 160)}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return f"{error.title} invalid: " + "; ".join(parts)


def parse_model(model: type[M], data: bytes | bytearray | str | Mapping[str, Any]) -> M:
    """Validate ``data`` (JSON bytes/str or a mapping) against ``model``.

    Raises:
        PoisonRecordError: with a one-line reason when the payload can never be valid, for any
            input whatsoever (see the module docstring).
    """
    if isinstance(data, (bytes, bytearray, str)) and len(data) > MAX_RECORD_BYTES:
        raise PoisonRecordError(
            f"{model.__name__} invalid: record larger than {MAX_RECORD_BYTES} bytes ({len(data)})"
        )
    try:
        if isinstance(data, (bytes, bytearray, str)):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise PoisonRecordError(summarise_validation_error(exc)) from exc
    except (RecursionError, ValueError, TypeError) as exc:
        # Not reachable through pydantic-core's bounded parser; kept so no input can escape.
        raise PoisonRecordError(f"{model.__name__} invalid: {type(exc).__name__}") from exc


def parse_event(data: bytes | bytearray | str | Mapping[str, Any]) -> OrderEvent:
    """Parse one order event; see the module docstring for an example."""
    return parse_model(OrderEvent, data)


def parse_task(data: bytes | bytearray | str | Mapping[str, Any]) -> Task:
    """Parse a task body of either kind, choosing the model from its required ``kind`` field."""
    decoded = (
        read_json(data, what="task body") if isinstance(data, (bytes, bytearray, str)) else data
    )
    if not isinstance(decoded, Mapping):
        raise PoisonRecordError("task body is not a JSON object")
    kind = decoded.get("kind")
    if kind == "fulfil":
        return parse_model(FulfilmentTask, decoded)
    if kind == "notify":
        return parse_model(NotificationTask, decoded)
    if kind is None:
        raise PoisonRecordError("task invalid: kind: Field required ('fulfil' or 'notify')")
    shown = kind if isinstance(kind, str) and len(kind) <= 40 else type(kind).__name__
    raise PoisonRecordError(f"task invalid: kind: unknown task kind {shown!r}")


# --- DynamoDB stream images ------------------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]{1,38}")


def _attribute(name: str, value: object, depth: int = 0) -> Any:
    """A typed DynamoDB value (``{"S": ...}``) as plain data, refusing what a state cannot hold.

    Numbers become ints only when they are integers (``"1.5"`` stays a float the int fields
    refuse); binary becomes bytes (which text fields refuse); sets become lists.
    """
    if depth > 32 or not isinstance(value, Mapping) or len(value) != 1:
        raise PoisonRecordError(f"OrderState invalid: {name}: not a DynamoDB attribute value")
    ((kind, raw),) = value.items()
    if kind == "S" and isinstance(raw, str):
        return raw
    if kind == "N" and isinstance(raw, str):
        if _INTEGER.fullmatch(raw):
            return int(raw)
        try:
            return float(raw)
        except ValueError:
            raise PoisonRecordError(f"OrderState invalid: {name}: malformed number") from None
    if kind == "BOOL" and isinstance(raw, bool):
        return raw
    if kind == "NULL":
        return None
    if kind == "B" and isinstance(raw, (str, bytes, bytearray)):
        return _binary(name, raw)
    if kind in ("SS", "NS", "BS") and isinstance(raw, list):
        return [_attribute(name, {kind[0]: item}, depth + 1) for item in raw]
    if kind == "L" and isinstance(raw, list):
        return [_attribute(name, item, depth + 1) for item in raw]
    if kind == "M" and isinstance(raw, Mapping):
        return {str(k): _attribute(f"{name}.{k}", v, depth + 1) for k, v in raw.items()}
    raise PoisonRecordError(f"OrderState invalid: {name}: unsupported DynamoDB type {kind[:8]!r}")


def _binary(name: str, raw: str | bytes | bytearray) -> bytes:
    # Stream records carry B as base64 text in their JSON; boto3 hands bytes.
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise PoisonRecordError(f"OrderState invalid: {name}: malformed binary") from None


def parse_order_image(image: object) -> OrderRecord:
    """An orders item from a stream image (typed DynamoDB JSON), strictly.

    The trace header and ``seen_*`` marks are split off; the rest must be an
    :class:`OrderState`. Any other attribute, type or shape is poison with the field named.

    Example::

        >>> parse_order_image({"order_id": {"S": "o-1"}, "version": {"S": "1"}, ...})
        Traceback (most recent call last):
        PoisonRecordError: OrderState invalid: version: Input should be a valid integer
    """
    if not isinstance(image, Mapping):
        raise PoisonRecordError("OrderState invalid: the image is not a map of attributes")
    plain: dict[str, Any] = {}
    marks: dict[OrderStatus, StatusMark] = {}
    trace_header: str | None = None
    for key, value in image.items():
        name = str(key)[:64]
        if name == ITEM_ATTRIBUTE:
            header = _attribute(name, value)
            trace_header = header if isinstance(header, str) else None
        elif name.startswith(SEEN_ATTRIBUTE_PREFIX):
            try:
                status = OrderStatus(name[len(SEEN_ATTRIBUTE_PREFIX) :])
            except ValueError:
                raise PoisonRecordError(f"OrderState invalid: {name}: unknown status") from None
            marks[status] = StatusMark.parse(name, _attribute(name, value))
        else:
            plain[name] = _attribute(name, value)
    state = parse_model(OrderState, plain)
    marks.setdefault(state.status, StatusMark(state.version, state.last_event_id))
    return OrderRecord(state, marks, trace_header)


# --- SQS identifiers -------------------------------------------------------------------------

# SQS: MessageGroupId and MessageDeduplicationId are 1-128 characters of a-z, A-Z, 0-9 and
# punctuation (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~).
_SQS_ID = re.compile(r"[A-Za-z0-9!-/:-@\[-`{-~]{1,128}")


def fifo_group_id(order_id: str) -> str:
    """The FIFO MessageGroupId of an order: the order id when SQS accepts it, else a hash.

    Every message of an order gets the same group, so per-order order holds either way; the
    hash form (``h-`` + 64 hex digits) cannot collide with an accepted order id that short.

    Example::

        >>> fifo_group_id("o-1"), fifo_group_id("ordre n°1")[:10]
        ('o-1', 'h-5f8b1c2e')
    """
    if _SQS_ID.fullmatch(order_id) and not order_id.startswith("h-"):
        return order_id
    return "h-" + hashlib.sha256(order_id.encode("utf-8", "surrogatepass")).hexdigest()


def sqs_deduplication_id(value: str) -> str:
    """A MessageDeduplicationId from any text: itself when SQS accepts it, else its hash."""
    if _SQS_ID.fullmatch(value):
        return value
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
