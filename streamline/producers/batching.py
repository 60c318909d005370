"""The send loop every producer shares: fill calls up to the service's limits, retry only the
entries the service rejected, keep each order's records in order, and account for all of them.

Ordering: a batch call can accept a later record of an order and reject an earlier one; retrying
the earlier one would then land it after the later one. So one call carries at most one record
per ordering key (the order id), and an order's next record waits until its previous one is
settled. Orders take turns in the order they first appear; a record being retried goes first.
DynamoDB needs the same rule for its own reason: BatchWriteItem refuses two writes of one key.

Retries: a rejected entry is re-sent in the next call, after a full-jitter backoff for the
highest attempt among the rejected, until it has been tried ``max_attempts`` times; then it is
reported failed. A whole call that fails with a throttle, a 5xx or a connection error counts as
every entry rejected. Any other error of a whole call (a missing stream, no permission) stops
the send: every record not yet sent is reported failed with that error, never dropped.

Example::

    sender = BatchSender(call, max_entries=500, max_bytes=5 * 2**20, max_attempts=8,
                         backoff=Backoff(0.05, 2.0), sleep=time.sleep)
    report = sender.run(entries)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streamline.producers.report import Failed, ProduceReport
from streamline.producers.retry import Backoff, TokenBucket, error_code, is_retryable_error

__all__ = ["BatchSender", "Entry", "Rejection"]


@dataclass(eq=False)
class Entry:
    """One record to send: the service's request entry, its ordering key and its size."""

    event_id: str
    key: str
    request: Any
    size: int
    attempts: int = 0


@dataclass(frozen=True)
class Rejection:
    """The service did not take ``entry`` in a call; ``retryable`` says whether to try again."""

    entry: Entry
    code: str
    message: str
    retryable: bool


Call = Callable[[list[Entry]], Sequence[Rejection]]


class BatchSender:
    """Runs the send loop of the module docstring for one producer's ``call``."""

    def __init__(
        self,
        call: Call,
        *,
        max_entries: int,
        max_bytes: int,
        max_attempts: int,
        backoff: Backoff,
        sleep: Callable[[float], object],
        limiter: TokenBucket | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be 1 or more, got {max_attempts}")
        self.call = call
        self.max_entries = min(max_entries, limiter.max_batch) if limiter else max_entries
        self.max_bytes = max_bytes
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.sleep = sleep
        self.limiter = limiter
        self.on_progress = on_progress

    def run(self, entries: Sequence[Entry], report: ProduceReport | None = None) -> ProduceReport:
        """Send every entry (each no larger than ``max_bytes``); adds to ``report`` if given."""
        report = report if report is not None else ProduceReport()
        queues: dict[str, deque[Entry]] = {}
        for entry in entries:
            queues.setdefault(entry.key, deque()).append(entry)
        ready: deque[str] = deque(queues)
        while ready:
            batch = self._take(ready, queues)
            if self.limiter is not None:
                self.limiter.acquire(len(batch))
            for entry in batch:
                if entry.attempts:
                    report.retried_entries += 1
                entry.attempts += 1
            report.calls += 1
            try:
                rejections = list(self.call(batch))
            except Exception as exc:
                if not is_retryable_error(exc):
                    self._abort(exc, ready, queues, report)
                    return report
                rejections = [Rejection(e, error_code(exc), str(exc), True) for e in batch]
            self._settle(batch, rejections, ready, queues, report)
        return report

    def _take(self, ready: deque[str], queues: dict[str, deque[Entry]]) -> list[Entry]:
        batch: list[Entry] = []
        size = 0
        while ready and len(batch) < self.max_entries:
            head = queues[ready[0]][0]
            if batch and size + head.size > self.max_bytes:
                break
            ready.popleft()
            batch.append(head)
            size += head.size
        return batch

    def _settle(
        self,
        batch: list[Entry],
        rejections: list[Rejection],
        ready: deque[str],
        queues: dict[str, deque[Entry]],
        report: ProduceReport,
    ) -> None:
        by_entry = {id(r.entry): r for r in rejections}
        retry: list[str] = []
        more: list[str] = []
        settled = 0
        worst = 0
        for entry in batch:
            rejection = by_entry.get(id(entry))
            if rejection is None:
                report.sent += 1
            elif rejection.retryable and entry.attempts < self.max_attempts:
                retry.append(entry.key)
                worst = max(worst, entry.attempts)
                continue
            else:
                report.failed.append(Failed(entry.event_id, rejection.code, rejection.message))
            settled += 1
            queue = queues[entry.key]
            queue.popleft()
            if queue:
                more.append(entry.key)
            else:
                del queues[entry.key]
        # Retries go first, in their original order; orders with more records queue at the back.
        ready.extendleft(reversed(retry))
        ready.extend(more)
        if settled and self.on_progress is not None:
            self.on_progress(settled)
        if retry:
            self.sleep(self.backoff.delay(worst))

    def _abort(
        self,
        exc: Exception,
        ready: deque[str],
        queues: dict[str, deque[Entry]],
        report: ProduceReport,
    ) -> None:
        code, message = error_code(exc), str(exc)
        report.aborted = f"{code}: {message}"
        unsent = [entry for queue in queues.values() for entry in queue]
        report.failed.extend(Failed(entry.event_id, code, message) for entry in unsent)
        queues.clear()
        ready.clear()
        if unsent and self.on_progress is not None:
            self.on_progress(len(unsent))
