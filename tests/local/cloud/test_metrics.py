"""AWS's own service metrics, published into the local cloud's CloudWatch (issue 4, item 2)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.metrics import function_name
from streamline.local.runtime.testing import make_zip

pytestmark = pytest.mark.local

HANDLER = """
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""


def _window(cloud: LocalCloud) -> dict[str, datetime]:
    # Data points carry the cloud's (manual) clock time, which other tests may have advanced.
    now = cloud.clock.now()
    return {
        "StartTime": datetime.fromtimestamp(now - 3600, tz=UTC),
        "EndTime": datetime.fromtimestamp(now + 600, tz=UTC),
    }


def _sum(cloud: LocalCloud, namespace: str, name: str, dims: dict[str, str], stat: str) -> Any:
    response = cloud.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        Period=86400,
        Statistics=[stat],
        **_window(cloud),
    )
    points = response["Datapoints"]
    return sum(p[stat] for p in points) if stat == "Sum" else (points[0][stat] if points else None)


def test_function_name_dimension_from_names_and_arns() -> None:
    assert function_name("f") == "f"
    assert function_name("f:live") == "f"
    assert function_name("arn:aws:lambda:us-east-1:123456789012:function:f") == "f"
    assert function_name("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST") == "f"
    assert function_name("123456789012:function:f") == "f"


def test_lambda_invocations_and_errors_reach_cloudwatch(cloud: LocalCloud) -> None:
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    lam = cloud.client("lambda")
    role = cloud.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HANDLER})},
    )
    assert "FunctionError" not in lam.invoke(FunctionName=name, Payload=b"{}")
    failed = lam.invoke(FunctionName=name, Payload=json.dumps({"fail": True}).encode())
    assert failed["FunctionError"] == "Unhandled"
    cloud.metrics.flush()

    dims = {"FunctionName": name}
    assert _sum(cloud, "AWS/Lambda", "Invocations", dims, "Sum") == 2
    assert _sum(cloud, "AWS/Lambda", "Errors", dims, "Sum") == 1
    assert _sum(cloud, "AWS/Lambda", "Duration", dims, "Maximum") > 0
    assert _sum(cloud, "AWS/Lambda", "ConcurrentExecutions", dims, "Maximum") == 1

    # The same through GetMetricData, as dashboards read it.
    stat = {"Namespace": "AWS/Lambda", "Dimensions": [{"Name": "FunctionName", "Value": name}]}
    response = cloud.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": metric.lower(),
                "MetricStat": {
                    "Metric": {**stat, "MetricName": metric},
                    "Period": 86400,
                    "Stat": "Sum",
                },
            }
            for metric in ("Invocations", "Errors")
        ],
        **_window(cloud),
    )
    results = {r["Id"]: sum(r["Values"]) for r in response["MetricDataResults"]}
    assert results == {"invocations": 2, "errors": 1}

    # An asynchronous invocation is counted as received, then invoked.
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")
    cloud.wait_idle(timeout=30)
    cloud.metrics.flush()
    assert _sum(cloud, "AWS/Lambda", "AsyncEventsReceived", dims, "Sum") == 1
    assert _sum(cloud, "AWS/Lambda", "Invocations", dims, "Sum") == 3


def test_sampled_queue_depth_and_no_double_counted_stream_records(cloud: LocalCloud) -> None:
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    sqs = cloud.client("sqs")
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    for index in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(index))
    stream = f"metrics-{uuid.uuid4().hex[:8]}"
    kinesis = cloud.client("kinesis")
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    for index in range(4):
        kinesis.put_record(StreamName=stream, Data=str(index).encode(), PartitionKey="k")

    cloud.metrics.sample_once()

    dims = {"QueueName": queue}
    visible = _sum(cloud, "AWS/SQS", "ApproximateNumberOfMessagesVisible", dims, "Maximum")
    assert visible == 3
    assert _sum(cloud, "AWS/SQS", "ApproximateNumberOfMessagesNotVisible", dims, "Maximum") == 0
    age = _sum(cloud, "AWS/SQS", "ApproximateAgeOfOldestMessage", dims, "Maximum")
    assert age is not None and age >= 0
    # moto's Kinesis backend publishes IncomingRecords itself; sampling must not add to it.
    assert _sum(cloud, "AWS/Kinesis", "IncomingRecords", {"StreamName": stream}, "Sum") == 4


def test_sqs_message_counts_are_sums_since_the_last_sample(cloud: LocalCloud) -> None:
    """NumberOfMessagesSent/Received/Deleted count messages (batches per entry), as on AWS."""
    queue = f"counts-{uuid.uuid4().hex[:8]}"
    sqs = cloud.client("sqs")
    url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "300"})["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(5)]
    )
    sqs.send_message(QueueUrl=url, MessageBody="single")
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=received[0]["ReceiptHandle"])
    sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received[1:3])
        ],
    )
    empty = sqs.create_queue(QueueName=f"{queue}-empty")["QueueUrl"]
    assert "Messages" not in sqs.receive_message(QueueUrl=empty)

    cloud.metrics.sample_once()
    cloud.metrics.sample_once()  # a second sample adds zeros, never the same counts again

    dims = {"QueueName": queue}
    assert _sum(cloud, "AWS/SQS", "NumberOfMessagesSent", dims, "Sum") == 6
    assert _sum(cloud, "AWS/SQS", "NumberOfMessagesReceived", dims, "Sum") == len(received) == 4
    assert _sum(cloud, "AWS/SQS", "NumberOfMessagesDeleted", dims, "Sum") == 3
    empty_dims = {"QueueName": f"{queue}-empty"}
    assert _sum(cloud, "AWS/SQS", "NumberOfMessagesReceived", empty_dims, "Sum") == 0


def test_state_machine_executions_become_aws_states_metrics(deployed: Any) -> None:
    """Executions of a deployed machine are sampled into AWS/States, by StateMachineArn."""
    from tests.local.cloud.deployed import eventually

    cloud = deployed.cloud
    machine = deployed.out("MachineArn")
    sfn = cloud.client("stepfunctions")
    cloud.metrics.sample_once()  # baseline: later samples count only what happens next
    execution = sfn.start_execution(
        stateMachineArn=machine,
        input=json.dumps({"case": "error", "respond": "error", "errorType": "CustomError"}),
    )["executionArn"]
    eventually(lambda: sfn.describe_execution(executionArn=execution)["status"] != "RUNNING")
    cloud.metrics.sample_once()

    def total(name: str, stat: str = "Sum") -> float:
        points = cloud.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/States",
            MetricName=name,
            Dimensions=[{"Name": "StateMachineArn", "Value": machine}],
            StartTime=datetime(2000, 1, 1, tzinfo=UTC),
            EndTime=datetime(2100, 1, 1, tzinfo=UTC),
            Period=60,
            Statistics=[stat],
        )["Datapoints"]
        return sum(p[stat] for p in points)

    assert total("ExecutionsStarted") >= 1
    assert total("ExecutionsSucceeded") >= 1
    # each ended execution's duration, in milliseconds
    described = sfn.describe_execution(executionArn=execution)
    elapsed = (described["stopDate"] - described["startDate"]).total_seconds() * 1000
    assert total("ExecutionTime", "SampleCount") >= 1
    assert 0 <= total("ExecutionTime", "Minimum") <= elapsed + 1
