"""Invoking a mapping's function with one batch: what the SQS and stream workers share.

:func:`invoke_batch` serialises the event, invokes synchronously and sorts what can go wrong.
A function error is not an exception here: it comes back as an ``InvokeResult`` for
:func:`streamline.local.esm.responses.parse_batch_response` to judge (items 1-3). What stops an
invocation from happening at all (throttling, a function that is missing or cannot run, any
other service error) returns ``None`` after showing the error on the worker: each worker then
does what its source does (a stream retries the batch without using a retry attempt; an SQS
batch is left to the queue's visibility timeout). :func:`report_iterator_age` publishes the
stream mappings' IteratorAge metric.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from streamline.local.contracts import FunctionNotFound, Throttled, UnsupportedFunction

if TYPE_CHECKING:
    from streamline.local.contracts import InvokeResult
    from streamline.local.esm.worker import EngineContext, MappingWorker

__all__ = ["ErrorSink", "invoke_batch", "report_iterator_age"]


class ErrorSink(Protocol):
    """Where an invocation's error is shown: a mapping worker, or one of a stream's shards."""

    def error(self, message: str) -> None: ...


def invoke_batch(
    mapping: MappingWorker,
    function_arn: str,
    event: dict[str, Any],
    *,
    records: int,
    throttled: str,
    shown_on: ErrorSink | None = None,
    trace_header: str | None = None,
) -> InvokeResult | None:
    """Invoke ``function_arn`` with ``event`` (``{"Records": [...]}``) and count it on ``mapping``.

    Returns the result (a function error included), or ``None`` when no invocation happened;
    the error is then shown on ``shown_on`` (default: ``mapping``), throttling as
    ``throttled`` says, since what follows a throttle differs by source.
    """
    sink: ErrorSink = mapping if shown_on is None else shown_on
    try:
        # Inside the try: a record that cannot be serialised is an error the worker shows
        # and retries with backoff, never an exception that ends the worker's thread.
        payload = json.dumps(event).encode()
        result = mapping.ctx.invoker.invoke(function_arn, payload, trace_header=trace_header)
    except Throttled:
        sink.error(throttled)
        return None
    except (FunctionNotFound, UnsupportedFunction) as exc:
        sink.error(f"{type(exc).__name__}: {exc}")
        return None
    except Exception as exc:
        sink.error(f"invoke failed: {type(exc).__name__}: {exc}")
        return None
    mapping.count(invocations=1, records=records)
    return result


def report_iterator_age(
    ctx: EngineContext, function_arn: str, source_arn: str, age_ms: float
) -> None:
    """Publish IteratorAge (the age of the batch's last record) when the cloud has metrics."""
    metrics = getattr(ctx.invoker, "metrics", None)  # LocalCloud's MetricsPublisher
    if metrics is not None:
        metrics.iterator_age(function_arn, source_arn, age_ms)
