"""What every producer shares: its options, and ``send`` = validate, map, check sizes, batch.

A producer subclass says only how an event becomes its service's entry (``_entries``), how one
call is made and read (``_call``), and its service's limits (class constants).

Example::

    class EchoProducer(Producer):
        MAX_ENTRIES, MAX_CALL_BYTES, MAX_ENTRY_BYTES = 10, 1024, 256
        def _entries(self, prepared): ...   # yields Entry, Failed, or None (skipped)
        def _call(self, batch): ...         # returns the rejected entries
"""

from __future__ import annotations

import abc
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from streamline.producers.batching import BatchSender, Entry, Rejection
from streamline.producers.generate import PlannedEvent
from streamline.producers.prepare import Prepared, prepare_events
from streamline.producers.report import Failed, ProduceReport
from streamline.producers.retry import Backoff, TokenBucket

__all__ = ["Producer"]


class Producer(abc.ABC):
    """Base of the Kinesis, SQS and DynamoDB producers (see the package docstring)."""

    #: Entries per call, bytes per call, bytes per entry: the service's documented limits.
    MAX_ENTRIES: ClassVar[int]
    MAX_CALL_BYTES: ClassVar[int]
    MAX_ENTRY_BYTES: ClassVar[int]
    #: The code reported for an entry over MAX_ENTRY_BYTES (found before any call).
    TOO_LARGE: ClassVar[str] = "EntryTooLarge"

    def __init__(
        self,
        client: Any,
        *,
        rate: float | None = None,
        max_attempts: int = 8,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        validate: bool = True,
        on_progress: Callable[[int], None] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be 1 or more, got {max_attempts}")
        self.client = client
        self.max_attempts = max_attempts
        self.backoff = Backoff(base_delay, max_delay, rng)
        self.validate = validate
        self.on_progress = on_progress
        self.sleep = sleep
        # One bucket for the producer's life: consecutive sends share the same rate.
        self.limiter = TokenBucket(rate, sleep=sleep) if rate is not None else None

    def send(self, events: Iterable[PlannedEvent | Mapping[str, Any]]) -> ProduceReport:
        """Send every event; returns what was sent, skipped and failed.

        Raises:
            InvalidEventError: an event fails the schema (checked before anything is sent).
        """
        started = time.monotonic()
        prepared = prepare_events(events, validate=self.validate)
        report = ProduceReport()
        entries: list[Entry] = []
        for item in self._entries(prepared):
            if item is None:
                report.skipped += 1
            elif isinstance(item, Failed):
                report.failed.append(item)
            elif item.size > self.MAX_ENTRY_BYTES:
                report.failed.append(
                    Failed(
                        item.event_id,
                        self.TOO_LARGE,
                        f"{item.size} bytes, over the {self.MAX_ENTRY_BYTES} a record may have",
                    )
                )
            else:
                entries.append(item)
        if report.total and self.on_progress is not None:
            self.on_progress(report.total)
        sender = BatchSender(
            self._call,
            max_entries=self.MAX_ENTRIES,
            max_bytes=self.MAX_CALL_BYTES,
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            sleep=self.sleep,
            limiter=self.limiter,
            on_progress=self.on_progress,
        )
        sender.run(entries, report)
        report.seconds = time.monotonic() - started
        return report

    @abc.abstractmethod
    def _entries(self, prepared: list[Prepared]) -> Iterator[Entry | Failed | None]:
        """One item per event, in order: an entry to send, a failure, or None (skipped)."""

    @abc.abstractmethod
    def _call(self, batch: list[Entry]) -> Sequence[Rejection]:
        """Send ``batch`` in one call; return the entries the service did not take."""
