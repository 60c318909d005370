"""Settling the recovery workflow's outcomes: what acknowledge deletes, what the run reports.

The ``replay`` and ``quarantine`` tasks end each record as an
:class:`~orderflow.recovery_contract.ItemOutcome` (:func:`item_outcome`); the ``acknowledge``
task groups one source's with :func:`settle_outcomes` and deletes the messages it may, and
``summarize`` turns every source's result into the workflow output with
:func:`summarize_sources`. Pure: decisions over lists are made here, never with JSONPath filter
expressions in the state machine (they fail the state on a list without a match).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from orderflow.recovery_contract import (
    ItemClass,
    ItemOutcome,
    ItemState,
    Outcome,
    RecoverySummary,
    SourceResult,
)

__all__ = [
    "SourceOutcomes",
    "item_outcome",
    "longest_wait",
    "settle_outcomes",
    "summarize_sources",
]


@dataclass(frozen=True, slots=True)
class SourceOutcomes:
    """One source's records by outcome (record ids), the receipt handles safe to delete, and
    the continuations (the rest of long stream ranges) to send before deleting each of them."""

    quarantined: list[str]
    replayed: list[str]
    failed: list[str]
    deletable: list[str]
    continuations: dict[str, list[str]] = field(default_factory=dict)

    def to_state(self, source_name: str, deleted: int = 0) -> SourceResult:
        return {
            "source": source_name,
            "quarantined": self.quarantined,
            "replayed": self.replayed,
            "failed": self.failed,
            "deleted": deleted,
        }


def item_outcome(item: ItemState, outcome: Outcome) -> ItemOutcome:
    """What acknowledge needs of an item that ended as ``outcome`` (its payload is dropped)."""
    return {
        "recordId": str(item.get("recordId", "")),
        "receiptHandle": str(item.get("receiptHandle", "")),
        "outcome": outcome.value,
        "continuation": str(item.get("continuation") or ""),
    }


def longest_wait(items: Iterable[ItemState]) -> int:
    """The backoff before one source's replays: the longest its transient items ask for.

    Example::

        >>> longest_wait([{"classification": "transient", "waitSeconds": 4},
        ...               {"classification": "poison", "waitSeconds": 0}])
        4
    """
    return max(
        (
            int(item.get("waitSeconds") or 0)
            for item in items
            if item.get("classification") == ItemClass.TRANSIENT
        ),
        default=0,
    )


def _outcome_of(record: Mapping[str, Any]) -> Outcome:
    try:
        return Outcome(str(record.get("outcome", "")))
    except ValueError:
        # Unknown or missing: never delete on a guess; the message comes back next run.
        return Outcome.FAILED


def settle_outcomes(records: Iterable[Mapping[str, Any]]) -> SourceOutcomes:
    """Group the replay and quarantine outcomes of one source and decide which messages to delete.

    A message is deletable when none of its records failed: a stream failure message expands
    into several records sharing one receipt handle, and deleting it while one of them failed
    would lose that record (kept, all of them come back next run; replays are idempotent).
    Record ids and handles are deduplicated in first-seen order.

    Example::

        >>> settle_outcomes([
        ...     {"recordId": "a", "receiptHandle": "m1", "outcome": "replayed"},
        ...     {"recordId": "b", "receiptHandle": "m1", "outcome": "failed"},
        ...     {"recordId": "c", "receiptHandle": "m2", "outcome": "quarantined"},
        ... ]).deletable
        ['m2']
    """
    ids: dict[Outcome, dict[str, None]] = {outcome: {} for outcome in Outcome}
    handled: dict[str, None] = {}
    blocked: set[str] = set()
    continuations: dict[str, dict[str, None]] = {}
    for record in records:
        outcome = _outcome_of(record)
        record_id = str(record.get("recordId") or "")
        if record_id:
            ids[outcome][record_id] = None
        handle = str(record.get("receiptHandle") or "")
        if not handle:
            continue
        if outcome is Outcome.FAILED:
            blocked.add(handle)
        else:
            handled[handle] = None
        rest = record.get("continuation")
        if isinstance(rest, str) and rest:
            continuations.setdefault(handle, {})[rest] = None
    deletable = [handle for handle in handled if handle not in blocked]
    return SourceOutcomes(
        quarantined=list(ids[Outcome.QUARANTINED]),
        replayed=list(ids[Outcome.REPLAYED]),
        failed=list(ids[Outcome.FAILED]),
        deletable=deletable,
        continuations={h: list(continuations[h]) for h in deletable if h in continuations},
    )


def _ids(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def summarize_sources(sources: Sequence[Mapping[str, Any]]) -> RecoverySummary:
    """The workflow output: outcome counts over every source, quarantined ids, per-source results.

    ``complete`` is false when a record failed or a source could not be drained or settled
    (its result has ``error``): the workflow then ends FAILED, so an alarm fires instead of a
    run that "succeeded" with work left behind.

    Example::

        >>> summarize_sources([{"source": "s", "quarantined": ["s#1"], "replayed": [],
        ...                     "failed": [], "deleted": 1}])["complete"]
        True
    """
    totals: dict[Outcome, dict[str, None]] = {outcome: {} for outcome in Outcome}
    errors = 0
    for source in sources:
        for outcome in Outcome:
            totals[outcome].update(dict.fromkeys(_ids(source.get(outcome.value))))
        if source.get("error"):
            errors += 1
    quarantined = list(totals[Outcome.QUARANTINED])
    failed = len(totals[Outcome.FAILED])
    return {
        "quarantined": len(quarantined),
        "replayed": len(totals[Outcome.REPLAYED]),
        "failed": failed,
        "errors": errors,
        "complete": failed == 0 and errors == 0,
        "quarantinedRecords": quarantined,
        # as acknowledge (or a Pass state) wrote them: passed on, not re-checked
        "sources": [cast(SourceResult, dict(source)) for source in sources],
    }
