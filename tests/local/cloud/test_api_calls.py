"""API calls on the local cloud are attributed to the function that made them.

A function calls SQS and DynamoDB through boto3 inside its execution environment; its calls are
counted under its name, the test's own calls under ``client``, and the SQS event source
mapping's receives and deletes under ``lambda-esm``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from streamline.local.api_calls import API_CALLS, since, tallies_since
from streamline.local.cloud import LocalCloud
from streamline.local.runtime.testing import create_function

pytestmark = pytest.mark.local

WORKER = """
    import boto3

    sqs = boto3.client("sqs")
    dynamodb = boto3.client("dynamodb")

    def handler(event, context):
        for index in range(event["n"]):
            sqs.send_message(QueueUrl=event["queue"], MessageBody=str(index))
        dynamodb.put_item(TableName=event["table"], Item={"pk": {"S": context.aws_request_id}})
        return {"sent": event["n"]}
"""
SINK = """
    def handler(event, context):
        return {"batchItemFailures": []}
"""


@dataclass
class Setup:
    worker: str
    sink: str
    queue_url: str
    table: str


def _function(cloud: LocalCloud, name: str, source: str) -> None:
    role = cloud.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    create_function(
        cloud.client("lambda"), name, {"app.py": source}, runtime="python3.13", role=role
    )


@pytest.fixture(scope="module")
def setup(cloud: LocalCloud) -> Iterator[Setup]:
    suffix = uuid.uuid4().hex[:8]
    worker, sink = f"calls-worker-{suffix}", f"calls-sink-{suffix}"
    _function(cloud, worker, WORKER)
    _function(cloud, sink, SINK)
    queue_url = cloud.client("sqs").create_queue(QueueName=f"calls-{suffix}")["QueueUrl"]
    arn = cloud.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    table = f"calls-{suffix}"
    cloud.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    mapping = cloud.client("lambda").create_event_source_mapping(
        FunctionName=sink, EventSourceArn=arn, BatchSize=10
    )["UUID"]
    yield Setup(worker, sink, queue_url, table)
    cloud.client("lambda").delete_event_source_mapping(UUID=mapping)


def test_a_functions_calls_are_counted_under_its_name_and_the_tests_under_client(
    cloud: LocalCloud, setup: Setup
) -> None:
    # Given a snapshot of the counts
    before = API_CALLS.snapshot()
    tallies_before = API_CALLS.tallies()

    # When the test invokes the function twice, and it sends 3 messages and writes 1 item each
    lam = cloud.client("lambda")
    for _ in range(2):
        payload = {"n": 3, "queue": setup.queue_url, "table": setup.table}
        response = lam.invoke(FunctionName=setup.worker, Payload=json.dumps(payload).encode())
        assert "FunctionError" not in response, response["Payload"].read()

    # Then its calls carry its name, by service and operation
    calls = since(before)
    assert calls[(setup.worker, "sqs", "SendMessage")] == 6
    assert calls[(setup.worker, "dynamodb", "PutItem")] == 2
    # and the test's Invoke calls are the client's, not the function's
    assert calls[("client", "lambda", "Invoke")] >= 2
    assert (setup.worker, "lambda", "Invoke") not in calls
    put = tallies_since(tallies_before)[(setup.worker, "dynamodb", "PutItem")]
    assert put.units == 2  # one write unit per small item
    assert put.server_ms > 0


def test_the_sqs_pollers_receives_and_deletes_are_counted_as_lambda_esm(
    cloud: LocalCloud, setup: Setup
) -> None:
    before = API_CALLS.tallies()
    sqs = cloud.client("sqs")
    sqs.send_message_batch(
        QueueUrl=setup.queue_url,
        Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(4)],
    )

    # When the mapping has delivered them to the sink and deleted them
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        deleted = tallies_since(before).get(("lambda-esm", "sqs", "DeleteMessageBatch"))
        if deleted is not None and deleted.items >= 4:
            break
        time.sleep(0.1)
    cloud.wait_idle(timeout=30)

    # Then the poller's calls are lambda-esm's, and the batch send is the client's
    calls = tallies_since(before)
    received = calls[("lambda-esm", "sqs", "ReceiveMessage")]
    deleted = calls[("lambda-esm", "sqs", "DeleteMessageBatch")]
    assert received.items >= 4 and 1 <= received.calls <= 4
    assert deleted.items >= 4 and deleted.calls <= deleted.items
    send = calls[("client", "sqs", "SendMessageBatch")]
    assert (send.calls, send.items) == (1, 4)
