"""Error taxonomy: every failure is either *transient* (retry it) or *poison* (never retry it).

The batch entry point and the recovery workflow both decide what to do with a failed record
from :func:`classify`, so the two can never disagree.

Example::

    >>> classify(PoisonRecordError("amount_cents: must be >= 0"))
    <ErrorKind.POISON: 'poison'>
    >>> classify(TimeoutError())
    <ErrorKind.TRANSIENT: 'transient'>
"""

from __future__ import annotations

import binascii
import enum
import json

__all__ = [
    "ErrorKind",
    "PoisonRecordError",
    "TransientError",
    "classify",
    "describe",
]


class ErrorKind(enum.StrEnum):
    """What the pipeline does with a failure: retry it, or set it aside for a human."""

    TRANSIENT = "transient"
    POISON = "poison"


class PoisonRecordError(Exception):
    """The record itself is bad (schema, type, unknown field): retrying can never succeed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(Exception):
    """A dependency failed for now (throttle, timeout, injected chaos): retrying may succeed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Error codes AWS documents as retryable; matched on the botocore ClientError code.
_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "LimitExceededException",
        "KMSThrottlingException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionConflictException",
        "EC2ThrottledException",
    }
)

# Codes that say the *payload* is unacceptable to the service: retrying the same bytes fails again.
_POISON_CODES = frozenset(
    {
        "ValidationException",
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "InvalidMessageContents",
        "InvalidRequestContentException",
        "RequestTooLargeException",
        "SerializationException",
    }
)


def _client_error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def classify(exc: BaseException) -> ErrorKind:
    """Classify an exception as transient or poison.

    Unknown errors are *transient* on purpose: a retried record can still be quarantined by the
    recovery workflow after bounded attempts, while a record wrongly called poison is never
    retried at all.
    """
    if isinstance(exc, PoisonRecordError):
        return ErrorKind.POISON
    if isinstance(exc, TransientError):
        return ErrorKind.TRANSIENT
    # pydantic is imported lazily in spirit: checking by name avoids importing it here.
    if type(exc).__name__ == "ValidationError" and hasattr(exc, "errors"):
        return ErrorKind.POISON
    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, binascii.Error)):
        # Errors about the bytes themselves; a plain ValueError may be our bug, so it is retried.
        return ErrorKind.POISON
    code = _client_error_code(exc)
    if code is not None:
        if code in _POISON_CODES:
            return ErrorKind.POISON
        return ErrorKind.TRANSIENT
    return ErrorKind.TRANSIENT


def describe(exc: BaseException) -> str:
    """One-line human reason for an exception (kept short: it travels inside envelopes)."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        text = reason
    else:
        code = _client_error_code(exc)
        text = f"{code}: {exc}" if code else (str(exc) or type(exc).__name__)
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."
