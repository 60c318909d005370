"""The notifier's payload: one :class:`~orderflow.events.NotificationTask`, or a batch of them.

``notify`` hands the notifier one asynchronous invocation per batch it read from the
``notifications`` queue, not one per notification: an invocation, its OnSuccess event on the
audit bus and its X-Ray trace are each paid per invocation, and per notification they were
more than half of the pipeline's cost per event (README, "Cost"). Each notification in a batch
keeps its order's trace header, so the notifier still records its work in that order's trace.

A batch (``kind`` ``notify-batch``)::

    {"kind": "notify-batch",
     "notifications": [{"task": {<NotificationTask>}, "traceHeader": "Root=...;Sampled=1"}]}

Anything else is taken as one task, as it always was: recovery replays one task per
invocation, and an operator may invoke the notifier with one by hand. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orderflow.errors import PoisonRecordError

__all__ = [
    "BATCH_KIND",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_NOTIFICATIONS",
    "Notification",
    "encode_batches",
    "is_batch",
    "read_notifications",
]

BATCH_KIND = "notify-batch"
#: Notifications per invocation: a notify batch is at most this (its mapping's batch size), and
#: a failed one retries them all (their effects are idempotent: each repeat is a refused
#: conditional write).
MAX_BATCH_NOTIFICATIONS = 100
#: Payload bytes per invocation, under the 256 KiB an asynchronous invocation takes.
MAX_BATCH_BYTES = 240 * 1024
#: A trace header longer than this is not one (X-Ray's are about 100 characters): dropped.
_MAX_HEADER_CHARS = 512


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification as the notifier received it: the task (unvalidated) and its trace."""

    task: Any
    trace_header: str | None = None


def encode_batches(entries: Iterable[tuple[str, str | None]]) -> list[tuple[bytes, int]]:
    """The invocation payloads for ``entries`` (task JSON, trace header), in order.

    Returns ``(payload, count)`` per invocation: at most :data:`MAX_BATCH_NOTIFICATIONS`
    notifications and :data:`MAX_BATCH_BYTES` bytes each (a single notification over that
    would be refused by Lambda, but a valid task is under 2 KiB).

    Example::

        >>> [count for _, count in encode_batches([('{"kind": "notify"}', None)] * 150)]
        [100, 50]
    """
    batches: list[tuple[bytes, int]] = []
    parts: list[str] = []
    size = 0
    frame = len(f'{{"kind":"{BATCH_KIND}","notifications":[]}}')
    for task_json, header in entries:
        entry = f'{{"task":{task_json}'
        if header:
            entry += f',"traceHeader":{json.dumps(header)}'
        entry += "}"
        cost = len(entry.encode()) + 1
        full = len(parts) >= MAX_BATCH_NOTIFICATIONS or frame + size + cost > MAX_BATCH_BYTES
        if parts and full:
            batches.append((_frame(parts), len(parts)))
            parts, size = [], 0
        parts.append(entry)
        size += cost
    if parts:
        batches.append((_frame(parts), len(parts)))
    return batches


def _frame(parts: Sequence[str]) -> bytes:
    return f'{{"kind":"{BATCH_KIND}","notifications":[{",".join(parts)}]}}'.encode()


def is_batch(event: Any) -> bool:
    """Whether ``event`` says it is a batch (whether or not it is a valid one)."""
    return isinstance(event, Mapping) and event.get("kind") == BATCH_KIND


def read_notifications(event: Any) -> list[Notification]:
    """The notifications in an invocation's payload: a batch's, or the payload as one task.

    Raises:
        PoisonRecordError: a batch that is not one (no list, an entry without its task, too
            many): nothing in it can be trusted to be what notify sent.

    Example::

        >>> read_notifications({"kind": "notify", "task_id": "..."})[0].trace_header is None
        True
    """
    if not is_batch(event):
        return [Notification(event)]
    entries = event.get("notifications")
    if set(event) != {"kind", "notifications"} or not isinstance(entries, list) or not entries:
        raise PoisonRecordError("notification batch invalid: needs a non-empty notifications list")
    if len(entries) > MAX_BATCH_NOTIFICATIONS:
        raise PoisonRecordError(
            f"notification batch invalid: {len(entries)} notifications,"
            f" at most {MAX_BATCH_NOTIFICATIONS}"
        )
    notifications = []
    for position, entry in enumerate(entries):
        if not (isinstance(entry, Mapping) and "task" in entry):
            raise PoisonRecordError(
                f"notification batch invalid: notifications.{position} has no task"
            )
        header = entry.get("traceHeader")
        usable = isinstance(header, str) and 0 < len(header) <= _MAX_HEADER_CHARS
        notifications.append(Notification(entry["task"], header if usable else None))
    return notifications
