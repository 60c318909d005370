"""The only place that creates the Powertools Logger, Tracer and Metrics.

Every module imports these singletons, so a function has one logger (one JSON format, one
correlation id), one tracer and one metrics buffer flushed once per invocation. Beside them,
``linked_traces`` records a consumer's work in the traces its records came from (see
:mod:`orderflow.tracing`); the batch entry point flushes it once per batch.

Example::

    from orderflow.observability import logger, metrics, tracer

    logger.warning("record failed", extra={"reason": "..."})
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from orderflow.dal.xray import DaemonEmitter
from orderflow.tracing import LinkedTraces

__all__ = [
    "MetricUnit",
    "current_trace_header",
    "linked_traces",
    "logger",
    "metrics",
    "tracer",
]


class _DisabledTracer:
    """Stands in for Tracer when tracing is off (tests, local cloud, benchmarks).

    Powertools' Tracer imports the X-Ray SDK even when disabled, which costs about as much as
    importing boto3 itself; with tracing off there is nothing to pay that for.
    """

    disabled = True

    def capture_lambda_handler(
        self, lambda_handler: Callable[..., Any] | None = None, **_: Any
    ) -> Any:
        return lambda_handler if lambda_handler is not None else (lambda fn: fn)

    def capture_method(self, method: Callable[..., Any] | None = None, **_: Any) -> Any:
        return method if method is not None else (lambda fn: fn)

    def put_annotation(self, key: str, value: str | float | bool) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        return None


def _tracing_disabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in {"1", "true", "yes", "on"}


# Service and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE.
logger = Logger(utc=True)
# Patch botocore only: AWS calls still appear as subsegments, without importing and patching
# every library X-Ray knows about at cold start.
tracer: Tracer = (
    _DisabledTracer()  # type: ignore[assignment]
    if _tracing_disabled()
    else Tracer(patch_modules=("botocore",))
)
metrics = Metrics()


def _linked_trace_error(message: str, exc: BaseException) -> None:
    logger.warning(message, extra={"error_type": type(exc).__name__, "reason": str(exc)[:200]})


# Off with the tracer: no segments without tracing, nor without a daemon to take them.
linked_traces = LinkedTraces(
    emitter=None if _tracing_disabled() else DaemonEmitter.from_environment(),
    on_error=_linked_trace_error,
)


def current_trace_header() -> str | None:
    """The X-Ray trace header of this invocation (``Root=...;Parent=...;Sampled=...``), if any.

    Read per call, not at import: Lambda sets ``_X_AMZN_TRACE_ID`` for every invocation.
    """
    return os.environ.get("_X_AMZN_TRACE_ID") or None
