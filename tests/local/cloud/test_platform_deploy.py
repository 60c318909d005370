"""Deploying a CDK app with the unchanged CDK CLI, then reconciling what moto skipped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.reconciler import ReconcileError, Reconciler

pytestmark = pytest.mark.slow


def test_tiny_app_deploys_with_outputs(tiny_outputs: dict[str, str]) -> None:
    assert tiny_outputs["FifoQueueUrl"].endswith(".fifo")
    assert tiny_outputs["FunctionArn"].endswith(tiny_outputs["FunctionName"])


def test_reconciler_applied_event_invoke_config(
    cloud: LocalCloud, tiny_outputs: dict[str, str]
) -> None:
    config = cloud.client("lambda").get_function_event_invoke_config(
        FunctionName=tiny_outputs["FunctionName"]
    )

    assert config["MaximumRetryAttempts"] == 1
    assert config["MaximumEventAgeInSeconds"] == 3600
    assert (
        config["DestinationConfig"]["OnFailure"]["Destination"] == tiny_outputs["FailureQueueArn"]
    )


def test_reconciler_applied_sns_subscriptions(
    cloud: LocalCloud, tiny_outputs: dict[str, str]
) -> None:
    sns = cloud.client("sns")
    subs = sns.list_subscriptions_by_topic(TopicArn=tiny_outputs["TopicArn"])["Subscriptions"]
    by_protocol = {s["Protocol"]: s for s in subs}

    assert by_protocol["lambda"]["Endpoint"] == tiny_outputs["FunctionArn"]
    assert by_protocol["sqs"]["Endpoint"] == tiny_outputs["QueueArn"]
    raw = sns.get_subscription_attributes(SubscriptionArn=by_protocol["sqs"]["SubscriptionArn"])
    assert raw["Attributes"]["RawMessageDelivery"] == "true"


def test_reconciler_applied_alarm_and_policies(
    cloud: LocalCloud, tiny_outputs: dict[str, str]
) -> None:
    alarms = cloud.client("cloudwatch").describe_alarms(
        AlarmNamePrefix="streamline-tiny-OldestMessage"
    )["MetricAlarms"]
    queue_policy = cloud.client("sqs").get_queue_attributes(
        QueueUrl=tiny_outputs["QueueUrl"], AttributeNames=["Policy"]
    )["Attributes"]["Policy"]
    topic_policy = cloud.client("sns").get_topic_attributes(TopicArn=tiny_outputs["TopicArn"])[
        "Attributes"
    ]["Policy"]

    (alarm,) = alarms
    assert alarm["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert alarm["AlarmActions"] == [tiny_outputs["TopicArn"]]
    assert json.loads(queue_policy)["Statement"][0]["Principal"] == {"Service": "sns.amazonaws.com"}
    assert "cloudwatch.amazonaws.com" in topic_policy


def test_deployed_function_keeps_layer_tracing_and_architecture(
    cloud: LocalCloud, tiny_outputs: dict[str, str]
) -> None:
    config = cloud.client("lambda").get_function_configuration(
        FunctionName=tiny_outputs["FunctionName"]
    )

    assert config["Layers"][0]["Arn"].endswith(
        ":layer:AWSLambdaPowertoolsPythonV3-python314-arm64:27"
    )
    assert config["TracingConfig"] == {"Mode": "Active"}
    assert config["Architectures"] == ["arm64"]


def test_redeploy_of_an_unchanged_app_succeeds(
    cloud: LocalCloud, tiny_outputs: dict[str, str]
) -> None:
    from tests.local.cloud.deployed import FIXTURE_APPS

    again = cloud.deploy(FIXTURE_APPS / "tiny")["streamline-tiny"]

    assert again == tiny_outputs
    subs = cloud.client("sns").list_subscriptions_by_topic(TopicArn=tiny_outputs["TopicArn"])
    assert len(subs["Subscriptions"]) == 2  # re-applied, not duplicated


def test_reconciler_refuses_a_skipped_type_it_cannot_apply(cloud: LocalCloud) -> None:
    template = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue"},
            "Schedule": {"Type": "AWS::Scheduler::Schedule", "Properties": {}},
        }
    }
    name = "reconcile-refuses"
    cloud.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    reconciler = Reconciler(cloud.client)

    with pytest.raises(ReconcileError, match=r"AWS::Scheduler::Schedule \(Schedule\)"):
        reconciler.reconcile(name)


def test_reconciler_resolves_intrinsics(cloud: LocalCloud) -> None:
    template: dict[str, Any] = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    }
    name = "reconcile-intrinsics"
    cloud.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    reconciler = Reconciler(cloud.client)
    stack = reconciler.load(name)

    resolved = reconciler.resolve(
        stack,
        {
            "arn": {"Fn::GetAtt": ["Queue", "Arn"]},
            "sub": {"Fn::Sub": "${AWS::Region}/${Queue.QueueName}/${!Literal}"},
            "join": {"Fn::Join": ["-", [{"Ref": "AWS::AccountId"}, "x"]]},
        },
    )

    queue_name = stack.physical["Queue"].rsplit("/", 1)[-1]
    assert resolved == {
        "arn": f"arn:aws:sqs:us-east-1:123456789012:{queue_name}",
        "sub": f"us-east-1/{queue_name}/${{Literal}}",
        "join": "123456789012-x",
    }
