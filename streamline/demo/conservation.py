"""The demo's conservation check: every produced event is in the sink exactly once, or
quarantined with its reason.

Pure: it takes what was produced (with the path each event took) and what the pipeline holds at
the end (the effects table, the quarantine documents), and says, event by event, what is missing,
what is unexpected, and why. What the sink must hold is the pipeline's written effects contract,
:func:`orderflow.logic.expected_effects`: a function of the *set* of valid events produced, so
no arrival order, delay, duplicate or replay can make the check and the pipeline disagree.

Example::

    >>> expected = expected_effects(planned_by_path)       # {effect id: {event ids it may name}}
    >>> report = check(planned_by_path, effects, quarantined)
    >>> report.ok, report.delivered, report.quarantined_reasons
    (True, 4950, {'amount_cents: Input should be greater than or equal to 0': 50})
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from orderflow.events import OrderEvent, parse_model
from orderflow.logic import expected_effects as contract
from pydantic_core import from_json

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
    """Each effect id the sink must hold, with the ids of the events it may name.

    Every path carries an order's changes (Kinesis events become orders items, DynamoDB items
    are the changes, and the SQS producers send the tasks of each event), so every path owes
    the same contract: a notification per status the order's valid events carry, and one
    fulfilment when any of them is paid, shipped or delivered.
    """
    valid = [
        parse_model(OrderEvent, event.payload)
        for events in planned.values()
        for event in events
        if event.fault != "poison"
    ]
    return contract(valid)


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
        if effect.event_id not in produced and effect.effect_id not in expected:
            continue  # another run's order (the demo never assumes an empty cloud)
        held[effect.effect_id] = effect.event_id
        by_event[effect.event_id].add(effect.effect_id)
    owed: dict[str, set[str]] = defaultdict(set)  # event id -> the effects it may be named on
    for effect_id, event_ids in expected.items():
        for event_id in event_ids:
            owed[event_id].add(effect_id)

    reasons: dict[str, str] = {}
    for doc in quarantined:
        for event_id in doc.event_ids & produced.keys():
            reasons.setdefault(event_id, doc.reason)

    counts: Counter[str] = Counter()
    for event_id, event in produced.items():
        if event.fault == "poison":
            if by_event.get(event_id):
                report.unexpected.append(
                    f"{event_id}: poison event has effects {sorted(by_event[event_id])}"
                )
            elif not reasons.get(event_id):
                report.missing.append(f"{event_id}: poison event is not quarantined with a reason")
            else:
                report.quarantined += 1
                counts[_short(reasons[event_id])] += 1
            continue
        want = owed.get(event_id, set())
        absent = sorted(e for e in want if held.get(e) not in expected[e])
        wrong = sorted(
            e for e in by_event.get(event_id, set()) if event_id not in expected.get(e, ())
        )
        if absent:
            where = f" (quarantined: {reasons[event_id]})" if event_id in reasons else ""
            report.missing.append(
                f"{event_id} ({event.fault}, order {event.order_id}): no {', '.join(absent)}{where}"
            )
        elif wrong:
            report.unexpected.append(f"{event_id}: effects it does not owe {wrong}")
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
    """The JSON inside ``text`` (or inside its base64), or None. Bounded: a quarantined record
    can be 5,000 levels deep, which the standard library's parser meets with RecursionError."""
    stripped = text.strip()
    if stripped[:1] in "{[":
        return _bounded_json(stripped)
    if len(stripped) >= 16 and len(stripped) % 4 == 0:
        try:
            decoded = base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError):
            return None
        return _bounded_json(decoded)
    return None


def _bounded_json(data: str | bytes) -> Any | None:
    try:
        return from_json(data)
    except ValueError:
        return None
