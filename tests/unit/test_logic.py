"""Pure domain logic: convergence of one order's events and the tasks a change causes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from orderflow.events import (
    EventType,
    FulfilmentTask,
    NotificationTask,
    OrderEvent,
    OrderRecord,
    OrderStatus,
)
from orderflow.logic import (
    apply_event,
    chaos_active,
    expected_effects,
    record_event,
    state_for,
    tasks_for_change,
)

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def event(version: int, kind: EventType, order_id: str = "o-1", **extra: object) -> OrderEvent:
    return OrderEvent.model_validate(
        {
            "event_id": str(uuid.UUID(int=version)),
            "order_id": order_id,
            "version": version,
            "type": kind,
            "occurred_at": T0 + timedelta(minutes=version),
            "customer_id": "c-1",
            "amount_cents": 100 * version,
            **extra,
        }
    )


def fold(events: list[OrderEvent]):
    state = None
    for item in events:
        state = apply_event(state, item) or state
    return state


# One order's history: distinct versions, any types; then any interleaving with duplicates.
histories = st.lists(
    st.tuples(st.integers(1, 50), st.sampled_from(list(EventType))),
    min_size=1,
    max_size=12,
    unique_by=lambda pair: pair[0],
)


@given(history=histories, data=st.data())
@settings(max_examples=300, deadline=None)
def test_given_any_interleaving_with_duplicates_when_folded_then_state_is_the_highest_version(
    history, data
):
    events = [event(version, kind) for version, kind in history]
    delivered = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events)))))

    final = fold(list(delivered))

    assert final == state_for(max(events, key=lambda item: item.version))
    assert final == fold(sorted(events, key=lambda item: item.version))


def test_given_the_same_event_twice_when_applied_then_the_second_is_a_no_op():
    created = event(1, EventType.ORDER_CREATED)
    state = apply_event(None, created)

    assert state is not None and state.status is OrderStatus.CREATED
    assert apply_event(state, created) is None


def test_given_an_older_event_arriving_late_when_applied_then_it_is_stale():
    paid = apply_event(None, event(2, EventType.ORDER_PAID))

    assert apply_event(paid, event(1, EventType.ORDER_CREATED)) is None


def test_given_two_events_claiming_one_version_when_applied_in_either_order_then_same_winner():
    first = event(3, EventType.ORDER_SHIPPED).model_copy(update={"event_id": str(uuid.UUID(int=7))})
    second = event(3, EventType.ORDER_CANCELLED).model_copy(
        update={"event_id": str(uuid.UUID(int=9))}
    )

    assert fold([first, second]) == fold([second, first]) == state_for(second)


def plain(version: int, kind: EventType) -> OrderRecord:
    """The record a plain writer leaves: the state and the mark of its own status only."""
    return OrderRecord.of(state_for(event(version, kind)))


def test_given_created_to_paid_when_tasks_derived_then_fulfilment_and_notification():
    old = plain(1, EventType.ORDER_CREATED)
    new = plain(2, EventType.ORDER_PAID)

    tasks = tasks_for_change(old, new)

    assert [type(task) for task in tasks] == [FulfilmentTask, NotificationTask]
    assert tasks[1].status is OrderStatus.PAID
    assert tasks == tasks_for_change(old, new), "task ids must be deterministic"


def test_given_paid_skipped_by_reordering_when_created_to_shipped_then_fulfilment_still_sent():
    tasks = tasks_for_change(plain(1, EventType.ORDER_CREATED), plain(3, EventType.ORDER_SHIPPED))

    assert any(isinstance(task, FulfilmentTask) for task in tasks)


def test_given_shipped_to_delivered_when_tasks_derived_then_only_a_notification():
    shipped = record_event(None, event(3, EventType.ORDER_SHIPPED))
    delivered = record_event(shipped, event(4, EventType.ORDER_DELIVERED))

    assert [type(task) for task in tasks_for_change(shipped, delivered)] == [NotificationTask]


def test_given_a_cancellation_or_removal_or_same_status_then_no_fulfilment():
    created = plain(1, EventType.ORDER_CREATED)
    cancelled = record_event(created, event(2, EventType.ORDER_CANCELLED))
    paid = plain(2, EventType.ORDER_PAID)
    paid_again = record_event(paid, event(3, EventType.ORDER_PAID))

    assert [type(task) for task in tasks_for_change(created, cancelled)] == [NotificationTask]
    assert tasks_for_change(paid, None) == []
    assert tasks_for_change(paid, paid_again) == []


def test_given_a_late_older_event_when_recorded_then_its_status_still_notifies():
    # Given DELIVERED recorded first (its SHIPPED was retried and replayed late)
    delivered = record_event(None, event(4, EventType.ORDER_DELIVERED))
    late = record_event(delivered, event(3, EventType.ORDER_SHIPPED))

    # Then the state stays at DELIVERED, and SHIPPED is notified with its own event
    assert late is not None and late.state == delivered.state
    (task,) = tasks_for_change(delivered, late)
    assert isinstance(task, NotificationTask)
    assert (task.status, task.event_id) == (OrderStatus.SHIPPED, str(uuid.UUID(int=3)))
    assert record_event(late, event(3, EventType.ORDER_SHIPPED)) is None  # and only once


def test_given_a_paid_event_after_a_cancellation_then_the_order_is_still_fulfilled_once():
    cancelled = record_event(None, event(3, EventType.ORDER_CANCELLED))
    paid = record_event(cancelled, event(2, EventType.ORDER_PAID))

    tasks = tasks_for_change(cancelled, paid)

    assert [type(task) for task in tasks] == [FulfilmentTask, NotificationTask]
    assert paid is not None and paid.state.status is OrderStatus.CANCELLED


@given(history=histories, data=st.data())
@settings(max_examples=300, deadline=None)
def test_given_any_delivery_the_whole_chain_leaves_exactly_the_contracted_effects(history, data):
    """ingest -> orders -> changes -> tasks -> effects, with any order, copies and replays.

    Events arrive in any order, some more than once (a retried batch, a replay by recovery);
    a stream record may be delivered again (its tasks re-sent); tasks reach the sink in any
    order. The sink keeps each effect id once, as the effects table's key does.
    """
    events = [event(version, kind) for version, kind in history]
    copies = data.draw(st.lists(st.sampled_from(events), max_size=6))
    delivered = data.draw(st.permutations(events + copies))
    record: OrderRecord | None = None
    tasks = []
    for item in delivered:
        new = record_event(record, item)
        if new is None:
            continue  # nothing written: no stream record
        change = tasks_for_change(record, new)
        tasks += change * data.draw(st.integers(1, 2))  # the stream record redelivered
        record = new
    sink: dict[str, str] = {}
    for task in data.draw(st.permutations(tasks)):
        sink.setdefault(task.effect_id, task.event_id)

    owed = expected_effects(events)
    assert set(sink) == set(owed)
    assert all(sink[effect] in owed[effect] for effect in sink)
    assert record is not None and record.state == state_for(max(events, key=lambda e: e.version))


def test_given_a_chaos_window_when_checked_then_active_only_before_its_end():
    chaotic = event(1, EventType.ORDER_CREATED, chaos={"transient_until": T0})

    assert chaos_active(chaotic, T0 - timedelta(seconds=1))
    assert not chaos_active(chaotic, T0)
    assert not chaos_active(event(1, EventType.ORDER_CREATED), T0)
