"""Planned order events: short order lifecycles, with poison and transient faults on request.

Each order gets a lifecycle in version order (OrderCreated v1, OrderPaid v2, OrderShipped v3,
OrderDelivered v4; one to four events, some ending in OrderCancelled), and the orders are
interleaved at random while each order's own events keep their version order. Order ids share a
random prefix per call, so two runs never write to each other's orders.

Faults, each on about its rate of the events (rounded; exactly reproducible with a seed):

- ``transient``: the event carries ``chaos.transient_until = now + transient_for``, so ingest
  (with CHAOS_ENABLED) fails it transiently until then. Only an order's *last* event gets it:
  a late replay of that event is never superseded by a newer version of the same order.
- ``poison``: a schema-invalid record (a negative ``amount_cents`` or an unknown field) that
  still carries a valid UUID ``event_id`` and ``order_id``, so it can be found in quarantine.
  Each is the only event of a fresh order, so it disturbs no other order's sequence.

Example::

    >>> events = generate_events(10, poison_rate=0.1, seed=7)
    >>> len(events), sum(e.fault == "poison" for e in events)
    (10, 1)
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = ["LIFECYCLES", "Fault", "PlannedEvent", "generate_events"]

Fault = Literal["none", "poison", "transient"]

#: Every lifecycle an order can have; versions are the positions (1-based).
LIFECYCLES: tuple[tuple[str, ...], ...] = (
    ("OrderCreated",),
    ("OrderCreated", "OrderPaid"),
    ("OrderCreated", "OrderPaid", "OrderShipped"),
    ("OrderCreated", "OrderPaid", "OrderShipped", "OrderDelivered"),
    ("OrderCreated", "OrderCancelled"),
    ("OrderCreated", "OrderPaid", "OrderCancelled"),
)
# About one order in six is cancelled; the rest spread evenly over the happy-path lengths.
_WEIGHTS = (5, 5, 5, 5, 2, 2)
_POISON_KINDS = ("negative_amount", "unknown_field")


@dataclass(frozen=True)
class PlannedEvent:
    """One event to send: its identity, its fault, and the exact payload that is sent.

    ``payload`` is JSON-ready (strings for times); for ``poison`` it is invalid on purpose.
    """

    event_id: str
    order_id: str
    version: int
    type: str
    fault: Fault
    payload: dict[str, Any]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate_events(
    count: int,
    *,
    poison_rate: float = 0.0,
    transient_rate: float = 0.0,
    transient_for: timedelta = timedelta(seconds=2),
    seed: int | None = None,
    now: datetime | None = None,
) -> list[PlannedEvent]:
    """Exactly ``count`` planned events (see the module docstring for the rules).

    Raises:
        ValueError: ``count`` is negative or a rate is outside 0..1.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    for name, rate in (("poison_rate", poison_rate), ("transient_rate", transient_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {rate}")
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    prefix = f"o-{rng.getrandbits(32):08x}"

    poison_count = round(count * poison_rate)
    # Lifecycles first, cut to fit exactly count - poison_count events.
    lifecycles: list[tuple[str, ...]] = []
    remaining = count - poison_count
    while remaining > 0:
        lifecycle = rng.choices(LIFECYCLES, weights=_WEIGHTS)[0]
        if len(lifecycle) > remaining:
            lifecycle = LIFECYCLES[remaining - 1]  # a happy-path prefix of the right length
        lifecycles.append(lifecycle)
        remaining -= len(lifecycle)
    orders: list[tuple[str, ...]] = lifecycles + [("OrderCreated",)] * poison_count
    poisoned = set(range(len(lifecycles), len(orders)))
    # At most one transient event per order (its last), so the count is capped by the orders.
    transient_orders = set(
        rng.sample(range(len(lifecycles)), min(len(lifecycles), round(count * transient_rate)))
    )

    # A random interleaving that keeps each order's own events in version order.
    slots = [index for index, lifecycle in enumerate(orders) for _ in lifecycle]
    rng.shuffle(slots)
    customers = [f"c-{rng.randrange(1000):03d}" for _ in orders]
    amounts = [rng.randrange(100, 100_000) for _ in orders]
    next_version = [1] * len(orders)
    transient_until = (now + transient_for).isoformat()

    events: list[PlannedEvent] = []
    for position, index in enumerate(slots):
        version = next_version[index]
        next_version[index] += 1
        event_type = orders[index][version - 1]
        order_id = f"{prefix}-{index:05d}"
        event_id = _uuid(rng)
        payload: dict[str, Any] = {
            "event_id": event_id,
            "order_id": order_id,
            "version": version,
            "type": event_type,
            # Ascending in send order, ending at now: versions of one order never go back in time.
            "occurred_at": (now - timedelta(milliseconds=len(slots) - position)).isoformat(),
            "customer_id": customers[index],
            "amount_cents": amounts[index],
        }
        fault: Fault = "none"
        if index in poisoned:
            fault = "poison"
            if rng.choice(_POISON_KINDS) == "negative_amount":
                payload["amount_cents"] = -payload["amount_cents"]
            else:
                payload["coupon_code"] = "FAULT-INJECTION"  # extra fields are forbidden
        elif index in transient_orders and version == len(orders[index]):
            fault = "transient"
            payload["chaos"] = {"transient_until": transient_until}
        events.append(PlannedEvent(event_id, order_id, version, event_type, fault, payload))
    return events
