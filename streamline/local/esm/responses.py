"""Interpret what a function returned for a batch (docs/esm-semantics.md items 1-3, 16).

Shared by the SQS poller and the stream shard workers: one place decides whether a batch fully
succeeded, fully failed, or partly failed (and which item identifiers failed).

Example::

    outcome = parse_batch_response(result, report_item_failures=True, batch_ids={"m1", "m2"})
    if outcome.kind is OutcomeKind.PARTIAL:
        retry(outcome.failed_ids)
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Collection

    from streamline.local.contracts import InvokeResult

__all__ = ["BatchOutcome", "OutcomeKind", "parse_batch_response"]


class OutcomeKind(enum.Enum):
    """How a batch ended."""

    SUCCESS = "success"
    #: The function raised or timed out (``function_error`` set).
    FUNCTION_ERROR = "function_error"
    #: ReportBatchItemFailures response that cannot be honoured; the whole batch failed (item 2).
    MALFORMED = "malformed"
    #: Some item identifiers were reported as failed; the others succeeded.
    PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """The verdict on one invocation; ``failed_ids`` keeps the order the function reported."""

    kind: OutcomeKind
    failed_ids: tuple[str, ...] = field(default=())
    reason: str = ""

    @property
    def whole_batch_failed(self) -> bool:
        return self.kind in (OutcomeKind.FUNCTION_ERROR, OutcomeKind.MALFORMED)


_SUCCESS = BatchOutcome(OutcomeKind.SUCCESS)


def parse_batch_response(
    result: InvokeResult, *, report_item_failures: bool, batch_ids: Collection[str]
) -> BatchOutcome:
    """Classify ``result`` for a batch whose item identifiers are ``batch_ids``.

    * A function error (raised exception, timeout) fails the whole batch, even with
      ReportBatchItemFailures (item 2).
    * Without ReportBatchItemFailures anything else is success: a returned list is ignored (3).
    * With it: ``{}``, ``null``, ``""``, ``[]``, ``{"batchItemFailures": []}`` or ``null`` are
      full success (1); an identifier that is empty, null, missing or not in the batch, or a
      payload that is not JSON, fails the whole batch (2).
    """
    if result.function_error:
        return BatchOutcome(OutcomeKind.FUNCTION_ERROR, reason=_error_reason(result.payload))
    if not report_item_failures:
        return _SUCCESS
    raw = result.payload.strip() if result.payload else b""
    if not raw:
        return _SUCCESS
    try:
        value: Any = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return BatchOutcome(OutcomeKind.MALFORMED, reason="response is not JSON")
    if not isinstance(value, dict):
        # null, "", [] and any other non-object document carry no failures.
        return _SUCCESS
    failures = value.get("batchItemFailures")
    if failures is None or failures == []:
        return _SUCCESS
    if not isinstance(failures, list):
        return BatchOutcome(OutcomeKind.MALFORMED, reason="batchItemFailures is not a list")
    known = batch_ids if isinstance(batch_ids, set | frozenset) else set(batch_ids)
    failed: list[str] = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier or identifier not in known:
            return BatchOutcome(
                OutcomeKind.MALFORMED,
                reason=f"invalid itemIdentifier {identifier!r} in batchItemFailures",
            )
        if identifier not in failed:
            failed.append(identifier)
    return BatchOutcome(OutcomeKind.PARTIAL, failed_ids=tuple(failed))


def _error_reason(payload: bytes) -> str:
    """A short ``errorType: errorMessage`` for status and logs."""
    try:
        doc = json.loads(payload or b"{}")
    except (ValueError, UnicodeDecodeError):
        return "function error"
    if isinstance(doc, dict):
        kind = doc.get("errorType") or "Error"
        return f"{kind}: {doc.get('errorMessage', '')}"[:500]
    return "function error"
