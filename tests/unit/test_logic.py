"""Pure domain logic: convergence of one order's events and the tasks a change causes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from orderflow.events import EventType, FulfilmentTask, NotificationTask, OrderEvent, OrderStatus
from orderflow.logic import apply_event, chaos_active, state_for, tasks_for_change

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


def test_given_created_to_paid_when_tasks_derived_then_fulfilment_and_notification():
    old = state_for(event(1, EventType.ORDER_CREATED))
    new = state_for(event(2, EventType.ORDER_PAID))

    tasks = tasks_for_change(old, new)

    assert [type(task) for task in tasks] == [FulfilmentTask, NotificationTask]
    assert tasks[1].status is OrderStatus.PAID
    assert tasks == tasks_for_change(old, new), "task ids must be deterministic"


def test_given_paid_skipped_by_reordering_when_created_to_shipped_then_fulfilment_still_sent():
    tasks = tasks_for_change(
        state_for(event(1, EventType.ORDER_CREATED)), state_for(event(3, EventType.ORDER_SHIPPED))
    )

    assert any(isinstance(task, FulfilmentTask) for task in tasks)


def test_given_shipped_to_delivered_when_tasks_derived_then_only_a_notification():
    tasks = tasks_for_change(
        state_for(event(3, EventType.ORDER_SHIPPED)), state_for(event(4, EventType.ORDER_DELIVERED))
    )

    assert [type(task) for task in tasks] == [NotificationTask]


def test_given_a_cancellation_or_removal_or_same_status_then_no_fulfilment():
    created = state_for(event(1, EventType.ORDER_CREATED))
    cancelled = state_for(event(2, EventType.ORDER_CANCELLED))
    paid = state_for(event(2, EventType.ORDER_PAID))
    paid_again = state_for(event(3, EventType.ORDER_PAID))

    assert [type(task) for task in tasks_for_change(created, cancelled)] == [NotificationTask]
    assert tasks_for_change(paid, None) == []
    assert tasks_for_change(paid, paid_again) == []


def test_given_a_chaos_window_when_checked_then_active_only_before_its_end():
    chaotic = event(1, EventType.ORDER_CREATED, chaos={"transient_until": T0})

    assert chaos_active(chaotic, T0 - timedelta(seconds=1))
    assert not chaos_active(chaotic, T0)
    assert not chaos_active(event(1, EventType.ORDER_CREATED), T0)
