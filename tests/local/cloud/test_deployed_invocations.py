"""docs/esm-semantics.md items 25-31 on the deployed conformance app: async invocation and
Destinations, execution environments, logs, environment and context, and Step Functions
error names."""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.local.cloud.deployed import (
    Deployed,
    eventually,
)

pytestmark = pytest.mark.local


def _invoke(
    d: Deployed, function: str, payload: dict[str, Any], kind: str = "RequestResponse"
) -> dict[str, Any]:
    return d.client("lambda").invoke(
        FunctionName=d.out(function), InvocationType=kind, Payload=json.dumps(payload).encode()
    )


def _for(scenario: str) -> Any:
    """Matches a destination record (or a raw event) about ``scenario``."""

    def match(body: dict[str, Any]) -> bool:
        payload = body.get("requestPayload", body.get("detail", {}).get("requestPayload", body))
        return isinstance(payload, dict) and payload.get("scenario") == scenario

    return match


def test_item_25_event_returns_202_and_a_failure_is_retried_after_a_minute(
    deployed: Deployed,
) -> None:
    scenario = f"item25-{uuid.uuid4().hex[:6]}"
    response = _invoke(
        deployed, "AsyncDestName", {"scenario": scenario, "respond": "raise"}, "Event"
    )
    assert response["StatusCode"] == 202
    eventually(lambda: deployed.journal(scenario), timeout=10)
    deployed.cloud.clock.advance(61)  # AsyncDest retries once (retry_attempts=1)
    eventually(lambda: len(deployed.journal(scenario)) == 2, timeout=10)
    failure = deployed.take("AsyncFailureUrl", _for(scenario))["Json"]
    assert failure["requestContext"]["condition"] == "RetriesExhausted"
    assert failure["requestContext"]["approximateInvokeCount"] == 2


def test_item_26_destination_records_in_aws_shape_for_every_target_kind(deployed: Deployed) -> None:
    scenario = f"item26-{uuid.uuid4().hex[:6]}"
    payload = {"scenario": scenario, "respond": "literal", "value": {"ok": True}}
    _invoke(deployed, "AsyncDestName", payload, "Event")
    record = deployed.take("AsyncSuccessUrl", _for(scenario))["Json"]
    assert set(record) == {
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    assert record["version"] == "1.0"
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["functionArn"].startswith(deployed.out("AsyncDestArn"))
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["requestPayload"] == payload
    assert record["responseContext"]["statusCode"] == 200
    assert record["responseContext"]["executedVersion"] == "$LATEST"
    assert record["responsePayload"] == {"ok": True}

    # SNS on failure (raw delivery into a queue), after zero retries
    _invoke(deployed, "AsyncSnsName", {"scenario": scenario, "respond": "raise"}, "Event")
    sns_record = deployed.take("AsyncSnsSinkUrl", _for(scenario))["Json"]
    assert sns_record["requestContext"]["condition"] == "RetriesExhausted"
    assert sns_record["responseContext"]["functionError"] == "Unhandled"
    assert sns_record["responsePayload"]["errorType"] == "RuntimeError"

    # EventBridge on success
    _invoke(
        deployed, "AsyncEbName", {"scenario": scenario, "respond": "literal", "value": 7}, "Event"
    )
    event = deployed.take("AsyncEbSinkUrl", _for(scenario))["Json"]
    assert event["source"] == "lambda"
    assert event["detail-type"] == "Lambda Function Invocation Result - Success"
    assert event["detail"]["responsePayload"] == 7

    # Lambda on failure: the record is the destination function's event
    target = f"{scenario}-lambda"
    _invoke(deployed, "AsyncLambdaName", {"scenario": target, "respond": "raise"}, "Event")
    entries = eventually(
        lambda: [e for e in deployed.journal(target) if "requestContext" in e["event"]], timeout=20
    )
    assert entries[0]["event"]["requestContext"]["condition"] == "RetriesExhausted"

    # the function's DeadLetterConfig receives the original event after the final failure
    dead = f"{scenario}-dlq"
    _invoke(deployed, "AsyncDestName", {"scenario": dead, "respond": "raise"}, "Event")
    eventually(lambda: deployed.journal(dead), timeout=10)
    deployed.cloud.clock.advance(61)
    message = deployed.take("AsyncDlqUrl", _for(dead))
    assert message["Json"] == {"scenario": dead, "respond": "raise"}
    assert "ErrorMessage" in message.get("MessageAttributes", {})


def test_item_25_events_older_than_the_maximum_age_are_dropped(deployed: Deployed) -> None:
    scenario = f"item25age-{uuid.uuid4().hex[:6]}"
    _invoke(deployed, "AsyncDestName", {"scenario": scenario, "respond": "raise"}, "Event")
    eventually(lambda: deployed.journal(scenario), timeout=10)
    deployed.cloud.clock.advance(200)  # past AsyncDest's 120 s maximum event age
    record = deployed.take("AsyncFailureUrl", _for(scenario))["Json"]
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert len(deployed.journal(scenario)) == 1


def test_item_27_synchronous_invocations_never_use_destinations(deployed: Deployed) -> None:
    scenario = f"item27-{uuid.uuid4().hex[:6]}"
    response = _invoke(deployed, "AsyncDestName", {"scenario": scenario, "respond": "raise"})
    assert response["FunctionError"] == "Unhandled"
    deployed.cloud.wait_idle(timeout=30)
    for output in ("AsyncFailureUrl", "AsyncSuccessUrl"):
        with pytest.raises(AssertionError):
            deployed.take(output, _for(scenario), timeout=2)


def test_item_28_environments_are_warm_concurrent_and_replaced_after_a_timeout(
    deployed: Deployed,
) -> None:
    first = json.loads(_invoke(deployed, "BehaveName", {"respond": "describe"})["Payload"].read())
    second = json.loads(_invoke(deployed, "BehaveName", {"respond": "describe"})["Payload"].read())
    assert (first["pid"], first["initAt"]) == (second["pid"], second["initAt"])
    assert second["invocations"] == first["invocations"] + 1

    pids: list[int] = []

    def call() -> None:
        out = _invoke(deployed, "SlowName", {"respond": "describe", "sleep": 0.7})
        pids.append(json.loads(out["Payload"].read())["pid"])

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(pids)) == 3

    scenario = f"item28-{uuid.uuid4().hex[:6]}"
    timed_out = _invoke(deployed, "SlowName", {"scenario": scenario, "sleep": 5})
    assert timed_out["FunctionError"] == "Unhandled"
    error = json.loads(timed_out["Payload"].read())
    assert "Task timed out after 2.00 seconds" in error["errorMessage"]
    (entry,) = deployed.journal(scenario)
    with pytest.raises(ProcessLookupError):  # the environment that timed out was ended
        os.kill(entry["pid"], 0)
    for _ in range(4):
        after = json.loads(_invoke(deployed, "SlowName", {"respond": "describe"})["Payload"].read())
        assert after["pid"] != entry["pid"]

    with pytest.raises(ClientError) as throttled:
        _invoke(deployed, "ThrottledName", {})
    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"


def test_item_29_start_end_report_lines_in_the_function_log_group(deployed: Deployed) -> None:
    name = deployed.out("ProbeName")
    out = json.loads(_invoke(deployed, "ProbeName", {"hello": "world"})["Payload"].read())
    assert out["powertools"]  # the public Powertools layer was served locally
    logs = deployed.client("logs")
    group = f"/aws/lambda/{name}"

    def report_lines() -> list[str]:
        try:
            events = logs.filter_log_events(logGroupName=group)["events"]
        except ClientError:
            return []
        return [e["message"] for e in events]

    lines = eventually(
        lambda: [m for m in report_lines() if m.startswith("REPORT RequestId:")] and report_lines()
    )
    assert any(m.startswith("START RequestId:") for m in lines)
    assert any(m.startswith("END RequestId:") for m in lines)
    report = next(m for m in lines if m.startswith("REPORT RequestId:"))
    for part in (
        "Duration:",
        "Billed Duration:",
        "Memory Size: 256 MB",
        "Max Memory Used:",
        "Init Duration:",
    ):
        assert part in report
    assert logs.describe_log_streams(logGroupName=group)["logStreams"]


def test_item_30_lambda_environment_and_context(deployed: Deployed) -> None:
    scenario = f"item30-{uuid.uuid4().hex[:6]}"
    _invoke(deployed, "BehaveName", {"scenario": scenario})
    (entry,) = deployed.journal(scenario)
    env = entry["env"]
    name = deployed.out("BehaveName")
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["_HANDLER"] == "behave.handler"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert entry["functionName"] == name
    assert entry["memoryLimitInMB"] in (256, "256")
    assert entry["invokedFunctionArn"] == deployed.out("BehaveArn")
    assert 0 < entry["remainingMs"] <= 10_000


@pytest.mark.parametrize(
    ("case", "payload", "expected"),
    [
        ("error", {"respond": "error", "errorType": "CustomError"}, "CustomError"),
        ("lambda-timeout", {"sleep": 5}, "Sandbox.Timedout"),
        ("task-timeout", {"sleep": 3}, "States.Timeout"),
    ],
)
def test_item_31_step_functions_error_names(
    deployed: Deployed, case: str, payload: dict[str, Any], expected: str
) -> None:
    sfn = deployed.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=deployed.out("MachineArn"), input=json.dumps({"case": case, **payload})
    )["executionArn"]
    done = eventually(
        lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d,
        timeout=30,
    )
    assert done["status"] == "SUCCEEDED", done
    assert json.loads(done["output"])["error"] == expected
