"""Lambda invocations (async for notify, sync/async for recovery replays)."""

from __future__ import annotations

import json
from typing import Any

from orderflow.dal.clients import client

__all__ = ["FunctionInvoker", "InvocationResult"]


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
