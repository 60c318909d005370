"""Lambda invocations: notify's batches to the notifier, recovery's sync and async replays."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orderflow.dal.clients import client
from orderflow.notifications import encode_batches
from orderflow.observability import logger

if TYPE_CHECKING:
    from orderflow.events import NotificationTask

__all__ = ["FunctionInvoker", "InvocationResult", "NotificationOutbox"]


class InvocationResult:
    """Status, function error (``Unhandled``...) and decoded payload of a sync invoke."""

    def __init__(self, status_code: int, function_error: str | None, payload: Any) -> None:
        self.status_code = status_code
        self.function_error = function_error
        self.payload = payload


class FunctionInvoker:
    """Invokes Lambda functions with JSON payloads.

    Example::

        >>> FunctionInvoker().invoke_async("notifier", b'{"kind": "notify"}')  # doctest: +SKIP
    """

    def invoke_async(self, function_name: str, payload: bytes) -> int:
        """Queue an asynchronous invocation (Lambda retries it and applies Destinations)."""
        response = client("lambda").invoke(
            FunctionName=function_name, InvocationType="Event", Payload=payload
        )
        # The (empty) body must be read for the connection to go back to the pool: an unread
        # one holds it, and the next call opens a new connection (measured: one per event).
        body = response.get("Payload")
        if body is not None:
            body.read()
        return int(response["StatusCode"])

    def invoke_sync(self, function_name: str, payload: bytes) -> InvocationResult:
        """Invoke and wait for the result."""
        response = client("lambda").invoke(
            FunctionName=function_name, InvocationType="RequestResponse", Payload=payload
        )
        raw = response["Payload"].read() if "Payload" in response else b""
        try:
            decoded = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode("utf-8", "replace")
        return InvocationResult(int(response["StatusCode"]), response.get("FunctionError"), decoded)


@dataclass(frozen=True, slots=True)
class _Notice:
    record_id: str
    task_json: str
    trace_header: str | None


class NotificationOutbox:
    """Collects a notify batch's notifications and hands them to the notifier per batch.

    The batch handler's deferred work (``orderflow.batch.DeferredWork``): records add their
    task while they run; :meth:`flush` then invokes the notifier asynchronously once per
    :func:`orderflow.notifications.encode_batches` payload (up to 100 notifications). An
    invocation that fails fails exactly its records (SQS redelivers them; the effects table
    dedups what the notifier already did); the others still go.

    Example::

        outbox = NotificationOutbox("notifier")

        @partial_batch_handler(source=Source.SQS, deferred=outbox)
        def handler(record):
            outbox.add(task, record_id=current_record_id(), trace_header=header)
    """

    def __init__(self, function_name: str, *, invoker: FunctionInvoker | None = None) -> None:
        self.function_name = function_name
        self.invoker = invoker or FunctionInvoker()
        self._pending: list[_Notice] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, task: NotificationTask, *, record_id: str, trace_header: str | None = None
    ) -> None:
        """Queue ``task`` for ``record_id``; ``trace_header`` is its order's trace."""
        self._pending.append(_Notice(record_id, task.model_dump_json(), trace_header))

    def discard(self, record_id: str) -> None:
        """Forget what ``record_id`` added (it failed; its retry adds it again)."""
        self._pending = [notice for notice in self._pending if notice.record_id != record_id]

    def flush(self) -> set[str]:
        """Invoke the notifier for every pending notification; the records that failed."""
        pending, self._pending = self._pending, []
        failed: set[str] = set()
        start = 0
        for payload, count in encode_batches((n.task_json, n.trace_header) for n in pending):
            records = {notice.record_id for notice in pending[start : start + count]}
            start += count
            try:
                self.invoker.invoke_async(self.function_name, payload)
            except Exception as exc:  # botocore has retried throttles and 5xx already
                logger.warning(
                    "Notifications not handed to the notifier; their records reported for retry",
                    extra={"records": len(records), "error_type": type(exc).__name__},
                    exc_info=exc,
                )
                failed |= records
        return failed
