"""SQS event source mappings against a real moto server and a scripted fake invoker (items 1-13).

Queues, functions and mappings are created through boto3 (public APIs); the engine runs
in-process exactly as the local cloud runs it. Short visibility timeouts (1-2 s) are used only
where a test needs a redelivery; elsewhere they are long, so a slow (loaded) machine never sees an
unexpected one. Tests wait on engine and queue state, never on fixed sleeps: batching windows are
closed by advancing a ManualClock.

One module of ~600 lines because it follows docs/esm-semantics.md items 1-13 in order, a test or
more per item, on one moto server per module: a rule and its test are found by item number.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from streamline.local.contracts import ManualClock, SystemClock
from streamline.local.esm import EsmEngine
from streamline.local.esm.testing import MotoHarness, ScriptedInvoker, wait_until
from streamline.local.metrics import SQS_ACTIVITY


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoHarness]:
    with MotoHarness() as harness:
        yield harness


class Env:
    """One test's queue, function, fake invoker and engine."""

    def __init__(self, moto: MotoHarness, tmp_path: Any, clock: Any = None) -> None:
        self.moto = moto
        self.sqs = moto.client("sqs")
        self.lam = moto.client("lambda")
        self.invoker = ScriptedInvoker(lambda event, call: {})
        self.clock = clock or SystemClock()
        self.engine = EsmEngine(
            moto.backends, self.invoker, tmp_path, self.clock, poll_interval=0.05
        )
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.function_arn = moto.create_function(self.name, timeout=1)

    def queue(self, *, vt: int = 1, fifo: bool = False, **attributes: str) -> tuple[str, str]:
        name = self.name + (".fifo" if fifo else "")
        attrs = {"VisibilityTimeout": str(vt), **attributes}
        if fifo:
            attrs["FifoQueue"] = "true"
        url = self.sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return url, arn

    def mapping(self, arn: str, **kwargs: Any) -> str:
        return str(
            self.lam.create_event_source_mapping(
                EventSourceArn=arn, FunctionName=self.name, **kwargs
            )["UUID"]
        )

    def counts(self, url: str) -> tuple[int, int]:
        """(visible, in flight) messages of the queue."""
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attrs["ApproximateNumberOfMessages"]),
            int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        )

    def depth(self, url: str) -> int:
        return sum(self.counts(url))


@pytest.fixture
def env(moto: MotoHarness, tmp_path: Any) -> Iterator[Env]:
    # Each test's engine sees every mapping in the process-global moto: start and end clean.
    moto.delete_all_mappings()
    environment = Env(moto, tmp_path)
    environment.engine.start()
    yield environment
    environment.engine.stop()
    moto.delete_all_mappings()


@pytest.fixture
def clocked_env(moto: MotoHarness, tmp_path: Any) -> Iterator[Env]:
    """An Env whose engine runs on a ManualClock (real speed; ``advance`` jumps ahead)."""
    moto.delete_all_mappings()
    environment = Env(moto, tmp_path, ManualClock())
    environment.engine.start()
    yield environment
    environment.engine.stop()
    moto.delete_all_mappings()


def _pass_window(env: Env, done: Any, seconds: float = 300) -> Any:
    """Advance the engine's clock past a batching window until ``done()`` is truthy."""
    clock = env.clock
    assert isinstance(clock, ManualClock)

    def advanced() -> Any:
        clock.advance(seconds)
        return done()

    return wait_until(advanced)


def _send(env: Env, url: str, bodies: list[str]) -> None:
    for body in bodies:
        env.sqs.send_message(QueueUrl=url, MessageBody=body)


# -- items 1-3: responses ------------------------------------------------------------------
def test_item_01_success_forms_delete_the_batch(env: Env) -> None:
    forms: list[Any] = [{}, None, "", [], {"batchItemFailures": []}, {"batchItemFailures": None}]
    env.invoker.handler = lambda event, call: forms[len(env.invoker.calls) % len(forms) - 1]
    # A long visibility timeout: a message that was not deleted stays in flight (depth > 0).
    url, arn = env.queue(vt=30)
    env.mapping(arn, BatchSize=1, FunctionResponseTypes=["ReportBatchItemFailures"])
    _send(env, url, [f"m{i}" for i in range(6)])
    wait_until(lambda: len(env.invoker.calls) >= 6 and env.depth(url) == 0)
    wait_until(env.engine.idle)
    assert sorted(env.invoker.bodies()) == [f"m{i}" for i in range(6)]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in env.invoker.records()} == {"1"}
    # The poller's deletes count into AWS/SQS NumberOfMessagesDeleted, as on AWS.
    activity = SQS_ACTIVITY.drain(arn.rsplit(":", 1)[1])
    assert activity["NumberOfMessagesDeleted"] == 6
    assert activity["NumberOfMessagesReceived"] == 6


def test_item_02_error_and_malformed_response_fail_the_whole_batch(env: Env) -> None:
    url, arn = env.queue()

    def handler(event: dict[str, Any], call: Any) -> Any:
        body = event["Records"][0]["body"]
        first = event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "1"
        if body == "raise" and first:
            raise RuntimeError("boom")
        if body == "malformed" and first:
            return {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}
        return {}

    env.invoker.handler = handler
    env.mapping(arn, BatchSize=1, FunctionResponseTypes=["ReportBatchItemFailures"])
    _send(env, url, ["raise", "malformed"])
    wait_until(lambda: env.depth(url) == 0, timeout=10)
    counts = sorted(
        (r["body"], r["attributes"]["ApproximateReceiveCount"]) for r in env.invoker.records()
    )
    assert counts == [("malformed", "1"), ("malformed", "2"), ("raise", "1"), ("raise", "2")]


def test_item_03_batch_item_failures_ignored_without_report_batch_item_failures(env: Env) -> None:
    url, arn = env.queue(vt=30)  # a message left undeleted would stay in flight (depth > 0)
    env.invoker.handler = lambda event, call: {
        "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]
    }
    env.mapping(arn, BatchSize=10)
    _send(env, url, ["a", "b"])
    wait_until(lambda: env.depth(url) == 0)
    wait_until(env.engine.idle)
    assert sorted(env.invoker.bodies()) == ["a", "b"]


# -- SQS -------------------------------------------------------------------------------------
def test_item_04_success_deletes_failure_returns_after_visibility_timeout(env: Env) -> None:
    url, arn = env.queue(vt=2)
    env.invoker.handler = lambda event, call: (
        (_ for _ in ()).throw(RuntimeError("first try fails"))
        if event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "1"
        else {}
    )
    env.mapping(arn, BatchSize=1)
    _send(env, url, ["x"])
    wait_until(lambda: len(env.invoker.calls) >= 2, timeout=10)
    first, second = env.invoker.calls[:2]
    # The mapping never changed visibility: the retry came only after the 2 s timeout.
    assert second.started - first.started >= 1.9
    wait_until(lambda: env.depth(url) == 0)


def test_item_05_partial_failure_keeps_only_listed_message_ids(env: Env) -> None:
    url, arn = env.queue(vt=1)
    _send(env, url, ["ok1", "bad", "ok2"])

    def handler(event: dict[str, Any], call: Any) -> Any:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"
            ]
            if len(env.invoker.calls) == 1
            else []
        }

    env.invoker.handler = handler
    env.mapping(
        arn,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    wait_until(lambda: len(env.invoker.calls) >= 2, timeout=10)
    assert sorted(r["body"] for r in env.invoker.calls[0].records) == ["bad", "ok1", "ok2"]
    assert [r["body"] for r in env.invoker.calls[1].records] == ["bad"]
    wait_until(lambda: env.depth(url) == 0)


def test_item_06_receive_count_rises_and_redrive_moves_to_dlq(env: Env) -> None:
    dlq_url = env.sqs.create_queue(QueueName=env.name + "-dlq")["QueueUrl"]
    dlq_arn = env.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    url, arn = env.queue(
        vt=1, RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    )

    def fail(event: dict[str, Any], call: Any) -> Any:
        raise RuntimeError("always")

    env.invoker.handler = fail
    env.mapping(arn, BatchSize=1)
    _send(env, url, ["poison"])
    moved = wait_until(
        lambda: env.sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0).get("Messages"),
        timeout=10,
    )
    assert moved[0]["Body"] == "poison"
    counts = [r["attributes"]["ApproximateReceiveCount"] for r in env.invoker.records()]
    assert counts == ["1", "2"]  # delivered exactly maxReceiveCount times, no own retry count


def test_item_07_batch_closes_at_batch_size_and_window_validated(clocked_env: Env) -> None:
    env = clocked_env
    url, arn = env.queue(vt=30)
    _send(env, url, [f"m{i}" for i in range(25)])
    with pytest.raises(ClientError, match="MaximumBatchingWindowInSeconds"):
        env.mapping(arn, BatchSize=25)
    _, fifo_arn = env.queue(fifo=True)
    with pytest.raises(ClientError, match="BatchSize"):
        env.mapping(fifo_arn, BatchSize=11, MaximumBatchingWindowInSeconds=1)
    env.mapping(
        arn,
        BatchSize=20,
        MaximumBatchingWindowInSeconds=300,
        ScalingConfig={"MaximumConcurrency": 2},
    )
    # The full batch closes at BatchSize at once; the window (never passing by itself here)
    # still holds the remaining five.
    wait_until(lambda: [len(c.records) for c in env.invoker.calls] == [20])
    wait_until(lambda: env.counts(url) == (0, 5))  # 20 deleted, 5 held in the open window
    assert len(env.invoker.calls) == 1
    _pass_window(env, lambda: len(env.invoker.records()) >= 25)
    assert [len(c.records) for c in env.invoker.calls] == [20, 5]


def test_item_07_batching_window_gathers_messages_sent_over_time(clocked_env: Env) -> None:
    env = clocked_env
    url, arn = env.queue(vt=30)
    env.mapping(
        arn,
        BatchSize=50,
        MaximumBatchingWindowInSeconds=300,
        ScalingConfig={"MaximumConcurrency": 2},
    )
    _send(env, url, ["w0"])
    wait_until(lambda: env.counts(url) == (0, 1))  # received: the window is open
    for i in range(1, 5):
        _send(env, url, [f"w{i}"])
        gathered = (0, i + 1)
        wait_until(lambda: env.counts(url) == gathered)  # noqa: B023 (used at once)
    assert env.invoker.calls == []  # the window has not passed yet
    _pass_window(env, lambda: env.invoker.calls)
    assert [r["body"] for r in env.invoker.calls[0].records] == [f"w{i}" for i in range(5)]
    wait_until(lambda: env.depth(url) == 0)
    assert len(env.invoker.calls) == 1  # one batch, closed by the window


def test_item_08_fifo_group_order_kept_while_other_groups_flow(env: Env) -> None:
    url, arn = env.queue(vt=2, fifo=True, ContentBasedDeduplication="true")

    def handler(event: dict[str, Any], call: Any) -> Any:
        record = event["Records"][0]
        if record["body"] == "a1" and record["attributes"]["ApproximateReceiveCount"] == "1":
            raise RuntimeError("a1 fails once")
        return {}

    env.invoker.handler = handler
    for body, group in [("a1", "A"), ("a2", "A"), ("a3", "A"), ("b1", "B"), ("b2", "B")]:
        env.sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group)
    env.mapping(arn, BatchSize=1)
    wait_until(lambda: len(env.invoker.calls) >= 6, timeout=15)
    bodies = env.invoker.bodies()
    group_a = [b for b in bodies if b.startswith("a")]
    assert group_a == ["a1", "a1", "a2", "a3"]
    # B flowed while a1 was failing (before its redelivery).
    assert bodies.index("b2") < len(bodies) - 1 - bodies[::-1].index("a1")


def _fifo_partial(failing: Callable[[dict[str, Any]], bool]) -> Any:
    """A handler that reports what Powertools' ``SqsFifoPartialProcessor(skip_group_on_error=
    True)`` reports: each failing record and every later record of its group in the batch."""

    def handler(event: dict[str, Any], call: Any) -> Any:
        failed_groups: set[str] = set()
        failures = []
        for record in event["Records"]:
            group = record["attributes"]["MessageGroupId"]
            if group in failed_groups or failing(record):
                failed_groups.add(group)
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    return handler


def _dlq(env: Env, fifo: bool) -> tuple[str, str]:
    name = f"{env.name}-dlq" + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = env.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = env.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _drain(env: Env, url: str) -> list[str]:
    bodies: list[str] = []
    while got := env.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages"):
        bodies += [m["Body"] for m in got]
        for message in got:
            env.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_item_08_fifo_batches_of_ten_keep_a_failing_groups_order_to_the_dlq(env: Env) -> None:
    """moto once delivered [a1 b1 a2 b2 a3 b3], then [a3] alone, then [a2]."""
    dlq_url, dlq_arn = _dlq(env, fifo=True)
    url, arn = env.queue(
        vt=1,
        fifo=True,
        ContentBasedDeduplication="true",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
    )
    for body in ("a1", "b1", "a2", "b2", "a3", "b3"):
        env.sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=body[0])
    env.invoker.handler = _fifo_partial(lambda record: record["body"] == "a2")
    env.mapping(arn, BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])

    wait_until(lambda: env.depth(url) == 0 and env.depth(dlq_url) == 2, timeout=30)
    wait_until(env.engine.idle)

    batches = [[r["body"] for r in call.records] for call in env.invoker.calls]
    for batch in batches:
        group_a = [b for b in batch if b.startswith("a")]
        assert group_a == sorted(group_a), batches
        if "a3" in batch:
            assert "a2" in batch, f"a3 delivered before a2's last delivery: {batches}"
    delivered = [b for batch in batches for b in batch]
    assert [delivered.count(b) for b in ("a1", "b1", "b2", "b3")] == [1, 1, 1, 1]
    assert delivered.count("a2") == 2  # maxReceiveCount deliveries, then the DLQ
    assert _drain(env, dlq_url) == ["a2", "a3"]


def test_item_08_fifo_groups_never_overlap_across_pollers(env: Env) -> None:
    url, arn = env.queue(vt=1, fifo=True, ContentBasedDeduplication="true")
    groups = [f"g{n}" for n in range(5)]
    for index in range(4):
        for group in groups:
            env.sqs.send_message(QueueUrl=url, MessageBody=f"{group}-{index}", MessageGroupId=group)
    lock = threading.Lock()
    in_flight: dict[str, int] = {}
    overlaps: list[str] = []
    done: list[str] = []
    fail_once = {f"{group}-1" for group in groups[:3]}  # a failure in the middle of 3 groups

    def failing(record: dict[str, Any]) -> bool:
        with lock:
            if record["body"] in fail_once:
                fail_once.discard(record["body"])
                return True
        return False

    partial = _fifo_partial(failing)

    def handler(event: dict[str, Any], call: Any) -> Any:
        batch_groups = {r["attributes"]["MessageGroupId"] for r in event["Records"]}
        with lock:
            overlaps.extend(g for g in batch_groups if in_flight.get(g))
            for group in batch_groups:
                in_flight[group] = in_flight.get(group, 0) + 1
        try:
            response = partial(event, call)
            failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
            with lock:
                done.extend(r["body"] for r in event["Records"] if r["messageId"] not in failed)
            return response
        finally:
            with lock:
                for group in batch_groups:
                    in_flight[group] -= 1

    env.invoker.handler = handler
    env.invoker.overlap = 2  # make sure pollers really run at once
    env.invoker.overlap_timeout = 2.0
    env.mapping(
        arn,
        BatchSize=2,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        ScalingConfig={"MaximumConcurrency": 3},
    )

    wait_until(lambda: env.depth(url) == 0, timeout=60)
    wait_until(env.engine.idle)
    assert overlaps == []
    for group in groups:
        assert [b for b in done if b.startswith(group)] == [f"{group}-{i}" for i in range(4)]


def test_item_09_filtered_out_messages_are_deleted_without_invocation(env: Env) -> None:
    url, arn = env.queue()
    env.mapping(
        arn,
        BatchSize=10,
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"body": {"kind": ["keep"]}})}]},
    )
    _send(env, url, [json.dumps({"kind": "keep", "n": 1}), json.dumps({"kind": "drop"}), "plain"])
    wait_until(lambda: env.depth(url) == 0)
    assert [json.loads(b)["n"] for b in env.invoker.bodies()] == [1]


def test_item_10_record_shape(env: Env) -> None:
    url, arn = env.queue(fifo=True)
    env.mapping(arn, BatchSize=1)
    env.sqs.send_message(
        QueueUrl=url,
        MessageBody="hello",
        MessageGroupId="g",
        MessageDeduplicationId="d1",
        MessageAttributes={
            "color": {"DataType": "String", "StringValue": "red"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
        MessageSystemAttributes={
            "AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-abc-def;Sampled=1"}
        },
    )
    (record,) = wait_until(env.invoker.records)
    assert list(record)[:5] == [
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
    ]
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"
    attrs = record["attributes"]
    assert set(attrs) == {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
        "MessageGroupId",
        "MessageDeduplicationId",
        "SequenceNumber",
        "AWSTraceHeader",
    }
    assert attrs["ApproximateReceiveCount"] == "1" and attrs["MessageGroupId"] == "g"
    assert attrs["AWSTraceHeader"] == "Root=1-abc-def;Sampled=1"
    assert env.invoker.calls[0].trace_header == "Root=1-abc-def;Sampled=1"
    assert record["messageAttributes"]["color"] == {
        "stringValue": "red",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="
    assert record["messageAttributes"]["blob"]["dataType"] == "Binary"


def test_item_11_mapping_refused_when_visibility_timeout_below_function_timeout(env: Env) -> None:
    _, arn = env.queue(vt=5)
    env.lam.update_function_configuration(FunctionName=env.name, Timeout=30)
    with pytest.raises(ClientError) as caught:
        env.mapping(arn)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "Queue visibility timeout: 5 seconds is less than Function timeout: 30 seconds" in str(
        caught.value
    )


def _state(env: Env, mapping: str) -> str | None:
    return next((s["state"] for s in env.engine.status() if s["uuid"] == mapping), None)


def test_item_12_enable_disable_update_delete_are_reconciled(env: Env) -> None:
    url, arn = env.queue(vt=30)
    mapping = env.mapping(arn, BatchSize=1, Enabled=False)
    _send(env, url, ["while-disabled"])
    wait_until(lambda: _state(env, mapping) == "Disabled")
    time.sleep(0.3)  # several engine polls: a disabled mapping receives nothing
    assert env.invoker.calls == []
    assert env.counts(url) == (1, 0)
    env.lam.update_event_source_mapping(UUID=mapping, Enabled=True)
    wait_until(lambda: env.invoker.bodies() == ["while-disabled"])
    env.lam.update_event_source_mapping(
        UUID=mapping, BatchSize=10, MaximumBatchingWindowInSeconds=1
    )
    wait_until(lambda: getattr(env.engine.running_config(mapping), "batch_size", None) == 10)
    env.sqs.send_message_batch(  # at once: the 1 s window is not a test of send latency
        QueueUrl=url, Entries=[{"Id": b, "MessageBody": b} for b in ("u1", "u2", "u3")]
    )
    wait_until(lambda: len(env.invoker.records()) >= 4)
    assert max(len(c.records) for c in env.invoker.calls) == 3
    env.lam.delete_event_source_mapping(UUID=mapping)
    wait_until(lambda: _state(env, mapping) is None)
    wait_until(env.engine.idle)
    _send(env, url, ["after-delete"])
    time.sleep(0.3)  # several engine polls: a deleted mapping receives nothing
    assert "after-delete" not in env.invoker.bodies()
    assert env.counts(url) == (1, 0)


def _mapping_state(env: Env, mapping: str) -> str:
    return str(env.lam.get_event_source_mapping(UUID=mapping)["State"])


def test_item_12_disabling_until_the_batch_in_flight_ends_then_nothing_more(env: Env) -> None:
    """A disabled mapping once kept delivering until the engine's next pass (seen within 8 s,
    while GetEventSourceMapping said Disabled)."""
    url, arn = env.queue(vt=30)
    release = threading.Event()

    def handler(event: dict[str, Any], call: Any) -> Any:
        if event["Records"][0]["body"] == "held":
            release.wait(30)
        return {}

    env.invoker.handler = handler
    mapping = env.mapping(arn, BatchSize=1)
    _send(env, url, ["held"])
    wait_until(lambda: env.invoker.in_flight == 1)

    env.lam.update_event_source_mapping(UUID=mapping, Enabled=False)
    _send(env, url, ["after-disable"])
    assert _mapping_state(env, mapping) == "Disabling"  # its batch is still in flight

    release.set()
    wait_until(lambda: _mapping_state(env, mapping) == "Disabled")
    wait_until(env.engine.idle)
    time.sleep(0.3)  # several poll intervals: a disabled mapping receives nothing
    assert env.invoker.bodies() == ["held"]
    assert env.counts(url) == (1, 0)

    env.lam.update_event_source_mapping(UUID=mapping, Enabled=True)
    assert _mapping_state(env, mapping) == "Enabled"
    wait_until(lambda: env.invoker.bodies() == ["held", "after-disable"])


def test_item_12_disabled_and_enabled_again_at_once_keeps_polling(env: Env) -> None:
    url, arn = env.queue(vt=30)
    mapping = env.mapping(arn, BatchSize=1)
    for _ in range(3):
        env.lam.update_event_source_mapping(UUID=mapping, Enabled=False)
        env.lam.update_event_source_mapping(UUID=mapping, Enabled=True)
    _send(env, url, ["still-polled"])
    wait_until(lambda: env.invoker.bodies() == ["still-polled"])


def test_item_13_maximum_concurrency_caps_concurrent_invocations(env: Env) -> None:
    url, arn = env.queue(vt=30)
    # Every call lasts 0.15 s, and the first ones wait until two run at once: a loaded machine
    # cannot hide the concurrency, and a third concurrent call would be seen.
    env.invoker.delay = 0.15
    env.invoker.overlap = 2
    _send(env, url, [f"c{i}" for i in range(10)])
    env.mapping(arn, BatchSize=1, ScalingConfig={"MaximumConcurrency": 2})
    wait_until(lambda: len(env.invoker.calls) >= 10 and env.depth(url) == 0)
    assert env.invoker.max_in_flight == 2


def test_engine_idle_reflects_backlog_and_in_flight(env: Env) -> None:
    url, arn = env.queue(vt=30)
    release = threading.Event()
    env.invoker.handler = lambda event, call: release.wait(10) and {}
    env.mapping(arn, BatchSize=1)
    _send(env, url, ["a"])
    wait_until(lambda: env.invoker.in_flight == 1)
    assert not env.engine.idle()  # a batch in flight
    release.set()
    wait_until(env.engine.idle)
    assert env.depth(url) == 0
