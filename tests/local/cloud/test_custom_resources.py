"""CDK's custom resources run at deploy time on the local cloud, unchanged, as AWS documents.

The fixture app (tests/fixtures/apps/custom_resources) uses S3 autoDeleteObjects, logRetention,
AwsCustomResource, the Provider framework (Node.js wrapper, Python handler), a plain
AWS::CloudFormation::CustomResource answered by a Python function, and a Node.js SQS consumer
with partial batch responses. The tests run in file order on one stack: create, update, a
failing update, delete.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.deploy import DeployError
from streamline.local.esm.testing import wait_until
from tests.local.cloud.deployed import FIXTURE_APPS

pytestmark = pytest.mark.slow

APP = FIXTURE_APPS / "custom_resources"


class Stack:
    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.name = f"custom-resources-{uuid.uuid4().hex[:6]}"
        self.outputs: dict[str, str] = {}

    def deploy(self, **context: str) -> dict[str, str]:
        outputs = self.cloud.deploy(APP, {"stack": self.name, **context})
        self.outputs = outputs[self.name]
        return self.outputs

    def item(self, pk: str) -> dict[str, Any] | None:
        found = self.cloud.client("dynamodb").get_item(
            TableName=self.outputs["TableName"], Key={"pk": {"S": pk}}
        )
        item = found.get("Item")
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None


@pytest.fixture(scope="module")
def stack(cloud: LocalCloud) -> Iterator[Stack]:
    deployed = Stack(cloud)
    deployed.deploy()
    yield deployed


def test_create_runs_every_kind_of_custom_resource(stack: Stack) -> None:
    outputs = stack.outputs
    # Provider framework (Node.js onEvent wrapper -> Python handler): Data and physical id.
    assert outputs["GreetingText"] == "hello world x3"
    assert outputs["GreetingId"] == "greeting-world"
    assert stack.item("greeting-world") == {
        "pk": "greeting-world",
        "state": "create",
        "greeting": "hello world x3",
    }
    # A plain AWS::CloudFormation::CustomResource: the property arrived as the string "21".
    assert (outputs["DoubledValue"], outputs["DoubledId"]) == ("42", "doubled-Doubled")
    # AwsCustomResource: one SDK call on create, one with an output path.
    assert stack.item("aws-custom-resource") == {"pk": "aws-custom-resource", "state": "created"}
    assert outputs["RecordsStatus"] == "ACTIVE"
    # logRetention: CDK's Node.js handler set the consumer's log group to a week.
    logs = stack.cloud.client("logs")
    group = f"/aws/lambda/{outputs['ConsumerName']}"
    (found,) = [
        g
        for g in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
        if g["logGroupName"] == group
    ]
    assert found["retentionInDays"] == 7


def test_a_node_consumer_reports_partial_batch_failures(stack: Stack) -> None:
    sqs = stack.cloud.client("sqs")
    tag = uuid.uuid4().hex[:6]
    sqs.send_message_batch(
        QueueUrl=stack.outputs["QueueUrl"],
        Entries=[
            {"Id": "a", "MessageBody": f"a-{tag}"},
            {"Id": "f", "MessageBody": "fail"},
            {"Id": "b", "MessageBody": f"b-{tag}"},
        ],
    )
    wait_until(lambda: stack.item(f"sqs-a-{tag}") and stack.item(f"sqs-b-{tag}"), timeout=60)

    def dead_lettered() -> list[dict[str, Any]]:
        return sqs.receive_message(
            QueueUrl=stack.outputs["DlqUrl"],
            AttributeNames=["ApproximateReceiveCount"],
            WaitTimeSeconds=1,
        ).get("Messages", [])

    # Only the failed message was retried: it reached the DLQ after maxReceiveCount (2).
    messages = wait_until(dead_lettered, timeout=120)
    assert [m["Body"] for m in messages] == ["fail"]
    assert stack.item(f"sqs-a-{tag}")["receives"] == "1"  # type: ignore[index]


def test_update_sends_update_with_the_old_properties(stack: Stack) -> None:
    outputs = stack.deploy(times="4")
    assert outputs["GreetingText"] == "hello world x4"
    assert outputs["GreetingId"] == "greeting-world"  # same physical id: no replacement
    assert stack.item("greeting-world")["state"] == "update"  # type: ignore[index]


def test_a_custom_resource_that_answers_failed_fails_the_deploy_with_its_reason(
    stack: Stack,
) -> None:
    with pytest.raises(DeployError) as failed:
        stack.deploy(times="4", value="-1")
    assert "cannot double a negative number (-1)" in str(failed.value)
    assert "Doubled" in str(failed.value)


def test_delete_runs_custom_resources_before_what_they_clean_up(stack: Stack) -> None:
    cloud = stack.cloud
    s3 = cloud.client("s3")
    bucket = stack.outputs["BucketName"]
    for key in ("a", "b/c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")

    cfn = cloud.client("cloudformation")
    cfn.delete_stack(StackName=stack.name)

    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert bucket not in names  # autoDeleteObjects emptied it first
    assert stack.item("greeting-world")["state"] == "deleted"  # type: ignore[index]
    assert stack.item("aws-custom-resource")["state"] == "deleted"  # type: ignore[index]
