"""Typed alarm specifications and the one place that turns them into CloudWatch alarms.

Constructs describe their alarms as `AlarmSpec`s instead of creating them: the `ops-alerts`
topic and the dashboard live in the monitoring stack, which is deployed last, so creating the
alarms there keeps every cross-stack reference pointing one way (no cycles).

Example:
    >>> spec = AlarmSpec("IngestErrors", fn.metric_errors(), threshold=1, description="...")
    >>> build_alarms(monitoring_stack, [spec], topic)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

__all__ = ["METRIC_PERIOD", "AlarmSpec", "AlarmThresholds", "MetricGroup", "build_alarms"]

#: The period of every metric the stacks graph or alarm on (one minute: Lambda's, SQS's and
#: Kinesis's own resolution for these metrics).
METRIC_PERIOD = Duration.minutes(1)


@dataclass(frozen=True)
class AlarmThresholds:
    """Thresholds the processors use for their alarm specs (units in the field names)."""

    iterator_age_ms: int = 60_000
    oldest_message_age_seconds: int = 300
    function_errors: int = 1
    dead_letter_messages: int = 1


@dataclass(frozen=True)
class AlarmSpec:
    """What to alarm on; `build_alarms` decides where the alarm lives and whom it notifies."""

    name: str
    metric: cloudwatch.IMetric
    threshold: float
    description: str
    comparison: cloudwatch.ComparisonOperator = (
        cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
    )
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    treat_missing_data: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING

    def __post_init__(self) -> None:
        if not 1 <= self.datapoints_to_alarm <= self.evaluation_periods:
            raise ValueError(
                f"alarm {self.name}: datapoints_to_alarm must be in 1..evaluation_periods"
            )


@dataclass(frozen=True)
class MetricGroup:
    """The metrics one processor exposes to the dashboard (any field may be empty)."""

    title: str
    invocations: tuple[cloudwatch.IMetric, ...] = ()
    records: tuple[cloudwatch.IMetric, ...] = ()
    #: What the source takes in and hands on (Kinesis IncomingRecords, SQS sent/deleted).
    source: tuple[cloudwatch.IMetric, ...] = ()
    record_failures: tuple[cloudwatch.IMetric, ...] = ()
    errors: tuple[cloudwatch.IMetric, ...] = ()
    duration: tuple[cloudwatch.IMetric, ...] = ()
    iterator_age: tuple[cloudwatch.IMetric, ...] = ()
    queue_depth: tuple[cloudwatch.IMetric, ...] = ()
    oldest_message_age: tuple[cloudwatch.IMetric, ...] = ()
    dead_letters: tuple[cloudwatch.IMetric, ...] = ()


def queue_not_empty(name: str, queue: sqs.IQueue, threshold: float, description: str) -> AlarmSpec:
    """Alarm when a DLQ or failure queue holds ``threshold`` or more visible messages."""
    return AlarmSpec(
        name=name,
        metric=queue.metric_approximate_number_of_messages_visible(
            period=METRIC_PERIOD, statistic="Maximum"
        ),
        threshold=threshold,
        description=description,
    )


def build_alarms(
    scope: Construct, specs: Iterable[AlarmSpec], topic: sns.ITopic
) -> list[cloudwatch.Alarm]:
    """Create one alarm per spec in `scope`, each notifying `topic` on ALARM and OK."""
    action = cw_actions.SnsAction(topic)
    alarms = []
    for spec in specs:
        alarm = cloudwatch.Alarm(
            scope,
            spec.name,
            alarm_description=spec.description,
            metric=spec.metric,
            threshold=spec.threshold,
            comparison_operator=spec.comparison,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.datapoints_to_alarm,
            treat_missing_data=spec.treat_missing_data,
        )
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        alarms.append(alarm)
    return alarms
