"""The alarm evaluator over the session cloud's moto: states in DescribeAlarms, SNS -> SQS messages.

Each test names its own alarm, topic, queue and metric namespace, so it sees only its own data in
the shared cloud. The evaluator runs on its own ManualClock; metric data carry timestamps from
that clock, so advancing it ages them exactly as minutes passing would.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from streamline.local.alarm_evaluator import AlarmEvaluator
from streamline.local.alarm_rules import ALARM, INSUFFICIENT_DATA, OK
from streamline.local.cloud import LocalCloud
from streamline.local.contracts import ManualClock
from streamline.local.esm.testing import wait_until

REGION_NAME = "US East (N. Virginia)"


@dataclass
class Setup:
    cloud: LocalCloud
    clock: ManualClock
    name: str
    namespace: str
    topic_arn: str
    queue_url: str

    @property
    def cloudwatch(self) -> Any:
        return self.cloud.client("cloudwatch")

    def put_alarm(self, **overrides: Any) -> None:
        params: dict[str, Any] = {
            "AlarmName": self.name,
            "AlarmDescription": "poison records in the DLQ",
            "Namespace": self.namespace,
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": "dlq"}],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [self.topic_arn],
            "OKActions": [self.topic_arn],
        }
        params.update(overrides)
        self.cloudwatch.put_metric_alarm(**{k: v for k, v in params.items() if v is not None})

    def put_value(self, value: float, queue_name: str = "dlq", at: float | None = None) -> None:
        self.cloudwatch.put_metric_data(
            Namespace=self.namespace,
            MetricData=[
                {
                    "MetricName": "ApproximateNumberOfMessagesVisible",
                    "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
                    "Timestamp": datetime.fromtimestamp(
                        self.clock.now() if at is None else at, UTC
                    ),
                    "Value": value,
                }
            ],
        )

    def alarm(self) -> dict[str, Any]:
        alarms = self.cloudwatch.describe_alarms(AlarmNames=[self.name])["MetricAlarms"]
        return dict(alarms[0])

    def notifications(self) -> list[dict[str, Any]]:
        """Every SNS notification in the queue (deleted as read), oldest first."""
        sqs = self.cloud.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def setup(cloud: LocalCloud) -> Iterator[Setup]:
    name = f"alarm-{uuid.uuid4().hex[:10]}"
    sns, sqs = cloud.client("sns"), cloud.client("sqs")
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    yield Setup(cloud, ManualClock(), name, f"Test/{name}", topic_arn, queue_url)
    cloud.client("cloudwatch").delete_alarms(AlarmNames=[name])


def test_dlq_alarm_fires_an_sns_message_in_aws_format_and_recovers(setup: Setup) -> None:
    # Given an alarm on a DLQ's depth that treats missing data as not breaching
    setup.put_alarm()
    evaluator = AlarmEvaluator(setup.cloud.backends, setup.clock)

    # When it is first evaluated with no data, it leaves its initial INSUFFICIENT_DATA for OK
    evaluator.evaluate_once()
    assert setup.alarm()["StateValue"] == OK
    [first] = setup.notifications()
    assert first["Subject"] == f'OK: "{setup.name}" in {REGION_NAME}'
    assert json.loads(first["Message"])["OldStateValue"] == INSUFFICIENT_DATA

    # When a poison record lands (depth 3) and the alarm is evaluated
    setup.put_value(3.0)
    changed = evaluator.evaluate_once()

    # Then DescribeAlarms shows ALARM with CloudWatch's reason
    alarm = setup.alarm()
    assert alarm["StateValue"] == ALARM
    assert alarm["StateReason"].startswith(
        "Threshold Crossed: 1 out of the last 1 datapoints [3.0 ("
    )
    assert alarm["StateReason"].endswith(
        "was greater than or equal to the threshold (1.0)"
        " (minimum 1 datapoint for OK -> ALARM transition)."
    )
    assert json.loads(alarm["StateReasonData"])["recentDatapoints"] == [3.0]
    assert [(t.old_state, t.new_state) for t in changed] == [(OK, ALARM)]
    assert changed[0].notified == (setup.topic_arn,)

    # And the topic's subscriber got AWS's alarm notification
    [note] = setup.notifications()
    assert note["Type"] == "Notification"
    assert note["TopicArn"] == setup.topic_arn
    assert note["Subject"] == f'ALARM: "{setup.name}" in {REGION_NAME}'
    message = json.loads(note["Message"])
    assert message["AlarmName"] == setup.name
    assert message["AlarmDescription"] == "poison records in the DLQ"
    assert message["AWSAccountId"] == setup.cloud.backends.account_id
    assert message["NewStateValue"] == ALARM
    assert message["OldStateValue"] == OK
    assert message["NewStateReason"] == alarm["StateReason"]
    assert message["Region"] == REGION_NAME
    assert message["AlarmArn"] == alarm["AlarmArn"]
    assert message["AlarmActions"] == [setup.topic_arn]
    assert message["OKActions"] == [setup.topic_arn]
    assert message["InsufficientDataActions"] == []
    assert message["Trigger"] == {
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Namespace": setup.namespace,
        "StatisticType": "Statistic",
        "Statistic": "MAXIMUM",
        "Unit": None,
        "Dimensions": [{"value": "dlq", "name": "QueueName"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": 1.0,
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "",
    }
    for stamp in ("StateChangeTime", "AlarmConfigurationUpdatedTimestamp"):
        assert message[stamp].endswith("+0000")

    # When nothing changes, a further pass announces nothing
    assert evaluator.evaluate_once() == []
    assert setup.notifications() == []

    # When two minutes pass with no data (missing treated as not breaching)
    setup.clock.advance(120)
    evaluator.evaluate_once()

    # Then the alarm is OK again and the OK action fired
    assert setup.alarm()["StateValue"] == OK
    [recovered] = setup.notifications()
    assert recovered["Subject"] == f'OK: "{setup.name}" in {REGION_NAME}'
    assert json.loads(recovered["Message"])["OldStateValue"] == ALARM
    mine = [t for t in evaluator.transitions() if t.alarm_name == setup.name]
    assert [t.new_state for t in mine] == [OK, ALARM, OK]


def test_missing_data_leaves_the_alarm_insufficient_without_actions(setup: Setup) -> None:
    setup.put_alarm(TreatMissingData="missing")
    AlarmEvaluator(setup.cloud.backends, setup.clock).evaluate_once()
    alarm = setup.alarm()
    assert alarm["StateValue"] == INSUFFICIENT_DATA
    assert alarm["StateReason"] == "Insufficient Data: 1 datapoint was unknown."
    assert setup.notifications() == []


def test_data_for_other_dimensions_does_not_count(setup: Setup) -> None:
    setup.put_alarm(TreatMissingData="missing")
    setup.put_value(9.0, queue_name="another-queue")
    AlarmEvaluator(setup.cloud.backends, setup.clock).evaluate_once()
    assert setup.alarm()["StateValue"] == INSUFFICIENT_DATA


def test_disabled_actions_change_state_without_a_message(setup: Setup) -> None:
    setup.put_alarm(ActionsEnabled=False)
    setup.put_value(5.0)
    AlarmEvaluator(setup.cloud.backends, setup.clock).evaluate_once()
    assert setup.alarm()["StateValue"] == ALARM
    assert setup.notifications() == []


def test_m_of_n_sum_alarm_publishes_over_http(setup: Setup) -> None:
    # Given a 2-of-3 alarm on the per-minute sum, and breaches in two of the last three minutes
    setup.put_alarm(Statistic="Sum", EvaluationPeriods=3, DatapointsToAlarm=2, Threshold=4.0)
    minute = math.floor(setup.clock.now() / 60) * 60  # pin each sample inside its minute
    setup.put_value(2.0, at=minute - 120)
    setup.put_value(3.0, at=minute - 120)  # sum 5 two minutes ago
    setup.put_value(1.0, at=minute - 60)  # sum 1 a minute ago
    setup.put_value(4.0, at=minute)  # sum 4 now
    # When an evaluator that publishes through the SNS API evaluates it
    evaluator = AlarmEvaluator(
        setup.cloud.backends, setup.clock, endpoint_url=setup.cloud.endpoint_url
    )
    evaluator.evaluate_once()
    # Then it alarms and the subscriber gets the notification
    assert setup.alarm()["StateValue"] == ALARM
    notes = setup.notifications()
    assert [n["Subject"].split(":")[0] for n in notes] == [ALARM]
    message = json.loads(notes[0]["Message"])
    assert message["Trigger"]["Statistic"] == "SUM"
    assert message["Trigger"]["DatapointsToAlarm"] == 2
    assert message["NewStateReason"].startswith("Threshold Crossed: 2 out of the last 3 datapoints")


def test_percentile_alarm(setup: Setup) -> None:
    setup.put_alarm(Statistic=None, ExtendedStatistic="p90", Threshold=50.0)
    assert setup.alarm()["ExtendedStatistic"] == "p90"
    minute = math.floor(setup.clock.now() / 60) * 60  # all samples in the current minute
    for value in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0]:
        setup.put_value(value, at=minute)
    AlarmEvaluator(setup.cloud.backends, setup.clock).evaluate_once()
    # p90 of ten values is the 9th smallest: 9 < 50.
    assert setup.alarm()["StateValue"] == OK
    setup.put_value(100.0, at=minute)  # now the 9th smallest of eleven (ceil(9.9) = 10th) is 100
    AlarmEvaluator(setup.cloud.backends, setup.clock).evaluate_once()
    assert setup.alarm()["StateValue"] == ALARM


def test_started_evaluator_runs_until_stopped(setup: Setup) -> None:
    setup.put_alarm()
    setup.put_value(7.0)
    evaluator = AlarmEvaluator(setup.cloud.backends, setup.clock, interval=0.05).start()
    try:
        wait_until(lambda: setup.alarm()["StateValue"] == ALARM, timeout=10)
    finally:
        evaluator.stop()
    assert any(t.alarm_name == setup.name for t in evaluator.transitions())
