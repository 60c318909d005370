"""Pure domain logic: no I/O, no clocks, no AWS. Handlers call one function from here.

Convergence rule: an order's state is the state of its *greatest* event, ordered by
``(version, event_id)``. A maximum does not depend on arrival order, so any interleaving,
duplication or redelivery of one order's events ends in the same state. ``event_id`` only
breaks ties between two different events that claim the same version (a producer bug),
deterministically instead of first-writer-wins. The orders table's conditional write
(:meth:`orderflow.dal.OrdersRepository.put_if_newer`) enforces the same order atomically.

Example::

    >>> state = apply_event(None, event)            # first event: a new state to write
    >>> apply_event(state, event) is None           # the same event again: nothing to do
    True
"""

from __future__ import annotations

from datetime import datetime

from orderflow.events import (
    FulfilmentTask,
    NotificationTask,
    OrderEvent,
    OrderState,
    Task,
)

__all__ = [
    "apply_event",
    "chaos_active",
    "state_for",
    "supersedes",
    "tasks_for_change",
]


def state_for(event: OrderEvent) -> OrderState:
    """The order state an event stands for, on its own."""
    return OrderState(
        order_id=event.order_id,
        status=event.status,
        version=event.version,
        last_event_id=event.event_id,
        amount_cents=event.amount_cents,
        customer_id=event.customer_id,
        # The event's own time, not "now": states built from the same events must be equal.
        updated_at=event.occurred_at,
    )


def supersedes(candidate: OrderState, current: OrderState | None) -> bool:
    """True when ``candidate`` must replace ``current``: greater ``(version, event_id)``."""
    if current is None:
        return True
    return (candidate.version, candidate.last_event_id) > (current.version, current.last_event_id)


def apply_event(current: OrderState | None, event: OrderEvent) -> OrderState | None:
    """Apply ``event`` to ``current``; ``None`` means stale or duplicate (write nothing).

    Example::

        >>> apply_event(None, created).status
        <OrderStatus.CREATED: 'CREATED'>
        >>> apply_event(apply_event(None, paid), created) is None   # older event arrives late
        True
    """
    candidate = state_for(event)
    return candidate if supersedes(candidate, current) else None


def tasks_for_change(old: OrderState | None, new: OrderState | None) -> list[Task]:
    """Tasks caused by one change of an order (one DynamoDB stream record).

    - a notification for each status the order enters;
    - a fulfilment task when the order crosses into a paid, not cancelled status (PAID, or
      SHIPPED/DELIVERED when PAID was skipped by reordering); the effects table keeps it at
      most once per order however often it is emitted.

    A removal (``new is None``) or a change that keeps the status yields no task.
    """
    if new is None:
        return []
    if old is not None and old.status is new.status:
        return []
    tasks: list[Task] = []
    if new.status.needs_fulfilment and (old is None or not old.status.needs_fulfilment):
        tasks.append(FulfilmentTask.for_state(new))
    tasks.append(NotificationTask.for_state(new))
    return tasks


def chaos_active(event: OrderEvent, now: datetime) -> bool:
    """True while the event's fault injection window is open (only honoured if CHAOS_ENABLED)."""
    return event.chaos is not None and now < event.chaos.transient_until
