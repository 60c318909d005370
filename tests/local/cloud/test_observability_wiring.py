"""The local cloud's own metrics and alarm evaluator, wired together as operators rely on them:
a message landing in a DLQ becomes AWS/SQS metrics, which trip the DLQ alarm, which publishes
AWS's alarm message to the ops topic."""

from __future__ import annotations

import json
import uuid

from streamline.local.cloud import LocalCloud
from tests.local.cloud.deployed import eventually


def test_a_message_in_a_dlq_fires_its_alarm_to_the_ops_topic(cloud: LocalCloud) -> None:
    sqs, sns, cloudwatch = (cloud.client(s) for s in ("sqs", "sns", "cloudwatch"))
    tag = uuid.uuid4().hex[:8]
    dlq_name = f"dlq-{tag}"
    dlq = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    inbox = sqs.create_queue(QueueName=f"ops-inbox-{tag}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topic = sns.create_topic(Name=f"ops-alerts-{tag}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    alarm = f"{dlq_name}-not-empty"
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SQS",
        MetricName="ApproximateNumberOfMessagesVisible",
        Dimensions=[{"Name": "QueueName", "Value": dlq_name}],
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
        AlarmActions=[topic],
    )

    sqs.send_message(QueueUrl=dlq, MessageBody="poison")
    cloud.metrics.sample_once()  # what the publisher does every minute
    changed = cloud.alarms.evaluate_once()  # what the evaluator does every minute

    assert any(t.alarm_name == alarm and t.new_state == "ALARM" for t in changed)
    state = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]
    assert state == "ALARM"
    message = eventually(
        lambda: sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=1).get("Messages")
    )[0]
    envelope = json.loads(message["Body"])
    assert envelope["Subject"].startswith(f'ALARM: "{alarm}"')
    body = json.loads(envelope["Message"])
    assert body["NewStateValue"] == "ALARM"
    assert body["Trigger"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
