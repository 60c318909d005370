"""`StreamProcessor`: a Kinesis or DynamoDB stream feeding a `PipelineFunction`.

Production defaults: ReportBatchItemFailures and bisect-on-error on; bounded retries (3) and
record age (1 h) instead of AWS's "retry until the record expires" (-1), which blocks a shard
for up to the stream retention; failure records go to an encrypted, TLS-only SQS
`<id>-failures` queue (kept 14 days) that the recovery workflow drains. The function gets
FAILURE_QUEUE_URL and send rights on it for the poison fast path.

Example:
    >>> StreamProcessor(self, "Ingest", function=ingest_fn, stream=stream,
    ...                 parallelization_factor=2)
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
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

__all__ = ["StreamProcessor"]


class StreamProcessor(Construct):
    """Stream event source mapping with partial batch responses and an SQS on-failure queue."""

    DEFAULT_BATCH_SIZE = 100
    DEFAULT_MAX_BATCHING_WINDOW = Duration.seconds(1)
    DEFAULT_RETRY_ATTEMPTS = 3
    DEFAULT_MAX_RECORD_AGE = Duration.hours(1)
    DEFAULT_PARALLELIZATION_FACTOR = 1
    STARTING_POSITION = lambda_.StartingPosition.TRIM_HORIZON
    FAILURE_QUEUE_RETENTION = Duration.days(14)
    MAX_RETRY_ATTEMPTS = 10_000
    MIN_RECORD_AGE = Duration.minutes(1)
    MAX_RECORD_AGE = Duration.days(7)

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: PipelineFunction,
        stream: kinesis.IStream | None = None,
        table: dynamodb.ITable | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batching_window: Duration = DEFAULT_MAX_BATCHING_WINDOW,
        retry_attempts: int = DEFAULT_RETRY_ATTEMPTS,
        max_record_age: Duration = DEFAULT_MAX_RECORD_AGE,
        parallelization_factor: int = DEFAULT_PARALLELIZATION_FACTOR,
        alarm_thresholds: AlarmThresholds | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if (stream is None) == (table is None):
            raise ValueError(f"{self.node.path}: pass exactly one of stream= or table=")
        self.processor = function
        self.stream = stream
        self.table = table
        self.source_kind = "KINESIS" if stream is not None else "DYNAMODB_STREAMS"
        self.batch_size = batch_size
        self.max_batching_window = max_batching_window
        self.retry_attempts = retry_attempts
        self.max_record_age = max_record_age
        self.parallelization_factor = parallelization_factor
        self.thresholds = alarm_thresholds or AlarmThresholds()
        self._validate()
        require_partial_batch_handler(
            function.handler_file, function.handler_symbol, {self.source_kind}
        )
        self.failure_queue = self._build_failure_queue()
        self.event_source = self._build_event_source()
        self._grant_poison_path()
        # built once: the alarm and the dashboard's lag graph watch this one metric
        self.iterator_age = function.function.metric(
            "IteratorAge", period=METRIC_PERIOD, statistic="Maximum"
        )

    @property
    def stream_arn(self) -> str:
        """ARN of the Kinesis stream or the DynamoDB table's stream."""
        if self.stream is not None:
            return self.stream.stream_arn
        assert self.table is not None and self.table.table_stream_arn is not None
        return self.table.table_stream_arn

    # validation -----------------------------------------------------------------------------

    def _validate(self) -> None:
        name = self.node.path
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"{name}: batch size must be 1..10000")
        if not 0 <= self.max_batching_window.to_seconds() <= 300:
            raise ValueError(f"{name}: batching window must be 0..300 s")
        if not 0 <= self.retry_attempts <= self.MAX_RETRY_ATTEMPTS:
            raise ValueError(
                f"{name}: retry attempts must be 0..{self.MAX_RETRY_ATTEMPTS} "
                "(never -1: infinite retries block the shard until the record expires)"
            )
        age = self.max_record_age.to_seconds()
        if not self.MIN_RECORD_AGE.to_seconds() <= age <= self.MAX_RECORD_AGE.to_seconds():
            raise ValueError(f"{name}: max record age must be 60 s..7 days (never -1 / infinite)")
        if not 1 <= self.parallelization_factor <= 10:
            raise ValueError(f"{name}: parallelization factor must be 1..10")
        if self.table is not None and self.table.table_stream_arn is None:
            raise ValueError(f"{name}: the table has no stream enabled")

    # builders -------------------------------------------------------------------------------

    def _build_failure_queue(self) -> sqs.Queue:
        return failure_queue(
            self,
            "FailureQueue",
            why="this queue is the mapping's on-failure destination (a DLQ)",
            why_no_redrive="this queue is the mapping's on-failure destination",
            retention=self.FAILURE_QUEUE_RETENTION,
        )

    def _build_event_source(self) -> sources.StreamEventSource:
        # The production defaults, the same for both stream kinds.
        settings: dict[str, Any] = {
            "starting_position": self.STARTING_POSITION,
            "batch_size": self.batch_size,
            "max_batching_window": self.max_batching_window,
            "report_batch_item_failures": True,
            "bisect_batch_on_error": True,
            "retry_attempts": self.retry_attempts,
            "max_record_age": self.max_record_age,
            "parallelization_factor": self.parallelization_factor,
            "on_failure": sources.SqsDlq(self.failure_queue),
        }
        event_source: sources.StreamEventSource
        if self.stream is not None:
            event_source = sources.KinesisEventSource(self.stream, **settings)
        else:
            assert self.table is not None
            event_source = sources.DynamoEventSource(self.table, **settings)
        self.processor.function.add_event_source(event_source)
        suppress(
            self.processor.function,
            (
                "Serverless-LambdaDLQ",
                "invoked only by the stream mapping, whose on-failure destination is set",
            ),
        )
        return event_source

    def _grant_poison_path(self) -> None:
        # SqsDlq already lets the mapping (via the function role) send failure records
        self.failure_queue.grant_send_messages(self.processor.function)
        self.processor.add_environment("FAILURE_QUEUE_URL", self.failure_queue.queue_url)

    # metrics and alarms ---------------------------------------------------------------------

    def alarm_specs(self) -> list[AlarmSpec]:
        prefix = self.node.id
        return [
            AlarmSpec(
                name=f"{prefix}IteratorAge",
                metric=self.iterator_age,
                threshold=self.thresholds.iterator_age_ms,
                evaluation_periods=3,
                datapoints_to_alarm=3,
                description=f"{prefix}: the stream consumer is falling behind (iterator age, ms)",
            ),
            queue_not_empty(
                f"{prefix}FailureQueueNotEmpty",
                self.failure_queue,
                self.thresholds.dead_letter_messages,
                f"{prefix}: failure records waiting; run the recovery workflow",
            ),
            self.processor.errors_alarm(prefix, self.thresholds.function_errors),
        ]

    def metric_group(self) -> MetricGroup:
        kind = "Kinesis" if self.stream is not None else "DynamoDB stream"
        return MetricGroup(
            title=f"{self.node.id} ({kind})",
            **self.processor.health_metrics(),
            # DynamoDB Streams publish no record counts; Kinesis's IncomingRecords is the input.
            source=(
                (
                    self.stream.metric_incoming_records(
                        period=METRIC_PERIOD, statistic="Sum", label="incoming records"
                    ),
                )
                if self.stream is not None
                else ()
            ),
            iterator_age=(self.iterator_age,),
            dead_letters=(
                self.failure_queue.metric_approximate_number_of_messages_visible(
                    period=METRIC_PERIOD, statistic="Maximum", label=f"{self.node.id} failures"
                ),
            ),
        )
