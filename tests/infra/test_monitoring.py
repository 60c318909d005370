"""Alarms notify ops-alerts; one dashboard per stage."""

from __future__ import annotations

from .support import Synth, resources


def test_every_alarm_notifies_the_ops_alerts_topic(stage: Synth) -> None:
    monitoring = stage.pipeline.monitoring
    template = stage.json("monitoring")
    topic = {"Ref": stage.logical_id(monitoring.topic)}
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    assert len(alarms) == len(monitoring.alarms) >= 14
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [topic]
        assert alarm["Properties"]["OKActions"] == [topic]


def test_alarms_cover_dlqs_iterator_age_errors_and_destinations(dev: Synth) -> None:
    names = {alarm.node.id for alarm in dev.pipeline.monitoring.alarms}
    assert {
        "IngestIteratorAge",
        "IngestFailureQueueNotEmpty",
        "IngestFunctionErrors",
        "ChangesIteratorAge",
        "ChangesFailureQueueNotEmpty",
        "FulfilmentDeadLetterQueueNotEmpty",
        "FulfilmentOldestMessageAge",
        "FulfilmentFunctionErrors",
        "NotificationsDeadLetterQueueNotEmpty",
        "NotificationsOldestMessageAge",
        "NotifierDestinationDeliveryFailures",
        "NotifyFailuresNotEmpty",
        "RecoveryExecutionsFailed",
    } <= names


def test_ops_alerts_topic_is_encrypted_and_tls_only(stage: Synth) -> None:
    (topic,) = resources(stage.json("monitoring"), "AWS::SNS::Topic").values()
    key = topic["Properties"]["KmsMasterKeyId"]  # the alias ARN of the AWS-managed SNS key
    assert key["Fn::Join"][1][-1] == ":alias/aws/sns"
    policies = resources(stage.json("monitoring"), "AWS::SNS::TopicPolicy")
    statements = [
        s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )


def test_dashboard_has_the_stage_rows(stage: Synth) -> None:
    (dashboard,) = resources(stage.json("monitoring"), "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == f"streamline-{stage.stage}"
    body = str(dashboard["Properties"]["DashboardBody"])
    for needle in (
        "RecordsProcessed",
        "RecordsFailed",
        "RecordsPoisoned",
        "IncomingRecords",
        "NumberOfMessagesSent",
        "NumberOfMessagesDeleted",
        "Duration",
        "IteratorAge",
        "ApproximateAgeOfOldestMessage",
        "ApproximateNumberOfMessagesVisible",
        "DestinationDeliveryFailures",
        "ExecutionsStarted",
        "ExecutionsFailed",
        "alarm",
    ):
        assert needle in body, needle
