"""Each function runs with credentials of its own role; calls are attributed and audited by them.

Through the public APIs: a role with one scoped grant, a function that uses it and steps past
it, then what STS, the API-call counter and ``local status`` say.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from streamline.local.api_calls import API_CALLS, since
from streamline.local.cloud import LocalCloud
from streamline.local.runtime.testing import make_zip

HANDLER = """
import json
import os

import boto3


def handler(event, context):
    sts = boto3.client("sts")
    sqs = boto3.client("sqs")
    identity = sts.get_caller_identity()
    sqs.send_message(QueueUrl=event["allowed"], MessageBody="ok")
    sqs.send_message_batch(
        QueueUrl=event["allowed"], Entries=[{"Id": "a", "MessageBody": "ok"}]
    )
    sqs.send_message(QueueUrl=event["other"], MessageBody="not granted")
    boto3.client("dynamodb").list_tables()
    return {
        "arn": identity["Arn"],
        "user_id": identity["UserId"],
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "app_id": os.environ.get("AWS_SDK_UA_APP_ID"),
        "token": bool(os.environ.get("AWS_SESSION_TOKEN")),
    }
"""


def _setup(cloud: LocalCloud) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    sqs, iam = cloud.client("sqs"), cloud.client("iam")
    allowed = sqs.create_queue(QueueName=f"allowed-{suffix}")["QueueUrl"]
    other = sqs.create_queue(QueueName=f"other-{suffix}")["QueueUrl"]
    allowed_arn = sqs.get_queue_attributes(QueueUrl=allowed, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    role_name = f"fn-role-{suffix}-with-a-long-cdk-like-name-FnServiceRoleABCDEF12"
    role = iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]
    # What CDK's queue.grantSendMessages(fn) writes: an inline policy on the role.
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="FnServiceRoleDefaultPolicy",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes"],
                        "Resource": allowed_arn,
                    }
                ],
            }
        ),
    )
    name = f"streamline-dev-IdentityProbeFunction{suffix}-{'x' * 40}"
    cloud.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role["Arn"],
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HANDLER})},
        # A function's own values cannot replace the role's credentials (AWS refuses them).
        Environment={"Variables": {"AWS_ACCESS_KEY_ID": "mine", "AWS_SESSION_TOKEN": "mine"}},
        Timeout=30,
    )
    return {"name": name, "role": role, "allowed": allowed, "other": other}


def _invoke(cloud: LocalCloud, setup: dict[str, Any]) -> dict[str, Any]:
    answer = cloud.client("lambda").invoke(
        FunctionName=setup["name"],
        Payload=json.dumps({"allowed": setup["allowed"], "other": setup["other"]}).encode(),
        LogType="Tail",
    )
    payload = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, payload
    return payload  # type: ignore[no-any-return]


def test_a_function_calls_as_its_execution_role(cloud: LocalCloud) -> None:
    setup = _setup(cloud)
    result = _invoke(cloud, setup)
    role = setup["role"]
    assert result["arn"] == (
        f"arn:aws:sts::123456789012:assumed-role/{role['RoleName']}/{setup['name']}"
    )
    assert result["user_id"] == f"{role['RoleId']}:{setup['name']}"
    assert result["key"].startswith("ASIA") and len(result["key"]) == 20
    assert result["token"] is True
    assert result["app_id"] is None  # nothing AWS does not set


def test_calls_are_attributed_by_access_key(cloud: LocalCloud) -> None:
    setup = _setup(cloud)
    before = API_CALLS.snapshot()
    _invoke(cloud, setup)
    calls = since(before)
    assert calls.get((setup["name"], "sqs", "SendMessage")) == 2
    assert calls.get((setup["name"], "sqs", "SendMessageBatch")) == 1
    assert calls.get((setup["name"], "dynamodb", "ListTables")) == 1
    assert calls.get(("client", "lambda", "Invoke")) == 1  # this test's own call


def test_calls_the_role_would_be_denied_are_reported_in_status(cloud: LocalCloud) -> None:
    setup = _setup(cloud)
    _invoke(cloud, setup)
    _invoke(cloud, setup)
    mine = [d for d in cloud.status()["would_be_denied"] if d["function"] == setup["name"]]
    by_action = {(d["action"], d["resource"]): d for d in mine}
    other_arn = setup["other"].rsplit("/", 1)[-1]
    other = f"arn:aws:sqs:us-east-1:123456789012:{other_arn}"
    assert set(by_action) == {("sqs:SendMessage", other), ("dynamodb:ListTables", "*")}
    denied = by_action[("sqs:SendMessage", other)]
    assert denied["count"] == 2
    assert denied["reason"] == "no statement allows it (FnServiceRoleDefaultPolicy)"
    # Not reported: the granted queue (SendMessage and SendMessageBatch, which IAM checks as
    # SendMessage) and STS GetCallerIdentity (AWS never denies it).
    assert not any(d["resource"] and "allowed-" in d["resource"] for d in mine)


def test_a_mapping_whose_role_cannot_poll_its_source_is_reported(cloud: LocalCloud) -> None:
    # Lambda's poller reads the queue with the function's role: a role without
    # sqs:ReceiveMessage works locally (the engine is in-process) but not on AWS.
    setup = _setup(cloud)  # its role may send to "allowed", nothing more
    queue_arn = cloud.client("sqs").get_queue_attributes(
        QueueUrl=setup["other"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    cloud.client("lambda").create_event_source_mapping(
        FunctionName=setup["name"], EventSourceArn=queue_arn, BatchSize=1
    )

    def reported() -> set[str]:
        return {
            d["action"]
            for d in cloud.status()["would_be_denied"]
            if d["function"] == setup["name"] and d["resource"] == queue_arn
        }

    from streamline.local.esm.testing import wait_until

    wait_until(lambda: len(reported()) >= 3, timeout=30)  # recorded one by one
    assert reported() == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
