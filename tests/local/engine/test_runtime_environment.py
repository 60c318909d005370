"""docs/esm-semantics.md items 28-31 on the function runner: environments, logs, variables, errors.

Functions are created with boto3 CreateFunction (in-memory zips) on an embedded moto server and
run by :class:`FunctionRunner` directly, so these tests need no deploy and no patches.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from streamline.local.contracts import Throttled, UnsupportedFunction
from streamline.local.runtime import FunctionRunner
from streamline.local.runtime.testing import LocalMoto, create_function, make_zip

HANDLER = """
    import json, os, time
    INITS = 0
    INITS += 1
    print("init ran")

    def handler(event, context):
        if event.get("sleep"):
            time.sleep(event["sleep"])
        if event.get("fail"):
            raise ValueError(event["fail"])
        print("handling", json.dumps(event))
        return {
            "pid": os.getpid(),
            "inits": INITS,
            "env": {k: os.environ.get(k) for k in event.get("vars", [])},
            "context": {
                "aws_request_id": context.aws_request_id,
                "function_name": context.function_name,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "invoked_function_arn": context.invoked_function_arn,
                "remaining": context.get_remaining_time_in_millis(),
                "log_stream_name": context.log_stream_name,
            },
        }
"""


def _function(moto: LocalMoto, source: str = HANDLER, **kwargs: Any) -> str:
    name = f"fn-{uuid.uuid4().hex[:8]}"
    create_function(moto.client("lambda"), name, {"app.py": source}, **kwargs)
    return name


def _call(runner: FunctionRunner, name: str, event: dict[str, Any] | None = None) -> Any:
    result = runner.invoke(name, json.dumps(event or {}).encode())
    return result, json.loads(result.payload)


def _log_streams(moto: LocalMoto, runner: FunctionRunner, name: str) -> dict[str, list[str]]:
    runner.flush_logs()
    logs = moto.client("logs")
    group = f"/aws/lambda/{name}"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    return {
        s["logStreamName"]: [
            e["message"]
            for e in logs.get_log_events(
                logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True
            )["events"]
        ]
        for s in streams
    }


# -- item 28: init once, warm reuse, concurrency, timeouts, reserved concurrency ---------------


def test_item_28_init_runs_once_and_the_environment_is_reused_warm(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto)

    first, body1 = _call(runner, name)
    second, body2 = _call(runner, name)

    assert body1["pid"] == body2["pid"]
    assert body2["inits"] == 1
    assert first.init_duration_ms is not None and first.init_duration_ms > 0
    assert second.init_duration_ms is None
    assert runner.stats()[name]["cold_starts"] == 1


def test_item_28_concurrent_invocations_create_more_environments(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto)

    with ThreadPoolExecutor(3) as pool:
        bodies = list(pool.map(lambda _: _call(runner, name, {"sleep": 0.5})[1], range(3)))

    assert len({b["pid"] for b in bodies}) == 3
    assert runner.stats()[name]["environments"] == 3


def test_item_28_timeout_ends_the_invocation_and_the_next_call_gets_a_fresh_environment(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto, Timeout=1)
    _, warm = _call(runner, name)

    started = time.monotonic()
    result, error = _call(runner, name, {"sleep": 120})
    elapsed = time.monotonic() - started
    _, fresh = _call(runner, name)

    assert result.function_error == "Unhandled" and result.timed_out
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in error["errorMessage"]
    assert elapsed < 60  # ended by the timeout: the function itself would have run 120 s
    assert fresh["pid"] != warm["pid"] and fresh["inits"] == 1


def test_item_28_reserved_concurrency_zero_throttles(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto)
    _call(runner, name)  # a warm environment must not get around the limit either
    moto.client("lambda").put_function_concurrency(
        FunctionName=name, ReservedConcurrentExecutions=0
    )

    with pytest.raises(Throttled):
        runner.invoke(name, b"{}")
    assert runner.stats()[name]["throttles"] == 1


def test_item_28_reserved_concurrency_caps_concurrent_environments(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto)
    moto.client("lambda").put_function_concurrency(
        FunctionName=name, ReservedConcurrentExecutions=1
    )

    def call(_: int) -> str:
        try:
            _call(runner, name, {"sleep": 0.5})
        except Throttled:
            return "throttled"
        return "ok"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(call, range(2)))

    assert outcomes == ["ok", "throttled"]


def test_item_28_redeployed_code_and_configuration_take_effect_on_the_next_invocation(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto, Environment={"Variables": {"COLOR": "red"}})
    lam = moto.client("lambda")
    _, before = _call(runner, name, {"vars": ["COLOR"]})

    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"COLOR": "blue"}}
    )
    _, after_config = _call(runner, name, {"vars": ["COLOR"]})
    lam.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": "def handler(e, c):\n    return 'v2'\n"})
    )
    _, after_code = _call(runner, name)

    assert before["env"]["COLOR"] == "red"
    assert after_config["env"]["COLOR"] == "blue" and after_config["pid"] != before["pid"]
    assert after_code == "v2"


# -- item 29: START / END / REPORT in /aws/lambda/<name>, one stream per environment -----------


def test_item_29_start_end_report_lines_one_stream_per_environment(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto, MemorySize=256)
    first, _ = _call(runner, name, {"n": 1})
    _call(runner, name, {"n": 2})
    with ThreadPoolExecutor(2) as pool:  # a second environment
        list(pool.map(lambda _: _call(runner, name, {"sleep": 0.3}), range(2)))

    streams = _log_streams(moto, runner, name)

    assert len(streams) == runner.stats()[name]["environments"] == 2
    assert all(re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", s) for s in streams)
    report = re.compile(
        r"REPORT RequestId: [0-9a-f-]{36}\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\t"
        r"Memory Size: 256 MB\tMax Memory Used: \d+ MB(\tInit Duration: [\d.]+ ms)?"
    )
    for lines in streams.values():
        starts = [line for line in lines if line.startswith("START RequestId: ")]
        ends = [line for line in lines if line.startswith("END RequestId: ")]
        reports = [line for line in lines if line.startswith("REPORT RequestId: ")]
        assert len(starts) == len(ends) == len(reports) >= 1
        assert all(report.fullmatch(r) for r in reports)
        # Init Duration on the cold start only.
        assert "Init Duration" in reports[0]
        assert not any("Init Duration" in r for r in reports[1:])
        assert "init ran" in lines
    first_stream = next(
        s for s in streams.values() if f"START RequestId: {first.request_id} Version: $LATEST" in s
    )
    start = first_stream.index(f"START RequestId: {first.request_id} Version: $LATEST")
    end = first_stream.index(f"END RequestId: {first.request_id}")
    assert 'handling {"n": 1}' in first_stream[start:end]
    assert "START RequestId" in first.log_tail and "REPORT RequestId" in first.log_tail


# -- item 30: environment variables and the context object -----------------------------------


def test_item_30_lambda_environment_variables_and_context(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(
        moto,
        MemorySize=512,
        Timeout=7,
        TracingConfig={"Mode": "Active"},
        Environment={"Variables": {"APP_SETTING": "on"}},
    )
    variables = [
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "_HANDLER",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "LAMBDA_TASK_ROOT",
        "AWS_EXECUTION_ENV",
        "AWS_ENDPOINT_URL",
        "_X_AMZN_TRACE_ID",
        "APP_SETTING",
    ]

    result, body = _call(runner, name, {"vars": variables})
    env, context = body["env"], body["context"]

    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == context["log_stream_name"]
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert env["AWS_ENDPOINT_URL"] == moto.endpoint_url
    assert env["APP_SETTING"] == "on"
    assert re.fullmatch(
        r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1", env["_X_AMZN_TRACE_ID"]
    )
    assert context["aws_request_id"] == result.request_id
    assert context["function_name"] == name
    assert context["memory_limit_in_mb"] == "512"  # a string, as in AWS's runtime
    assert context["invoked_function_arn"] == (
        f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    )
    assert 0 < context["remaining"] <= 7000
    runner.flush_logs()
    trace_root = env["_X_AMZN_TRACE_ID"].split(";")[0].removeprefix("Root=")
    traces = moto.client("xray").batch_get_traces(TraceIds=[trace_root])["Traces"]
    assert len(traces) == 1  # the function's segment, as with Lambda's active tracing


def test_item_30_trace_id_only_with_active_tracing_or_an_incoming_header(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto)
    incoming = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

    _, plain = _call(runner, name, {"vars": ["_X_AMZN_TRACE_ID"]})
    passed = runner.invoke(
        name, json.dumps({"vars": ["_X_AMZN_TRACE_ID"]}).encode(), trace_header=incoming
    )

    assert plain["env"]["_X_AMZN_TRACE_ID"] is None
    assert json.loads(passed.payload)["env"]["_X_AMZN_TRACE_ID"] == incoming


# -- errors: the payloads AWS's Python runtime returns (item 31 reads errorType from them) -----


def test_item_31_function_error_payload_names_the_exception_type(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto)

    result, error = _call(runner, name, {"fail": "card declined"})

    assert result.function_error == "Unhandled"
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "card declined"
    assert error["requestId"] == result.request_id
    assert any("raise ValueError" in frame for frame in error["stackTrace"])


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        (
            {"app.py": "x = 1\n"},
            "missing.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing'",
        ),
        (
            {"app.py": "x = 1\n"},
            "app.handler",
            "Runtime.HandlerNotFound",
            "Handler 'handler' missing on module 'app'",
        ),
        (
            {"app.py": "def handler(e, c):\n    return {1, 2}\n"},
            "app.handler",
            "Runtime.MarshalError",
            "Unable to marshal response",
        ),
        (
            {"app.py": "raise RuntimeError('bad config')\n"},
            "app.handler",
            "RuntimeError",
            "bad config",
        ),
    ],
)
def test_init_and_marshal_errors_use_the_aws_runtime_error_names(
    moto: LocalMoto,
    runner: FunctionRunner,
    files: dict[str, str],
    handler: str,
    error_type: str,
    message: str,
) -> None:
    name = f"fn-{uuid.uuid4().hex[:8]}"
    create_function(moto.client("lambda"), name, files, handler=handler)

    result, error = _call(runner, name)

    assert result.function_error == "Unhandled"
    assert error["errorType"] == error_type
    assert message in error["errorMessage"]


# -- layers and the runtime's packages ----------------------------------------------------------


def test_public_powertools_layer_and_runtime_boto3_are_served_but_nothing_else(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    source = """
        import boto3
        from aws_lambda_powertools import Logger, Tracer
        from aws_lambda_powertools.utilities.parser import BaseModel

        def handler(event, context):
            try:
                import moto  # in our venv, but in no layer
                leaked = True
            except ImportError:
                leaked = False
            queues = boto3.client("sqs").list_queues()  # reaches the local endpoint
            return {"leaked": leaked, "listed": "ResponseMetadata" in queues}
    """
    name = _function(moto, source)
    layer = (
        "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-x86_64:7"
    )
    # moto refuses unknown layer ARNs (the platform patches that); set the layer in-process.
    with moto.backends.lock:
        moto.backends.lambda_().get_function(name).layers = [{"Arn": layer, "CodeSize": 0}]

    result, body = _call(runner, name)

    assert result.function_error is None, body
    assert body == {"leaked": False, "listed": True}


def test_layers_held_by_moto_are_extracted_onto_the_path(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    lam = moto.client("lambda")
    layer = lam.publish_layer_version(
        LayerName=f"lib-{uuid.uuid4().hex[:6]}",
        Content={"ZipFile": make_zip({"python/greeting.py": "WORD = 'hi from a layer'\n"})},
        CompatibleRuntimes=["python3.12"],
    )["LayerVersionArn"]
    name = _function(
        moto, "import greeting\ndef handler(e, c):\n    return greeting.WORD\n", Layers=[layer]
    )

    _, body = _call(runner, name)

    assert body == "hi from a layer"


@pytest.mark.parametrize("runtime", ["java21", "provided.al2023", "ruby3.3"])
def test_runtimes_that_cannot_run_here_are_refused_naming_function_and_runtime(
    moto: LocalMoto, runner: FunctionRunner, runtime: str
) -> None:
    name = _function(moto, runtime=runtime, handler="index.handler")

    with pytest.raises(UnsupportedFunction, match=rf"{name}.*{re.escape(runtime)}"):
        runner.invoke(name, b"{}")


def test_shutdown_kills_every_environment(moto: LocalMoto, tmp_path: Path) -> None:
    own = FunctionRunner(moto.backends, tmp_path, moto.endpoint_url)
    name = _function(moto)
    _, body = _call(own, name)

    own.shutdown()

    with pytest.raises(ProcessLookupError):
        import os

        os.kill(body["pid"], 0)


def test_package_directories_are_resolved_once_and_rebuilt_if_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from streamline.local.runtime import layers

    resolved: list[object] = []
    closure = layers._closure

    def counting(roots: Any, extras: frozenset[str]) -> Any:
        resolved.append(roots)
        return closure(roots, extras)

    monkeypatch.setattr(layers, "_closure", counting)
    store = layers.CodeStore(tmp_path)
    first = store.powertools_layer()
    assert store.powertools_layer() == first and store.runtime_packages()
    assert len(resolved) == 2  # powertools once, runtime once: not per cold start
    assert (first[0] / "aws_lambda_powertools").exists()
    shutil.rmtree(first[0])  # a state dir cleaned under a running cloud is built again
    assert store.powertools_layer() == first and (first[0] / "aws_lambda_powertools").exists()
    assert len(resolved) == 3
