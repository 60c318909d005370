"""`QueueProcessor`: an SQS queue (standard or FIFO) + redrive DLQ feeding a `PipelineFunction`.

Production defaults: ReportBatchItemFailures always on; redrive after `maxReceiveCount` (5)
receives into a DLQ of the same type kept 14 days; visibility timeout at least
6 x function timeout + batching window (AWS's guidance, so a message is not redelivered while a
retried batch still runs); SSE-SQS and a TLS-only queue policy; MaximumConcurrency so one
backlog cannot take the account's concurrency. The function gets DLQ_URL and send rights on
the DLQ for the poison fast path.

Example:
    >>> QueueProcessor(self, "Notifications", function=notify_fn, batch_size=25,
    ...                max_batching_window=Duration.seconds(5), max_concurrency=10)
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.constructs.alarm_specs import (
    METRIC_PERIOD,
    AlarmSpec,
    AlarmThresholds,
    MetricGroup,
    queue_not_empty,
)
from stacks.constructs.failure_queue import failure_queue
from stacks.constructs.function import PipelineFunction
from stacks.constructs.guard import require_partial_batch_handler
from stacks.nag import suppress

__all__ = ["QueueProcessor"]


class QueueProcessor(Construct):
    """SQS source queue + DLQ + event source mapping with partial batch responses."""

    DEFAULT_MAX_RECEIVE_COUNT = 5
    DEFAULT_BATCH_SIZE = 10
    DEFAULT_MAX_CONCURRENCY = 5
    VISIBILITY_TIMEOUT_FACTOR = 6
    RETENTION = Duration.days(4)
    DLQ_RETENTION = Duration.days(14)
    FIFO_MAX_BATCH_SIZE = 10

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: PipelineFunction,
        fifo: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batching_window: Duration | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        visibility_timeout: Duration | None = None,
        retention_period: Duration = RETENTION,
        alarm_thresholds: AlarmThresholds | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.fifo = fifo
        self.processor = function
        self.batch_size = batch_size
        self.max_batching_window = max_batching_window or Duration.seconds(0)
        self.max_concurrency = max_concurrency
        self.max_receive_count = max_receive_count
        self.thresholds = alarm_thresholds or AlarmThresholds()
        self._validate()
        # before any resource: a wrong handler must stop synth, not half-build the construct
        require_partial_batch_handler(
            function.handler_file, function.handler_symbol, {"SQS_FIFO" if fifo else "SQS"}
        )
        self.visibility_timeout = self._visibility_timeout(visibility_timeout)
        self.dead_letter_queue = self._build_dead_letter_queue()
        self.queue = self._build_queue(retention_period)
        self.event_source = self._build_event_source()
        self._grant_poison_path()
        # built once: the alarm and the dashboard's lag graph watch this one metric
        self.oldest_message_age = self.queue.metric_approximate_age_of_oldest_message(
            period=METRIC_PERIOD, statistic="Maximum"
        )

    @property
    def minimum_visibility_timeout(self) -> Duration:
        """6 x function timeout + batching window."""
        seconds = self.VISIBILITY_TIMEOUT_FACTOR * int(self.processor.timeout.to_seconds()) + int(
            self.max_batching_window.to_seconds()
        )
        return Duration.seconds(seconds)

    # validation -----------------------------------------------------------------------------

    def _validate(self) -> None:
        name = self.node.path
        window = int(self.max_batching_window.to_seconds())
        if self.fifo and window:
            raise ValueError(f"{name}: Lambda does not support a batching window on FIFO queues")
        if self.fifo and self.batch_size > self.FIFO_MAX_BATCH_SIZE:
            raise ValueError(f"{name}: FIFO batch size is at most {self.FIFO_MAX_BATCH_SIZE}")
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"{name}: batch size must be 1..10000")
        if self.batch_size > 10 and window < 1:
            raise ValueError(f"{name}: a batch size over 10 needs a batching window of >= 1 s")
        if not 0 <= window <= 300:
            raise ValueError(f"{name}: batching window must be 0..300 s")
        if not 2 <= self.max_concurrency <= 1000:
            raise ValueError(f"{name}: max concurrency must be 2..1000")
        if not 1 <= self.max_receive_count <= 1000:
            raise ValueError(f"{name}: max receive count must be 1..1000")

    def _visibility_timeout(self, requested: Duration | None) -> Duration:
        minimum = self.minimum_visibility_timeout
        if requested is None:
            return minimum
        if requested.to_seconds() < minimum.to_seconds():
            raise ValueError(
                f"{self.node.path}: visibility timeout {requested.to_seconds()} s is below "
                f"6 x function timeout + batching window = {minimum.to_seconds()} s"
            )
        return requested

    # builders -------------------------------------------------------------------------------

    def _queue_name(self, suffix: str = "") -> str | None:
        """FIFO queues get explicit names (".fifo" is mandatory); standard ones stay generated."""
        if not self.fifo:
            return None
        base = f"{Stack.of(self).stack_name}-{self.node.id.lower()}{suffix}"
        return f"{base[: 80 - len('.fifo')]}.fifo"

    def _build_dead_letter_queue(self) -> sqs.Queue:
        return failure_queue(
            self,
            "DeadLetterQueue",
            why="this queue is the dead-letter queue",
            retention=self.DLQ_RETENTION,
            queue_name=self._queue_name("-dlq"),
            fifo=self.fifo or None,
        )

    def _build_queue(self, retention_period: Duration) -> sqs.Queue:
        return sqs.Queue(
            self,
            "Queue",
            queue_name=self._queue_name(),
            fifo=self.fifo or None,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=retention_period,
            visibility_timeout=self.visibility_timeout,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=self.max_receive_count
            ),
        )

    def _build_event_source(self) -> sources.SqsEventSource:
        event_source = sources.SqsEventSource(
            self.queue,
            batch_size=self.batch_size,
            max_batching_window=None if self.fifo else self.max_batching_window,
            max_concurrency=self.max_concurrency,
            report_batch_item_failures=True,
        )
        self.processor.function.add_event_source(event_source)
        suppress(
            self.processor.function,
            (
                "Serverless-LambdaEventSourceMappingDestination",
                "SQS mappings have no on-failure destination; the queue's redrive DLQ is it",
            ),
            (
                "Serverless-LambdaDLQ",
                "invoked only by the SQS mapping; failed messages go to the redrive DLQ",
            ),
        )
        return event_source

    def _grant_poison_path(self) -> None:
        self.dead_letter_queue.grant_send_messages(self.processor.function)
        self.processor.add_environment("DLQ_URL", self.dead_letter_queue.queue_url)

    # metrics and alarms ---------------------------------------------------------------------

    def alarm_specs(self) -> list[AlarmSpec]:
        prefix = self.node.id
        return [
            queue_not_empty(
                f"{prefix}DeadLetterQueueNotEmpty",
                self.dead_letter_queue,
                self.thresholds.dead_letter_messages,
                f"{prefix}: messages in the DLQ; run the recovery workflow",
            ),
            AlarmSpec(
                name=f"{prefix}OldestMessageAge",
                metric=self.oldest_message_age,
                threshold=self.thresholds.oldest_message_age_seconds,
                evaluation_periods=3,
                datapoints_to_alarm=3,
                description=f"{prefix}: the queue is falling behind (oldest message age)",
            ),
            self.processor.errors_alarm(prefix, self.thresholds.function_errors),
        ]

    def metric_group(self) -> MetricGroup:
        return MetricGroup(
            title=f"{self.node.id} ({'SQS FIFO' if self.fifo else 'SQS'})",
            **self.processor.health_metrics(),
            source=(
                self.queue.metric_number_of_messages_sent(
                    period=METRIC_PERIOD, statistic="Sum", label="messages sent"
                ),
                self.queue.metric_number_of_messages_deleted(
                    period=METRIC_PERIOD, statistic="Sum", label="messages deleted"
                ),
            ),
            queue_depth=(
                self.queue.metric_approximate_number_of_messages_visible(
                    period=METRIC_PERIOD, statistic="Maximum"
                ),
            ),
            oldest_message_age=(self.oldest_message_age,),
            dead_letters=(
                self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=METRIC_PERIOD, statistic="Maximum", label=f"{self.node.id} DLQ"
                ),
            ),
        )
