"""MetricsPublisher: AWS's own service metrics, published into moto's CloudWatch.

On AWS, Lambda, SQS, Kinesis and Step Functions publish metrics that dashboards and alarms read;
moto publishes none. The local cloud publishes them here, with AWS's namespaces, names, units and
dimensions, so the same dashboards and alarms work locally:

- ``AWS/Lambda`` (``FunctionName``), per invocation: Invocations, Errors (function errors,
  timeouts included), Throttles, Duration, ConcurrentExecutions (in use when it started), and
  IteratorAge for stream mappings; for asynchronous invocation AsyncEventsReceived,
  AsyncEventAge, AsyncEventsDropped, DestinationDeliveryFailures and DeadLetterErrors.
- ``AWS/SQS`` (``QueueName``), sampled: ApproximateNumberOfMessagesVisible / NotVisible /
  Delayed and ApproximateAgeOfOldestMessage; NumberOfMessagesSent / Received / Deleted as the
  sums since the last sample. moto keeps no such counters: the ``sqs_message_counters`` patch
  and the SQS poller's batch delete add to :data:`SQS_ACTIVITY` (not NumberOfEmptyReceives:
  see that patch).
  As on AWS, a message moved to a dead-letter queue by its redrive policy is not "sent" there.
- ``AWS/Kinesis`` (``StreamName``): GetRecords.IteratorAgeMilliseconds (per batch a mapping
  reads; its Maximum is the maximum over the mappings reading the stream). IncomingRecords and
  IncomingBytes are not published here: moto's Kinesis backend already puts them on every
  PutRecord(s), with AWS's names and dimension.
- ``AWS/States`` (``StateMachineArn``), sampled: ExecutionsStarted / Succeeded / Failed /
  TimedOut / Aborted since the last sample, and ExecutionTime (ms) of each execution that ended.

Recording is cheap and lock-free (an append to a deque); a background thread writes the buffer
to moto's CloudWatch backend in process, under ``backends.lock``, every second, and samples
queues and state machines every 60 s of the injected clock.

Example::

    metrics = MetricsPublisher(backends, clock)
    metrics.start()
    metrics.record("AWS/Lambda", "Invocations", 1, "Count", {"FunctionName": "f"})
    metrics.sample_once()                 # queues and state machines, then flush
    metrics.stop()                        # flushes what is left
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streamline.local.contracts import Clock, SystemClock

__all__ = ["SQS_ACTIVITY", "MetricsPublisher", "QueueActivity", "function_name"]

_log = logging.getLogger(__name__)

#: Data points per in-process PutMetricData call (AWS's API limit is 1000).
_BATCH = 1000
#: Buffered data points kept when the flusher cannot keep up (the oldest are dropped).
_BUFFER_LIMIT = 200_000

_Datum = tuple[str, str, float, str, tuple[tuple[str, str], ...], float]


def function_name(function: str) -> str:
    """The ``FunctionName`` dimension of a function name, partial or full (qualified) ARN."""
    if ":function:" in function:
        return function.split(":function:", 1)[1].split(":", 1)[0]
    return function.split(":", 1)[0]


class QueueActivity:
    """Per-queue message counters (sent, received, deleted), drained by sampling.

    Process-global like moto's backends: the SQS API and the poller both count here, from any
    thread, and each sample takes the sums since the previous one.
    """

    NAMES = (
        "NumberOfMessagesSent",
        "NumberOfMessagesReceived",
        "NumberOfMessagesDeleted",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    def add(self, queue_name: str, name: str, value: int = 1) -> None:
        with self._lock:
            counts = self._counts.setdefault(queue_name, dict.fromkeys(self.NAMES, 0))
            counts[name] += value

    def drain(self, queue_name: str) -> dict[str, int]:
        """The counts since the last drain (zeros for a queue with no activity)."""
        with self._lock:
            counts = self._counts.pop(queue_name, None)
        return counts or dict.fromkeys(self.NAMES, 0)


#: Every queue's counters in this process (one moto per process).
SQS_ACTIVITY = QueueActivity()


def _elapsed_ms(execution: Any) -> float | None:
    start, stop = getattr(execution, "start_date", None), getattr(execution, "stop_date", None)
    if not isinstance(start, datetime) or not isinstance(stop, datetime):
        return None
    return max(0.0, (stop - start).total_seconds() * 1000.0)


def _timestamp(epoch: float) -> datetime:
    # moto stores and compares naive UTC datetimes.
    return datetime.fromtimestamp(epoch, tz=UTC).replace(tzinfo=None)


class MetricsPublisher:
    """Buffers metric data points and writes them to moto's CloudWatch backend in batches."""

    def __init__(
        self,
        backends: Any,
        clock: Clock | None = None,
        *,
        flush_interval: float = 1.0,
        sample_interval: float = 60.0,
    ) -> None:
        self._backends = backends
        self._clock: Clock = clock or SystemClock()
        self._flush_interval = flush_interval
        self._sample_interval = sample_interval
        self._buffer: deque[_Datum] = deque(maxlen=_BUFFER_LIMIT)
        self._flush_lock = threading.Lock()
        self._sample_lock = threading.Lock()
        self._executions_started: set[str] = set()
        self._executions_ended: set[str] = set()
        self._last_sample: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- recording (any thread, no lock) --------------------------------------------------------

    def record(
        self,
        namespace: str,
        name: str,
        value: float,
        unit: str,
        dimensions: Mapping[str, str],
        timestamp: float | None = None,
    ) -> None:
        """Buffer one data point; ``timestamp`` is epoch seconds (default: the clock's now)."""
        when = self._clock.now() if timestamp is None else timestamp
        self._buffer.append((namespace, name, float(value), unit, tuple(dimensions.items()), when))

    def invocation(
        self, function: str, *, duration_ms: float, error: bool, concurrent: int
    ) -> None:
        """Lambda's per-invocation metrics (Errors is 0 or 1, so Average is the error rate)."""
        dims = {"FunctionName": function_name(function)}
        now = self._clock.now()
        self.record("AWS/Lambda", "Invocations", 1, "Count", dims, now)
        self.record("AWS/Lambda", "Errors", 1 if error else 0, "Count", dims, now)
        self.record("AWS/Lambda", "Duration", duration_ms, "Milliseconds", dims, now)
        self.record("AWS/Lambda", "ConcurrentExecutions", concurrent, "Count", dims, now)

    def throttle(self, function: str) -> None:
        self.record(
            "AWS/Lambda", "Throttles", 1, "Count", {"FunctionName": function_name(function)}
        )

    def iterator_age(self, function: str, source_arn: str, age_ms: float) -> None:
        """A stream mapping's batch: Lambda's IteratorAge, and Kinesis's GetRecords age."""
        now = self._clock.now()
        age_ms = max(0.0, age_ms)
        dims = {"FunctionName": function_name(function)}
        self.record("AWS/Lambda", "IteratorAge", age_ms, "Milliseconds", dims, now)
        if ":kinesis:" in source_arn and ":stream/" in source_arn:
            stream = source_arn.split(":stream/", 1)[1].split("/", 1)[0]
            self.record(
                "AWS/Kinesis",
                "GetRecords.IteratorAgeMilliseconds",
                age_ms,
                "Milliseconds",
                {"StreamName": stream},
                now,
            )

    def engine_error(self, engine: str, function: str) -> None:
        """An error one of the local cloud's engines met (``Streamline/LocalCloud``): the
        worker retries, and an alarm on this metric sees that it does."""
        self.record(
            "Streamline/LocalCloud",
            "EngineErrors",
            1,
            "Count",
            {"Engine": engine, "FunctionName": function_name(function)},
        )

    def count(self, function: str, name: str, value: float = 1) -> None:
        """A Lambda ``Count`` metric (the async ones: AsyncEventsReceived, ...)."""
        self.record("AWS/Lambda", name, value, "Count", {"FunctionName": function_name(function)})

    # -- flushing --------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write the buffered data points to moto's CloudWatch now; returns how many."""
        with self._flush_lock:
            by_namespace: dict[str, list[dict[str, Any]]] = {}
            taken = 0
            while True:
                try:
                    namespace, name, value, unit, dims, when = self._buffer.popleft()
                except IndexError:
                    break
                taken += 1
                by_namespace.setdefault(namespace, []).append(
                    {
                        "MetricName": name,
                        "Value": value,
                        "Unit": unit,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
                        "Timestamp": _timestamp(when),
                    }
                )
            if not taken:
                return 0
            try:
                with self._backends.lock:
                    cloudwatch = self._backends.cloudwatch()
                    for namespace, data in by_namespace.items():
                        for start in range(0, len(data), _BATCH):
                            cloudwatch.put_metric_data(namespace, data[start : start + _BATCH])
            except Exception:  # metrics must never break the cloud
                _log.warning("could not publish %d metric data points", taken, exc_info=True)
            return taken

    # -- sampling --------------------------------------------------------------------------------

    def sample_once(self) -> None:
        """Sample queues and state machines now, then flush."""
        with self._sample_lock:
            now = self._clock.now()
            self._last_sample = now
            points: list[tuple[str, str, float, str, dict[str, str]]] = []
            with self._backends.lock:
                for sampler in (self._sample_sqs, self._sample_states):
                    try:
                        points.extend(sampler(now))
                    except Exception:
                        _log.warning("metrics sampler %s failed", sampler.__name__, exc_info=True)
            for namespace, name, value, unit, dims in points:
                self.record(namespace, name, value, unit, dims, now)
        self.flush()

    def _sample_sqs(self, now: float) -> list[tuple[str, str, float, str, dict[str, str]]]:
        points: list[tuple[str, str, float, str, dict[str, str]]] = []
        for name, queue in list(self._backends.sqs().queues.items()):
            dims = {"QueueName": name}
            messages = list(getattr(queue, "_messages", []))
            sent = [m.sent_timestamp for m in messages if m.sent_timestamp is not None]
            oldest = max(0.0, now - min(sent) / 1000.0) if sent else 0.0
            points += [
                ("AWS/SQS", "ApproximateNumberOfMessagesVisible",
                 queue.approximate_number_of_messages, "Count", dims),
                ("AWS/SQS", "ApproximateNumberOfMessagesNotVisible",
                 queue.approximate_number_of_messages_not_visible, "Count", dims),
                ("AWS/SQS", "ApproximateNumberOfMessagesDelayed",
                 queue.approximate_number_of_messages_delayed, "Count", dims),
                ("AWS/SQS", "ApproximateAgeOfOldestMessage", int(oldest), "Seconds", dims),
            ]  # fmt: skip
            activity = SQS_ACTIVITY.drain(name)
            points += [("AWS/SQS", metric, n, "Count", dims) for metric, n in activity.items()]
        return points

    def _sample_states(self, now: float) -> list[tuple[str, str, float, str, dict[str, str]]]:
        del now
        names = {
            "SUCCEEDED": "ExecutionsSucceeded",
            "FAILED": "ExecutionsFailed",
            "TIMED_OUT": "ExecutionsTimedOut",
            "ABORTED": "ExecutionsAborted",
        }
        points: list[tuple[str, str, float, str, dict[str, str]]] = []
        for machine in list(self._backends.stepfunctions().state_machines):
            counts: dict[str, int] = {}
            times: list[float] = []
            for execution in list(machine.executions):
                arn = str(execution.execution_arn)
                if arn not in self._executions_started:
                    self._executions_started.add(arn)
                    counts["ExecutionsStarted"] = counts.get("ExecutionsStarted", 0) + 1
                status = str(getattr(execution.status, "value", execution.status))
                if status in names and arn not in self._executions_ended:
                    self._executions_ended.add(arn)
                    counts[names[status]] = counts.get(names[status], 0) + 1
                    elapsed = _elapsed_ms(execution)
                    if elapsed is not None:
                        times.append(elapsed)
            dims = {"StateMachineArn": str(machine.arn)}
            points += [("AWS/States", name, n, "Count", dims) for name, n in counts.items()]
            points += [("AWS/States", "ExecutionTime", ms, "Milliseconds", dims) for ms in times]
        return points

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Flush every ``flush_interval`` s; sample every ``sample_interval`` s of clock time."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._last_sample = self._clock.now()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and flush what is buffered (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_interval):
            try:
                last = self._last_sample
                if last is None or self._clock.now() - last >= self._sample_interval:
                    self.sample_once()
                else:
                    self.flush()
            except Exception:
                _log.warning("metrics publisher iteration failed", exc_info=True)
