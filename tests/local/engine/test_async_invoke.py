"""docs/esm-semantics.md items 25-27: async invocation, retries, event age, Destinations, DLQ.

The engine runs on a ManualClock 600x faster than real time, so AWS's 1- and 2-minute retry
delays take a fraction of a second; functions run for real in the local runtime.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamline.local.async_invoke import AsyncEngine
from streamline.local.contracts import InvokeResult, ManualClock
from streamline.local.runtime import FunctionRunner
from streamline.local.runtime.testing import LocalMoto, create_function

# Fast enough that retry minutes pass in well under a second, slow enough that a loaded
# 2-core machine (thread scheduling jitter of ~0.1 s) still measures them to within ~15 s.
SPEED = 120.0

HANDLER = """
    import os, time

    def handler(event, context):
        if event.get("sleep"):
            time.sleep(event["sleep"])
        while event.get("wait_for") and not os.path.exists(event["wait_for"]):
            time.sleep(0.02)  # held until the test lets it finish
        if event.get("fail"):
            raise RuntimeError(event["fail"])
        return {"ok": event.get("n")}
"""

FORWARDER = """
    import json, os, boto3

    def handler(event, context):
        sqs = boto3.client("sqs")
        sqs.send_message(QueueUrl=os.environ["OUT_URL"], MessageBody=json.dumps(event))
"""


class RecordingInvoker:
    """Wraps the runner to note when (on the engine's clock) each invocation started."""

    def __init__(self, runner: FunctionRunner, clock: ManualClock) -> None:
        self.runner = runner
        self.clock = clock
        self.calls: list[tuple[str, float]] = []

    def invoke(
        self,
        function: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        trace_header: str | None = None,
    ) -> InvokeResult:
        self.calls.append((function, self.clock.now()))
        return self.runner.invoke(function, payload, qualifier=qualifier, trace_header=trace_header)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(speed=SPEED)


@pytest.fixture
def invoker(runner: FunctionRunner, clock: ManualClock) -> RecordingInvoker:
    return RecordingInvoker(runner, clock)


@pytest.fixture
def engine(moto: LocalMoto, invoker: RecordingInvoker, clock: ManualClock) -> Iterator[AsyncEngine]:
    engine = AsyncEngine(moto.backends, invoker, clock)
    engine.start()
    yield engine
    engine.stop()


def _queue(moto: LocalMoto) -> tuple[str, str]:
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _function(moto: LocalMoto, source: str = HANDLER, **config: Any) -> str:
    name = f"fn-{uuid.uuid4().hex[:8]}"
    create_function(moto.client("lambda"), name, {"app.py": source}, **config)
    return name


def _destinations(
    moto: LocalMoto,
    name: str,
    *,
    on_success: str | None = None,
    on_failure: str | None = None,
    **settings: Any,
) -> None:
    destinations: dict[str, Any] = {}
    if on_success:
        destinations["OnSuccess"] = {"Destination": on_success}
    if on_failure:
        destinations["OnFailure"] = {"Destination": on_failure}
    moto.client("lambda").put_function_event_invoke_config(
        FunctionName=name, DestinationConfig=destinations, **settings
    )


def _wait(engine: AsyncEngine, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not engine.idle():
        assert time.monotonic() < deadline, f"async engine still busy: {engine.status()}"
        time.sleep(0.02)


def _messages(moto: LocalMoto, url: str, count: int = 1, timeout: float = 30.0) -> list[Any]:
    sqs = moto.client("sqs")
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        found.extend(
            sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
        )
        if len(found) < count:
            time.sleep(0.05)
    return found


def _bodies(moto: LocalMoto, url: str, count: int = 1) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in _messages(moto, url, count)]


def _arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"


# -- item 25: 202 at once, retries about 1 and 2 minutes apart, event age -----------------------


def test_item_25_submit_returns_a_request_id_at_once(
    moto: LocalMoto, engine: AsyncEngine, tmp_path: Path
) -> None:
    name = _function(moto)
    out_url, out_arn = _queue(moto)
    _destinations(moto, name, on_success=out_arn)

    # The function is held until the test releases it: submit answered before it could end.
    release = tmp_path / "release"
    request_id = engine.submit(name, json.dumps({"wait_for": str(release), "n": 1}).encode())

    assert not engine.idle()
    assert moto.client("sqs").receive_message(QueueUrl=out_url).get("Messages") is None
    release.touch()
    _wait(engine)
    record = _bodies(moto, out_url)[0]
    assert record["requestContext"]["requestId"] == request_id


def test_item_25_event_invocation_through_the_api_answers_202(
    moto: LocalMoto, runner: FunctionRunner, engine: AsyncEngine, tmp_path: Path
) -> None:
    from streamline.local import patches

    patches.apply_all()
    with patches.using_invokers(runner, engine):
        name = _function(moto)
        out_url, out_arn = _queue(moto)
        _destinations(moto, name, on_success=out_arn)

        # The function cannot finish until the test lets it: a 202 that came back meanwhile
        # came back before the function ran to its end (no timing involved).
        release = tmp_path / "release"
        response = moto.client("lambda").invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps({"wait_for": str(release)}),
        )
        assert response["StatusCode"] == 202
        assert moto.client("sqs").receive_message(QueueUrl=out_url).get("Messages") is None
        release.touch()
        _wait(engine)

    assert _bodies(moto, out_url)[0]["requestContext"]["condition"] == "Success"


def _waiting_retry(engine: AsyncEngine, retries: int, timeout: float = 60.0) -> float:
    """The due time of the one event waiting for its ``retries``-th retry, once nothing runs."""
    deadline = time.monotonic() + timeout
    while True:
        status = engine.status()
        if status["retries"] == retries and status["queued"] == 1 and status["in_flight"] == 0:
            return engine.pending()[0][0]
        assert time.monotonic() < deadline, f"no retry waiting: {status}"
        time.sleep(0.02)


@contextlib.contextmanager
def _frozen(
    moto: LocalMoto, runner: FunctionRunner
) -> Iterator[tuple[AsyncEngine, RecordingInvoker, ManualClock]]:
    """An engine on a clock that moves only when told: delays are read from its schedule,
    never from how long anything took on this machine (at 120x real time, a loaded CPU's
    second looked like two minutes)."""
    clock = ManualClock(speed=0.0)
    invoker = RecordingInvoker(runner, clock)
    engine = AsyncEngine(moto.backends, invoker, clock)
    engine.start()
    try:
        yield engine, invoker, clock
    finally:
        engine.stop()


def _run_to_idle(engine: AsyncEngine, clock: ManualClock, timeout: float = 60.0) -> None:
    """Move the clock to each next due time until the engine is idle."""
    deadline = time.monotonic() + timeout
    while not engine.idle():
        status = engine.status()
        pending = engine.pending()
        if status["in_flight"] == 0 and pending and pending[0][0] > clock.now():
            clock.advance(pending[0][0] - clock.now())
        assert time.monotonic() < deadline, f"async engine still busy: {engine.status()}"
        time.sleep(0.01)


def test_item_25_failed_event_is_retried_twice_about_one_and_two_minutes_later(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    with _frozen(moto, runner) as (engine, invoker, clock):
        name = _function(moto)
        out_url, out_arn = _queue(moto)
        _destinations(moto, name, on_failure=out_arn)

        engine.submit(name, json.dumps({"fail": "always"}).encode())
        delays = []
        for retries in (1, 2):
            delay = _waiting_retry(engine, retries) - clock.now()
            delays.append(delay)
            clock.advance(delay)
        _wait(engine)

    assert delays == [pytest.approx(60.0), pytest.approx(120.0)]
    times = [t for _, t in invoker.calls]
    assert len(times) == 3
    assert [later - earlier for earlier, later in itertools.pairwise(times)] == [
        pytest.approx(60.0),
        pytest.approx(120.0),
    ]
    record = _bodies(moto, out_url)[0]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3


def test_item_25_maximum_retry_attempts_zero_means_a_single_invocation(
    moto: LocalMoto, engine: AsyncEngine, invoker: RecordingInvoker
) -> None:
    name = _function(moto)
    out_url, out_arn = _queue(moto)
    _destinations(moto, name, on_failure=out_arn, MaximumRetryAttempts=0)

    engine.submit(name, json.dumps({"fail": "once"}).encode())
    _wait(engine)

    assert len(invoker.calls) == 1
    assert _bodies(moto, out_url)[0]["requestContext"]["approximateInvokeCount"] == 1


def test_item_25_event_older_than_maximum_event_age_is_dropped_with_event_age_exceeded(
    moto: LocalMoto, engine: AsyncEngine, invoker: RecordingInvoker
) -> None:
    name = _function(moto)
    out_url, out_arn = _queue(moto)
    _destinations(moto, name, on_failure=out_arn, MaximumEventAgeInSeconds=60)

    engine.submit(name, json.dumps({"fail": "slowly"}).encode())
    _wait(engine)

    # The first retry would come a minute later: by then the event is too old.
    assert len(invoker.calls) == 1
    record = _bodies(moto, out_url)[0]
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 1


def test_item_25_throttled_events_wait_without_using_retry_attempts(
    moto: LocalMoto, runner: FunctionRunner
) -> None:
    name = _function(moto)
    out_url, out_arn = _queue(moto)
    _destinations(moto, name, on_failure=out_arn, MaximumEventAgeInSeconds=120)
    moto.client("lambda").put_function_concurrency(
        FunctionName=name, ReservedConcurrentExecutions=0
    )

    with _frozen(moto, runner) as (engine, invoker, clock):
        engine.submit(name, json.dumps({"n": 1}).encode())
        _run_to_idle(engine, clock)

    # throttled attempts are not limited to 1 + 2 retries: backoff 1, 2, 4 ... s within 120 s
    starts = [t - invoker.calls[0][1] for _, t in invoker.calls]
    assert starts == pytest.approx([0, 1, 3, 7, 15, 31, 63])
    record = _bodies(moto, out_url)[0]
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 0


# -- item 26: the destination record and every destination type, plus the DLQ -------------------


def test_item_26_success_record_shape_on_an_sqs_destination(
    moto: LocalMoto, engine: AsyncEngine
) -> None:
    name = _function(moto)
    out_url, out_arn = _queue(moto)
    _destinations(moto, name, on_success=out_arn)

    request_id = engine.submit(name, json.dumps({"n": 7}).encode())
    _wait(engine)

    record = _bodies(moto, out_url)[0]
    assert set(record) == {
        "version",
        "timestamp",
        "requestContext",
        "requestPayload",
        "responseContext",
        "responsePayload",
    }
    assert record["version"] == "1.0"
    assert record["timestamp"].endswith("Z") and "T" in record["timestamp"]
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{_arn(name)}:$LATEST",
        "condition": "Success",
        "approximateInvokeCount": 1,
    }
    assert record["requestPayload"] == {"n": 7}
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"ok": 7}


def test_item_26_failure_record_carries_the_function_error(
    moto: LocalMoto, engine: AsyncEngine
) -> None:
    name = _function(moto)
    out_url, out_arn = _queue(moto)
    _destinations(moto, name, on_failure=out_arn, MaximumRetryAttempts=1)

    engine.submit(name, json.dumps({"fail": "no stock"}).encode())
    _wait(engine)

    record = _bodies(moto, out_url)[0]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == {"fail": "no stock"}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "no stock"


def test_item_26_sns_destination(moto: LocalMoto, engine: AsyncEngine) -> None:
    name = _function(moto)
    out_url, out_arn = _queue(moto)
    sns = moto.client("sns")
    topic = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=out_arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    _destinations(moto, name, on_success=topic)

    engine.submit(name, json.dumps({"n": 1}).encode())
    _wait(engine)

    assert _bodies(moto, out_url)[0]["requestContext"]["condition"] == "Success"


def test_item_26_eventbridge_destination_uses_lambda_source_and_detail_type(
    moto: LocalMoto, engine: AsyncEngine
) -> None:
    name = _function(moto)
    out_url, out_arn = _queue(moto)
    events = moto.client("events")
    bus = f"bus-{uuid.uuid4().hex[:8]}"
    bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    events.put_rule(Name="all", EventBusName=bus, EventPattern=json.dumps({"source": ["lambda"]}))
    events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "q", "Arn": out_arn}])
    _destinations(moto, name, on_failure=bus_arn, MaximumRetryAttempts=0)

    engine.submit(name, json.dumps({"fail": "x"}).encode())
    _wait(engine)

    event = _bodies(moto, out_url)[0]
    assert event["source"] == "lambda"
    assert event["detail-type"] == "Lambda Function Invocation Result - Failure"
    assert event["detail"]["requestContext"]["condition"] == "RetriesExhausted"


def test_item_26_lambda_destination_is_invoked_asynchronously_with_the_record(
    moto: LocalMoto, engine: AsyncEngine
) -> None:
    out_url, _ = _queue(moto)
    target = _function(moto, FORWARDER, Environment={"Variables": {"OUT_URL": out_url}})
    name = _function(moto)
    _destinations(moto, name, on_success=_arn(target))

    engine.submit(name, json.dumps({"n": 3}).encode())
    _wait(engine)

    record = _bodies(moto, out_url)[0]
    assert record["requestContext"]["functionArn"] == f"{_arn(name)}:$LATEST"
    assert record["responsePayload"] == {"ok": 3}


def test_item_26_dead_letter_queue_receives_the_original_event(
    moto: LocalMoto, engine: AsyncEngine
) -> None:
    name = _function(moto)
    dlq_url, dlq_arn = _queue(moto)
    # moto keeps no DeadLetterConfig; the platform's patch stores it on the function like this.
    with moto.backends.lock:
        moto.backends.lambda_().get_function(name).dead_letter_config = {"TargetArn": dlq_arn}
    _destinations(moto, name, MaximumRetryAttempts=0)

    request_id = engine.submit(name, json.dumps({"fail": "card declined"}).encode())
    _wait(engine)

    message = _messages(moto, dlq_url)[0]
    assert json.loads(message["Body"]) == {"fail": "card declined"}
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes == {
        "RequestID": request_id,
        "ErrorCode": "200",
        "ErrorMessage": "card declined",
    }


# -- item 27: synchronous invocations never use EventInvokeConfig destinations -------------------


def test_item_27_synchronous_invocations_never_use_destinations(
    moto: LocalMoto, runner: FunctionRunner, engine: AsyncEngine
) -> None:
    name = _function(moto)
    out_url, out_arn = _queue(moto)
    _destinations(moto, name, on_success=out_arn, on_failure=out_arn)

    ok = runner.invoke(name, json.dumps({"n": 1}).encode())
    failed = runner.invoke(name, json.dumps({"fail": "x"}).encode())
    _wait(engine)

    assert ok.function_error is None and failed.function_error == "Unhandled"
    assert engine.status()["submitted"] == 0
    assert _messages(moto, out_url, timeout=0.5) == []
