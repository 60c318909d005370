"""Node.js functions in the local runtime: the same contract as Python ones (items 28-31).

Functions are created with boto3 CreateFunction (in-memory zips) on an embedded moto server and
run by :class:`FunctionRunner` directly, on this machine's node with the pinned SDK clients.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamline.local.runtime import FunctionRunner
from streamline.local.runtime.testing import LocalMoto, create_function

HANDLER = """
let inits = 0;
inits += 1;
console.log("init ran");

exports.handler = async (event, context) => {
  if (event.sleep) await new Promise((resolve) => setTimeout(resolve, event.sleep * 1000));
  if (event.fail) throw new TypeError(event.fail);
  if (event.reject) return Promise.reject(event.reject);
  console.log("handling", JSON.stringify(event));
  console.error("an error line");
  return {
    pid: process.pid,
    inits,
    env: Object.fromEntries((event.vars || []).map((k) => [k, process.env[k] ?? null])),
    context: {
      awsRequestId: context.awsRequestId,
      functionName: context.functionName,
      memoryLimitInMB: context.memoryLimitInMB,
      invokedFunctionArn: context.invokedFunctionArn,
      remaining: context.getRemainingTimeInMillis(),
      logStreamName: context.logStreamName,
    },
  };
};
"""


def _function(
    moto: LocalMoto,
    files: dict[str, str] | None = None,
    *,
    runtime: str = "nodejs22.x",
    handler: str = "index.handler",
    **kwargs: Any,
) -> str:
    name = f"node-{uuid.uuid4().hex[:8]}"
    create_function(
        moto.client("lambda"),
        name,
        files or {"index.js": HANDLER},
        handler=handler,
        runtime=runtime,
        **kwargs,
    )
    return name


def _call(runner: FunctionRunner, name: str, event: dict[str, Any] | None = None) -> Any:
    result = runner.invoke(name, json.dumps(event or {}).encode())
    return result, json.loads(result.payload)


def _log_lines(moto: LocalMoto, runner: FunctionRunner, name: str) -> list[str]:
    runner.flush_logs()
    logs = moto.client("logs")
    group = f"/aws/lambda/{name}"
    lines = []
    for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]:
        events = logs.get_log_events(
            logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
        )["events"]
        lines += [e["message"] for e in events]
    return lines


def test_an_async_handler_runs_warm_with_the_lambda_context_and_environment(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto, MemorySize=256)
    first, body1 = _call(runner, name, {"vars": ["AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME"]})
    second, body2 = _call(runner, name)

    assert body1["pid"] == body2["pid"] and body2["inits"] == 1  # warm: init ran once
    assert first.init_duration_ms is not None and second.init_duration_ms is None
    assert body1["env"] == {
        "AWS_EXECUTION_ENV": "AWS_Lambda_nodejs22.x",
        "AWS_LAMBDA_FUNCTION_NAME": name,
    }
    context = body1["context"]
    assert context["functionName"] == name and context["memoryLimitInMB"] == "256"
    assert context["invokedFunctionArn"].endswith(f":function:{name}")
    assert 0 < context["remaining"] <= 3000
    assert re.fullmatch(r"[0-9a-f-]{36}", context["awsRequestId"])


def test_console_lines_and_start_end_report_reach_the_log_group(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto)
    _, body = _call(runner, name, {"hello": "world"})
    request_id = body["context"]["awsRequestId"]

    lines = _log_lines(moto, runner, name)
    text = "\n".join(lines)
    assert any(line.startswith(f"START RequestId: {request_id}") for line in lines)
    assert any(line.startswith(f"END RequestId: {request_id}") for line in lines)
    assert any(line.startswith(f"REPORT RequestId: {request_id}") for line in lines)
    assert re.search(
        rf"^\S+Z\t{request_id}\tINFO\thandling {{\"hello\":\"world\"}}$", text, re.MULTILINE
    )
    assert re.search(rf"^\S+Z\t{request_id}\tERROR\tan error line$", text, re.MULTILINE)
    assert "\tundefined\tINFO\tinit ran" in text  # init output has no request id
    assert "streamline-phase-end" not in text


def test_a_thrown_error_is_a_node_error_payload(moto: LocalMoto, runner: FunctionRunner) -> None:
    name = _function(moto)
    result, error = _call(runner, name, {"fail": "bad input"})
    assert result.function_error == "Unhandled"
    assert (error["errorType"], error["errorMessage"]) == ("TypeError", "bad input")
    assert error["trace"][0] == "TypeError: bad input"

    _, rejected = _call(runner, name, {"reject": "plain string"})
    assert (rejected["errorType"], rejected["errorMessage"]) == ("Error", "plain string")
    _, healthy = _call(runner, name)
    assert healthy["inits"] == 1  # an error does not recycle the environment


def test_timeouts_end_the_invocation_and_the_environment(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto, Timeout=1)
    _, warm = _call(runner, name)
    result, error = _call(runner, name, {"sleep": 30})
    _, fresh = _call(runner, name)
    assert result.timed_out and error["errorType"] == "Sandbox.Timedout"
    assert fresh["pid"] != warm["pid"]


@pytest.mark.parametrize(
    ("files", "handler", "error_type"),
    [
        ({"index.js": HANDLER}, "index.missing", "Runtime.HandlerNotFound"),
        ({"index.js": HANDLER}, "nowhere.handler", "Runtime.ImportModuleError"),
        ({"index.js": HANDLER}, "index", "Runtime.MalformedHandlerName"),
        (
            {"index.js": "exports.handler = async () => {"},
            "index.handler",
            "Runtime.UserCodeSyntaxError",
        ),
        ({"index.js": "throw new RangeError('at init');"}, "index.handler", "RangeError"),
    ],
    ids=["not-found", "no-module", "malformed", "syntax", "init-throws"],
)
def test_init_failures_use_the_runtime_error_names(
    moto: LocalMoto, runner: FunctionRunner, files: dict[str, str], handler: str, error_type: str
) -> None:
    name = _function(moto, files, handler=handler)
    result, error = _call(runner, name)
    assert result.function_error == "Unhandled"
    assert error["errorType"] == error_type


def test_callback_handlers_run_up_to_node_22_and_are_refused_from_24(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    source = {
        "index.js": "exports.handler = (event, context, callback) =>"
        " callback(null, {n: event.n + 1});"
    }
    _, answer = _call(runner, _function(moto, source, runtime="nodejs20.x"), {"n": 1})
    assert answer == {"n": 2}
    result, error = _call(runner, _function(moto, source, runtime="nodejs24.x"), {"n": 1})
    assert result.function_error == "Unhandled"
    assert error["errorType"] == "Runtime.CallbackHandlerDeprecated"


def test_es_modules_and_nested_handler_paths(moto: LocalMoto, runner: FunctionRunner) -> None:
    esm = {
        "src/app.mjs": "export const handlers = { main: async (e) => ({ esm: true, got: e.x }) };"
    }
    _, answer = _call(runner, _function(moto, esm, handler="src/app.handlers.main"), {"x": 7})
    assert answer == {"esm": True, "got": 7}


def test_the_runtime_sdk_reaches_the_local_cloud_with_the_functions_credentials(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=f"node-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    source = {
        "index.mjs": """
import { SQSClient, SendMessageCommand } from "@aws-sdk/client-sqs";
import { S3Client, CreateBucketCommand, PutObjectCommand } from "@aws-sdk/client-s3";
const sqs = new SQSClient({});
const s3 = new S3Client({});
export const handler = async (event) => {
  await sqs.send(new SendMessageCommand({ QueueUrl: event.url, MessageBody: "from node" }));
  await s3.send(new CreateBucketCommand({ Bucket: event.bucket }));
  await s3.send(new PutObjectCommand({ Bucket: event.bucket, Key: "k", Body: "v" }));
  return { key: process.env.AWS_ACCESS_KEY_ID.slice(0, 4) };
};
"""
    }
    bucket = f"node-{uuid.uuid4().hex[:8]}"
    result, answer = _call(
        runner,
        _function(moto, source, handler="index.handler", Timeout=30),
        {"url": url, "bucket": bucket},
    )
    assert result.function_error is None, answer
    assert answer == {"key": "ASIA"}
    received = sqs.receive_message(QueueUrl=url)["Messages"]
    assert [m["Body"] for m in received] == ["from node"]
    body = moto.client("s3").get_object(Bucket=bucket, Key="k")["Body"].read()
    assert body == b"v"  # path-style S3 against the local endpoint


def test_node_functions_cannot_run_npm(
    moto: LocalMoto, runner: FunctionRunner, tmp_path: Path
) -> None:
    source = {
        "index.js": """
const { execSync } = require("child_process");
exports.handler = async () => {
  try { execSync("npm --version", { stdio: "pipe" }); return "ran"; }
  catch (err) { return String(err.stderr); }
};
"""
    }
    _, answer = _call(runner, _function(moto, source))
    assert "npm is not available in the local Lambda runtime" in answer
