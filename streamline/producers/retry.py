"""Pacing for the producers: exponential backoff with full jitter, a token bucket, and which
errors are worth retrying.

Full jitter (a uniform delay between 0 and the capped exponential) spreads the retries of many
producers hit by the same throttle, instead of having them return in lockstep; see AWS's
"Exponential Backoff And Jitter" (Architecture Blog, 2015).

Both take the ``sleep`` to call, and neither reads a clock while waiting, so tests pass a
recording ``sleep`` and check the delays asked for instead of timing anything.

Example::

    >>> backoff = Backoff(base=0.05, cap=2.0, rng=random.Random(1))
    >>> 0 <= backoff.delay(3) <= 0.2
    True
    >>> bucket = TokenBucket(rate=100.0, sleep=waits.append)   # 100 records/s, burst 100
    >>> bucket.acquire(100); bucket.acquire(50)                 # the second waits ~0.5 s
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["RETRYABLE_CODES", "Backoff", "TokenBucket", "error_code", "is_retryable_error"]

#: Whole-call error codes that say "not now" rather than "never": throttles and server faults.
RETRYABLE_CODES = frozenset(
    {
        "InternalFailure",
        "InternalError",
        "InternalServerError",
        "KMSThrottlingException",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "AWS.SimpleQueueService.RequestThrottled",
    }
)


class Backoff:
    """Delay before retry ``attempt`` (1 = the first): uniform in [0, min(cap, base*2^(n-1))]."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        if base < 0 or cap < 0:
            raise ValueError("backoff delays must be 0 or more")
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        """The largest delay retry ``attempt`` may wait."""
        # min() before the power would overflow a float for silly attempt numbers.
        return min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), 64))

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0.0, self.ceiling(attempt))


class TokenBucket:
    """A records-per-second limit with a burst of one second's worth (at least one record).

    ``acquire(n)`` returns at once while tokens last, otherwise sleeps for exactly the deficit.
    After a sleep it assumes the time has passed instead of re-reading the clock, so an injected
    ``sleep`` that returns at once still yields the right total of requested delays.
    """

    def __init__(
        self,
        rate: float,
        *,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be more than 0 records/s, got {rate}")
        self.rate = rate
        self.burst = max(1.0, rate)
        self.sleep = sleep
        self.clock = clock
        self._tokens = self.burst
        self._updated = clock()

    @property
    def max_batch(self) -> int:
        """The most records one call may carry without exceeding the burst."""
        return max(1, int(self.burst))

    def acquire(self, n: int) -> None:
        now = self.clock()
        # max(): after a sleep _updated may lie in the future of a clock the sleep did not move.
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._updated) * self.rate)
        self._updated = max(self._updated, now)
        if self._tokens >= n:
            self._tokens -= n
            return
        wait = (n - self._tokens) / self.rate
        self.sleep(wait)
        self._tokens = 0.0
        self._updated += wait


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def is_retryable_error(exc: BaseException) -> bool:
    """True for throttles, 5xx answers and connection failures of a whole call.

    A read timeout is retried too, although the call may have been applied: that is the one
    documented case where a retry can duplicate a record (consumers dedup by event or task id).
    """
    from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

    if isinstance(exc, (ConnectionError, ReadTimeoutError)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in RETRYABLE_CODES or int(status or 0) >= 500
    return False
