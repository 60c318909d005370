"""`streamline cost` on the local cloud: REPORT lines and counted calls become a priced estimate."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from streamline.cli import build_parser, main
from streamline.cost.cli import run
from streamline.local.cloud import LocalCloud
from streamline.local.runtime.testing import make_zip
from streamline.ops.target import Target

pytestmark = pytest.mark.local

WORKER = """
    import boto3

    sqs = boto3.client("sqs")
    dynamodb = boto3.client("dynamodb")

    def handler(event, context):
        for index in range(event["n"]):
            sqs.send_message(QueueUrl=event["queue"], MessageBody=str(index))
            dynamodb.put_item(TableName=event["table"], Item={"pk": {"S": f"{index}"}})
        return {"sent": event["n"]}
"""
INVOCATIONS = 3


@dataclass
class Worked:
    name: str
    target: Target


@pytest.fixture(scope="module")
def worked(cloud: LocalCloud) -> Iterator[Worked]:
    """A function that sent 2 messages and wrote 2 items in each of 3 invocations."""
    suffix = uuid.uuid4().hex[:8]
    name = f"cost-worker-{suffix}"
    role = cloud.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    lam = cloud.client("lambda")
    lam.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="app.handler",
        MemorySize=256,
        Architectures=["arm64"],
        Code={"ZipFile": make_zip({"app.py": WORKER})},
    )
    queue = cloud.client("sqs").create_queue(QueueName=name)["QueueUrl"]
    cloud.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for _ in range(INVOCATIONS):
        payload = json.dumps({"n": 2, "queue": queue, "table": name}).encode()
        response = lam.invoke(FunctionName=name, Payload=payload)
        assert "FunctionError" not in response, response["Payload"].read()
    assert cloud.runner is not None
    cloud.runner.flush_logs()
    yield Worked(name, Target(endpoint_url=cloud.endpoint_url, profile=None, region=None))


def _cost(worked: Worked, *flags: str) -> int:
    args = build_parser().parse_args(
        ["cost", "--since", "10m", "--function", f"work={worked.name}", *flags]
    )
    return run(args, target=worked.target)


def test_cost_prints_line_items_per_million_events_and_a_total(
    worked: Worked, capsys: pytest.CaptureFixture[str]
) -> None:
    # When the three invocations are priced as carrying 6 events
    assert _cost(worked, "--events", "6", "--memory", "128,256,1024") == 0

    out = capsys.readouterr().out
    # Then the REPORT lines and the function's counted calls are line items
    for item in (
        "Lambda requests",
        "Lambda duration arm64",
        "Lambda INIT arm64",
        "SQS requests standard",
        "DynamoDB write request units",
        "CloudWatch Logs ingestion",
        "total per million events",
    ):
        assert item in out, item
    assert "3 invocations" in out and "1 cold start" in out
    assert "Memory sizes" in out and "1024 MB" in out
    assert "estimated from invocations" not in out  # the calls were counted


def test_cost_json_carries_the_counted_calls_and_the_baseline(
    worked: Worked, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cost(worked, "--events", "6", "--json") == 0

    report = json.loads(capsys.readouterr().out)
    items = {i["name"]: i for i in report["items"]}
    # 3 invocations x 2 sends and 2 one-unit writes, counted under the function's name
    assert report["functions"][0]["api_calls"] == 12
    assert items["DynamoDB write request units"]["quantity"] == 6
    # (SQS also carries the receives of any SQS mapping polling in the shared cloud: lambda-esm)
    assert items["SQS requests standard"]["quantity"] >= 6
    assert items["Lambda requests"]["quantity"] == INVOCATIONS
    assert report["per_million_total"] > 0
    assert report["functions"][0]["cold_starts"] == 1
    # one record per invocation already: the function costs the same one call per record
    baseline = {i["name"]: i for i in report["baseline_items"]}
    for name in ("Lambda requests", "Lambda duration arm64", "DynamoDB write request units"):
        assert baseline[name]["per_million"] == pytest.approx(items[name]["per_million"])
    assert report["baseline_per_million_total"] >= report["per_million_total"]


def test_cost_plans_capacity_and_the_monthly_bill_at_a_rate(
    worked: Worked, capsys: pytest.CaptureFixture[str]
) -> None:
    # The worked function stands in as a stage of its own (no ingest here): the plan still
    # sizes its concurrency and prices the month at the asked rate.
    assert _cost(worked, "--events", "6", "--rate", "200", "--json") == 0

    data = json.loads(capsys.readouterr().out)
    capacity = data["plan"]
    assert capacity["rate"] == 200
    (stage,) = capacity["stages"]
    assert stage["stage"] == "work" and stage["records_per_second"] == pytest.approx(100.0)
    assert stage["concurrency"] >= 1 and stage["memory_mb"] in (128, 256, 512, 1024, 1769)
    # usage: the measured dollars per million events at 200 events/s for a 730-hour month
    assert capacity["monthly_usage"] == pytest.approx(data["per_million_total"] * 525.6)
    assert capacity["binding"] is not None and capacity["limits"][0]["binds_at"] > 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate", "fast"], "--rate takes events per second"),
        (["--memory", "64,abc"], "--memory takes sizes in MB"),
        (["--events", "0"], "--events must be a positive whole number"),
        (["--since", "yesterday"], "--since must be"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cost", *flags]) == 2

    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
