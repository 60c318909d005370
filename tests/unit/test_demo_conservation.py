"""The demo's conservation check and summary arithmetic, without AWS."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from streamline.demo.conservation import (
    DYNAMODB,
    KINESIS,
    SQS,
    Effect,
    Quarantined,
    check,
    event_ids_in,
    expected_effects,
)
from streamline.demo.report import percentile


@dataclass(frozen=True)
class Event:
    order_id: str
    version: int
    type: str
    fault: str = "none"
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def payload(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "order_id": self.order_id,
            "version": self.version,
            "type": self.type,
            "occurred_at": "2026-11-28T00:00:00+00:00",
            "customer_id": "c-1",
            "amount_cents": -1 if self.fault == "poison" else 1250,
        }


def lifecycle(order: str, *types: str) -> list[Event]:
    return [Event(order, version, kind) for version, kind in enumerate(types, start=1)]


def sink_for(expected: dict[str, set[str]]) -> list[Effect]:
    """A sink that holds every expected effect, each naming one of the events it may name."""
    return [Effect(effect, sorted(events)[0]) for effect, events in expected.items()]


def test_expected_effects_are_the_written_contract_per_order() -> None:
    created, paid, shipped = lifecycle("o-1", "OrderCreated", "OrderPaid", "OrderShipped")
    expected = expected_effects({KINESIS: [created, paid, shipped]})
    assert expected == {
        "notify#o-1#CREATED": {created.event_id},
        "notify#o-1#PAID": {paid.event_id},
        "notify#o-1#SHIPPED": {shipped.event_id},
        # any paid-or-later event may be the one that reached the table first
        "fulfil#o-1": {paid.event_id, shipped.event_id},
    }


def test_the_contract_does_not_depend_on_the_order_events_are_given_in() -> None:
    events = lifecycle("o-2", "OrderCreated", "OrderPaid", "OrderCancelled")
    assert expected_effects({SQS: events}) == expected_effects({SQS: events[::-1]})
    expected = expected_effects({SQS: events})
    # paid, then cancelled: the fulfilment is owed (a cancellation after payment is a refund)
    assert expected["fulfil#o-2"] == {events[1].event_id}
    assert expected["notify#o-2#CANCELLED"] == {events[2].event_id}


def test_a_late_event_still_owes_its_notification() -> None:
    # Given DELIVERED applied before a replayed SHIPPED: the sink must still hold SHIPPED's
    created, paid, shipped, delivered = lifecycle(
        "o-3", "OrderCreated", "OrderPaid", "OrderShipped", "OrderDelivered"
    )
    planned = {KINESIS: [created, paid, delivered, shipped]}
    effects = [e for e in sink_for(expected_effects(planned)) if "SHIPPED" not in e.effect_id]

    report = check(planned, effects, [])

    assert any(shipped.event_id in line and "notify#o-3#SHIPPED" in line for line in report.missing)


def test_a_complete_sink_and_quarantined_poison_conserve_every_event() -> None:
    good = lifecycle("o-1", "OrderCreated", "OrderPaid")
    poison = Event("o-p", 1, "OrderCreated", fault="poison")
    planned = {KINESIS: [*good, poison], DYNAMODB: lifecycle("o-3", "OrderCreated")}
    effects = sink_for(expected_effects(planned))
    effects.append(Effect("notify#other#CREATED", str(uuid.uuid4())))  # another run's order
    quarantine = [Quarantined("r-1", "amount_cents: must be >= 0", frozenset({poison.event_id}))]

    report = check(planned, effects, quarantine)

    assert report.ok, report.problems()
    assert (report.produced, report.delivered, report.quarantined) == (4, 3, 1)
    assert report.quarantined_reasons == {"amount_cents: must be >= 0": 1}


def test_a_missing_effect_and_an_unquarantined_poison_fail_with_their_event_ids() -> None:
    created, paid = lifecycle("o-1", "OrderCreated", "OrderPaid")
    poison = Event("o-p", 1, "OrderCreated", fault="poison")
    planned = {KINESIS: [created, paid, poison]}
    effects = [e for e in sink_for(expected_effects(planned)) if e.effect_id != "fulfil#o-1"]

    report = check(planned, effects, [])

    assert not report.ok
    assert any(paid.event_id in line and "fulfil#o-1" in line for line in report.missing)
    assert any(poison.event_id in line and "not quarantined" in line for line in report.missing)


def test_effects_beyond_the_expected_ones_are_unexpected() -> None:
    (created,) = lifecycle("o-1", "OrderCreated")
    poison = Event("o-p", 1, "OrderCreated", fault="poison")
    effects = [
        Effect("notify#o-1#CREATED", created.event_id),
        Effect("fulfil#o-1", created.event_id),
        Effect("notify#o-p#CREATED", poison.event_id),
    ]
    quarantine = [Quarantined("r", "bad", frozenset({poison.event_id}))]

    report = check({KINESIS: [created, poison]}, effects, quarantine)

    assert len(report.unexpected) == 2 and not report.missing


def test_an_effect_naming_an_event_of_another_status_is_unexpected() -> None:
    created, paid = lifecycle("o-1", "OrderCreated", "OrderPaid")
    effects = [
        Effect("notify#o-1#CREATED", created.event_id),
        Effect("notify#o-1#PAID", created.event_id),  # names the wrong event
        Effect("fulfil#o-1", paid.event_id),
    ]

    report = check({KINESIS: [created, paid]}, effects, [])

    assert not report.ok
    assert any(paid.event_id in line and "notify#o-1#PAID" in line for line in report.missing)


def test_event_ids_are_found_in_kinesis_dynamodb_and_sqs_records() -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    data = base64.b64encode(json.dumps({"event_id": ids[0], "amount_cents": -1}).encode())
    document = {
        "reason": "bad",
        "payload": json.dumps(
            {"record": {"kinesis": {"data": data.decode(), "partitionKey": "o"}}}
        ),
        "others": [
            {"dynamodb": {"NewImage": {"last_event_id": {"S": ids[1]}}}},
            {"body": json.dumps({"event_id": ids[2]})},
        ],
    }
    assert event_ids_in(document) == frozenset(ids)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.01


def test_event_ids_are_looked_for_in_a_deeply_nested_quarantined_record_without_a_crash() -> None:
    event_id = str(uuid.uuid4())
    deep = '{"event_id": "' + event_id + '", "a": ' + "[" * 5000 + "]" * 5000 + "}"

    assert event_ids_in({"payload": deep}) == frozenset()  # unreadable is no evidence either
    assert event_ids_in({"payload": json.dumps({"event_id": event_id})}) == {event_id}
