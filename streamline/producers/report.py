"""What a send did: how many records went, which failed and why, and what it cost in calls.

Every event given to ``send`` ends in exactly one of ``sent``, ``failed`` or ``skipped``, so
``sent + len(failed) + skipped`` is the number of events: nothing is dropped without a record.

Example::

    >>> report = KinesisProducer(client, "order-events").send(events)   # doctest: +SKIP
    >>> report.ok, report.sent, report.calls, report.retried_entries
    (True, 40, 1, 0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Failed", "ProduceReport"]


@dataclass(frozen=True)
class Failed:
    """An event that was not delivered: the last error code the service (or the check) gave."""

    event_id: str
    code: str
    message: str


@dataclass
class ProduceReport:
    """The outcome of one ``send``.

    ``retried_entries`` counts re-sends (an entry sent three times counts two); ``skipped``
    counts events that map to no record at this destination (a stale version, or an event that
    causes no task for this queue); ``aborted`` holds the error that stopped the send early, if
    any (every record not sent by then is in ``failed``).
    """

    sent: int = 0
    failed: list[Failed] = field(default_factory=list)
    calls: int = 0
    retried_entries: int = 0
    seconds: float = 0.0
    skipped: int = 0
    aborted: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def total(self) -> int:
        return self.sent + len(self.failed) + self.skipped

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
