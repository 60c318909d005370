"""The demo's conservation check: every produced event is in the sink exactly once, or
quarantined with its reason.

Pure: it takes what was produced (with the path each event took) and what the pipeline holds at
the end (the effects table, the quarantine documents), and says, event by event, what is missing,
what is unexpected, and why. What an event must leave in the sink is computed with the same
domain functions the handlers use (``apply_event`` and ``tasks_for_change``), so the check
cannot drift from the pipeline's rules.

Example::

    >>> expected = expected_effects(planned_by_path)       # {event_id: {effect ids}}
    >>> report = check(planned_by_path, effects, quarantined)
    >>> report.ok, report.delivered, report.quarantined_reasons
    (True, 4950, {'amount_cents: Input should be greater than or equal to 0': 50})
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orderflow.events import FulfilmentTask, NotificationTask, OrderEvent, parse_model
from orderflow.logic import apply_event, tasks_for_change

__all__ = [
    "ConservationReport",
    "Effect",
    "Planned",
    "Quarantined",
    "check",
    "event_ids_in",
    "expected_effects",
]

#: The paths an event can take into the pipeline (see ``streamline.demo.run``).
KINESIS, DYNAMODB, SQS = "kinesis", "dynamodb", "sqs"


class Planned(Protocol):
    """What the conservation check needs of a produced event (``PlannedEvent`` has it)."""

    @property
    def event_id(self) -> str: ...
    @property
    def order_id(self) -> str: ...
    @property
    def fault(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Effect:
    """One item of the effects table (the sink)."""

    effect_id: str
    event_id: str
    created_at: str = ""


@dataclass(frozen=True)
class Quarantined:
    """One quarantine document: its reason and every event id found in the record it holds."""

    record_id: str
    reason: str
    event_ids: frozenset[str]


@dataclass
class ConservationReport:
    """The verdict, with enough detail to say which events broke it and how."""

    produced: int = 0
    delivered: int = 0
    quarantined: int = 0
    quarantined_reasons: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def problems(self, limit: int = 10) -> list[str]:
        """The first ``limit`` problems, one line each."""
        return [*self.missing, *self.unexpected][:limit]


def expected_effects(planned: Mapping[str, Sequence[Planned]]) -> dict[str, set[str]]:
    """Effect ids each valid event must leave, by event id.

    Every path carries an order's changes (Kinesis events become orders items, DynamoDB items
    are the changes, and the SQS producers send the tasks of each change), so what each event
    must leave follows from the domain's own rules, per order in version order: a notification
    per status change, and a fulfilment when the order first becomes paid.
    """
    expected: dict[str, set[str]] = {}
    for events in planned.values():
        orders: dict[str, list[OrderEvent]] = defaultdict(list)
        for planned_event in events:
            if planned_event.fault == "poison":
                continue
            orders[planned_event.order_id].append(parse_model(OrderEvent, planned_event.payload))
        for sequence in orders.values():
            current = None
            for event in sorted(sequence, key=lambda e: e.version):
                new = apply_event(current, event)
                effects = expected.setdefault(event.event_id, set())
                effects.update(
                    task.effect_id
                    for task in tasks_for_change(current, new)
                    if isinstance(task, (FulfilmentTask, NotificationTask))
                )
                current = new or current
    return expected


def check(
    planned: Mapping[str, Sequence[Planned]],
    effects: Iterable[Effect],
    quarantined: Iterable[Quarantined],
) -> ConservationReport:
    """Compare what was produced with the sink and the quarantine."""
    expected = expected_effects(planned)
    produced = {p.event_id: p for events in planned.values() for p in events}
    report = ConservationReport(produced=len(produced))

    held: dict[str, str] = {}  # effect id -> event id (the table's key makes each unique)
    by_event: dict[str, set[str]] = defaultdict(set)
    for effect in effects:
        if effect.event_id not in produced:
            continue  # another run's order (the demo never assumes an empty cloud)
        held[effect.effect_id] = effect.event_id
        by_event[effect.event_id].add(effect.effect_id)

    reasons: dict[str, str] = {}
    for doc in quarantined:
        for event_id in doc.event_ids & produced.keys():
            reasons.setdefault(event_id, doc.reason)

    counts: Counter[str] = Counter()
    for event_id, event in produced.items():
        if event.fault == "poison":
            if by_event.get(event_id):
                report.unexpected.append(
                    f"{event_id}: poison event has effects {by_event[event_id]}"
                )
            elif not reasons.get(event_id):
                report.missing.append(f"{event_id}: poison event is not quarantined with a reason")
            else:
                report.quarantined += 1
                counts[_short(reasons[event_id])] += 1
            continue
        want = expected.get(event_id, set())
        have = by_event.get(event_id, set())
        if want - have:
            where = f" (quarantined: {reasons[event_id]})" if event_id in reasons else ""
            report.missing.append(
                f"{event_id} ({event.fault}, order {event.order_id}): "
                f"no {', '.join(sorted(want - have))}{where}"
            )
        elif have - want:
            report.unexpected.append(f"{event_id}: unexpected effects {sorted(have - want)}")
        else:
            report.delivered += 1
    report.quarantined_reasons = dict(counts.most_common())
    return report


def _short(reason: str) -> str:
    return reason.splitlines()[0][:120] if reason else "(no reason)"


def event_ids_in(document: Any) -> frozenset[str]:
    """Every ``event_id`` / ``last_event_id`` value in a quarantine document.

    The record inside is whatever the source held: JSON text, a Kinesis record whose data is
    base64, a DynamoDB stream image in DynamoDB JSON, an SQS body. Strings are opened as JSON
    or base64-encoded JSON where they parse, so the ids are found at any depth.
    """
    return frozenset(_ids(document, depth=0))


_ID_KEYS = {"event_id", "last_event_id"}


def _ids(value: Any, depth: int) -> Iterator[str]:
    if depth > 8:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _ID_KEYS:
                # plain JSON, or DynamoDB JSON ({"S": "..."})
                if isinstance(item, str):
                    yield item
                elif isinstance(item, dict) and isinstance(item.get("S"), str):
                    yield item["S"]
            yield from _ids(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _ids(item, depth + 1)
    elif isinstance(value, str) and len(value) > 2:
        opened = _open(value)
        if opened is not None:
            yield from _ids(opened, depth + 1)


def _open(text: str) -> Any | None:
    stripped = text.strip()
    if stripped[:1] in "{[":
        try:
            return json.loads(stripped)
        except ValueError:
            return None
    if len(stripped) >= 16 and len(stripped) % 4 == 0:
        try:
            decoded = base64.b64decode(stripped, validate=True)
            return json.loads(decoded)
        except (binascii.Error, ValueError):
            return None
    return None
