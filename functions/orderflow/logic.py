"""Pure domain logic: no I/O, no clocks, no AWS. Handlers call one function from here.

Convergence rule: an order's state is the state of its *greatest* event, ordered by
``(version, event_id)``. A maximum does not depend on arrival order, so any interleaving,
duplication or redelivery of one order's events ends in the same state. ``event_id`` only
breaks ties between two different events that claim the same version (a producer bug),
deterministically instead of first-writer-wins. The orders table's conditional write
(:meth:`orderflow.dal.OrdersRepository.record`) enforces the same order atomically.

Effects contract (what the sink holds for an order, whatever order its events arrive in, however
often they are delivered, delayed or replayed; :func:`expected_effects` computes it):

- ``notify#<order>#<STATUS>``: one notification for each status that a valid event of the
  order carries, stale or not. A late event still notifies its status: the orders item keeps
  the *set* of statuses seen (``seen_<STATUS>`` marks), and ``changes`` notifies each status
  that enters the set. The notification carries the id of the first such event to arrive.
- ``fulfil#<order>``: exactly one fulfilment when any valid event of the order is PAID, SHIPPED
  or DELIVERED, even if the order is also cancelled (a cancellation after payment is a refund,
  outside this pipeline). It carries the id of the paid event that first reached the table.

Arrival order only decides *which* of two events carrying the same status is named on its
effect; a normal lifecycle has one event per status, so there every effect names exactly one
event.

Example::

    >>> record = record_event(None, created)         # first event: a new record to write
    >>> record_event(record, created) is None        # the same event again: nothing to do
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from orderflow.events import (
    FulfilmentTask,
    NotificationTask,
    OrderEvent,
    OrderRecord,
    OrderState,
    OrderStatus,
    StatusMark,
    Task,
)

__all__ = [
    "apply_event",
    "chaos_active",
    "expected_effects",
    "record_event",
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
    """Apply ``event`` to ``current``; ``None`` means stale or duplicate (the state stays).

    Example::

        >>> apply_event(None, created).status
        <OrderStatus.CREATED: 'CREATED'>
        >>> apply_event(apply_event(None, paid), created) is None   # older event arrives late
        True
    """
    candidate = state_for(event)
    return candidate if supersedes(candidate, current) else None


def record_event(current: OrderRecord | None, event: OrderEvent) -> OrderRecord | None:
    """The orders item after ``event``; ``None`` when nothing changes (write nothing).

    A newer event replaces the state; any event whose status the record has not seen adds its
    mark. So a stale event still records its status (its notification is due), and a duplicate
    changes nothing. ``OrdersRepository.record`` does exactly this with conditional writes.
    """
    mark = StatusMark(event.version, event.event_id)
    candidate = state_for(event)
    if current is None:
        return OrderRecord(candidate, {event.status: mark})
    seen = dict(current.seen)
    if supersedes(candidate, current.state):
        seen.setdefault(event.status, mark)
        return OrderRecord(candidate, seen, current.trace_header)
    if event.status in seen:
        return None
    seen[event.status] = mark
    return OrderRecord(current.state, seen, current.trace_header)


def _by_rank(statuses: Iterable[OrderStatus]) -> list[OrderStatus]:
    return sorted(statuses, key=lambda status: status.rank)


def tasks_for_change(old: OrderRecord | None, new: OrderRecord | None) -> list[Task]:
    """Tasks caused by one change of an order (one DynamoDB stream record).

    - a notification for each status that enters the order's seen set;
    - a fulfilment when the first paid-or-later status (PAID, SHIPPED, DELIVERED) enters it;
      the effects table keeps it at most once per order however often it is emitted.

    A removal (``new is None``) or a change that adds no status yields no task.
    """
    if new is None:
        return []
    before: Mapping[OrderStatus, StatusMark] = old.seen if old is not None else {}
    entered = _by_rank(status for status in new.seen if status not in before)
    if not entered:
        return []
    tasks: list[Task] = []
    if not any(status.needs_fulfilment for status in before):
        paid = [status for status in entered if status.needs_fulfilment]
        if paid:
            tasks.append(FulfilmentTask.for_mark(new.state, new.seen[paid[0]]))
    tasks.extend(NotificationTask.for_mark(new.state, s, new.seen[s]) for s in entered)
    return tasks


def expected_effects(events: Iterable[OrderEvent]) -> dict[str, set[str]]:
    """The effects contract (module docstring) for a set of valid events, any order.

    Returns each effect id the sink must hold, with the event ids it may name.

    Example::

        >>> expected_effects([created, paid])
        {'notify#o-1#CREATED': {created.event_id}, 'notify#o-1#PAID': {paid.event_id},
         'fulfil#o-1': {paid.event_id}}
    """
    effects: dict[str, set[str]] = {}
    for event in events:
        status = event.status
        effects.setdefault(f"notify#{event.order_id}#{status}", set()).add(event.event_id)
        if status.needs_fulfilment:
            effects.setdefault(f"fulfil#{event.order_id}", set()).add(event.event_id)
    return effects


def chaos_active(event: OrderEvent, now: datetime) -> bool:
    """True while the event's fault injection window is open (only honoured if CHAOS_ENABLED)."""
    return event.chaos is not None and now < event.chaos.transient_until
