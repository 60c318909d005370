"""Pure parts of `streamline status|redrive|quarantine|replay`: arguments, ranges, formatting,
payload decoding, the environment the recovery adapters are bound to, and publishing (on
in-process moto). The commands against the deployed pipeline are tested in
tests/local/test_ops_recovery_commands.py.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from streamline.cli import main
from streamline.ops.quarantine import render_payload
from streamline.ops.redrive import describe_event, format_summary, new_events
from streamline.ops.replay import (
    PublishError,
    ReplayError,
    dal_bound_to,
    parse_sequence,
    publish,
    stream_of_arn,
)
from streamline.ops.status import format_age, format_depth, render
from streamline.ops.target import Target

KINESIS_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/order-events"
DDB_STREAM_ARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2024-05-01T00:00:00"


# -- arguments: one line, exit 2, before any AWS call -------------------------------------


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["replay", "--stream", "orders", "--shard", "s", "--from", "5", "--to", "3"], "before"),
        (["replay", "--stream", "orders", "--from", "5"], "needs --shard"),
        (["replay", "--stream", "orders", "--shard", "s", "--from", "0x1"], "digits only"),
        (["replay", "--stream", "arn:aws:s3:::bucket", "--shard", "s", "--from", "1"], "ARN"),
        (["replay", "--failure-queue", "ingest", "--to", "9"], "go with --stream"),
        (["replay", "--failure-queue", "changes", "--max", "0"], "--max must be"),
        (["status", "--since", "5 weeks"], "--since must be"),
        (["status", "--errors", "-1"], "--errors must be"),
        (["redrive", "--timeout", "-5"], "--timeout must be 1 s to a day"),
        (["redrive", "--interval", "0"], "--interval must be above 0"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    argv: list[str], text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*argv, "--state-dir", str(tmp_path)])

    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and text in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["replay"],  # neither --stream nor --failure-queue
        ["replay", "--stream", "orders", "--failure-queue", "ingest"],
        ["replay", "--failure-queue", "orders"],
        ["quarantine"],
        ["quarantine", "show"],
        ["quarantine", "release", "x", "--payload"],
        ["redrive", "--timeout", "soon"],
    ],
)
def test_argparse_errors_are_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)

    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["redrive"],
        ["quarantine", "list"],
        ["quarantine", "release", "r-1", "--yes"],
        ["replay", "--failure-queue", "ingest"],
    ],
)
def test_without_a_cloud_or_account_every_command_says_so_in_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*argv, "--state-dir", str(tmp_path)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "no local cloud is running" in err


def test_parse_sequence_keeps_digits_and_refuses_the_rest() -> None:
    assert parse_sequence(" 49650000000000000000000000000000000000000000000000000002 ", "--from")
    with pytest.raises(ReplayError, match="--to must be a sequence number"):
        parse_sequence("latest", "--to")


def test_stream_of_arn_tells_kinesis_from_dynamodb_streams() -> None:
    assert stream_of_arn(KINESIS_ARN) == ("kinesis", "order-events")
    assert stream_of_arn(DDB_STREAM_ARN) == ("dynamodb", "orders")
    for bad in ("orders-stream", "arn:aws:dynamodb:eu-west-1:1:table/orders", "arn:aws:sqs:x:1:q"):
        with pytest.raises(ReplayError):
            stream_of_arn(bad)


# -- status formatting --------------------------------------------------------------------


def test_format_age_and_depth() -> None:
    assert [format_age(v) for v in (None, 0, 999, 1000, 90_000, 600_000, 36_000_000)] == [
        "-",
        "0 ms",
        "999 ms",
        "1.0 s",
        "90.0 s",
        "10.0 min",
        "10.0 h",
    ]
    assert format_depth(None) == "-"
    assert format_depth({"visible": 0, "inFlight": 0}) == "0"
    assert format_depth({"visible": 4, "inFlight": 1}) == "4 (+1 in flight)"


def _processor(name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "source": "sqs",
        "backlog": {"visible": 0, "inFlight": 0},
        "failureQueue": f"{name}-dlq",
        "failures": {"visible": 0, "inFlight": 0},
        "errorCount": 0,
        "errors": [],
        **overrides,
    }


def test_render_lines_up_the_table_and_flags_non_empty_failure_queues() -> None:
    report = {
        "stage": "prod",
        "processors": [
            _processor(
                "ingest",
                source="kinesis",
                backlog={"metric": "IteratorAge", "maximumMs": 2500.0},
                failures={"visible": 2, "inFlight": 0},
                errorCount=1,
                errors=[{"at": "2024-05-01T10:00:00+00:00", "line": "WARNING Poison record"}],
            ),
            _processor("notify", errorCount=None),
        ],
        "recovery": {
            "lastExecution": {
                "status": "SUCCEEDED",
                "started": "2024-05-01T09:45:00+00:00",
                "summary": {"replayed": 3, "quarantined": 1, "failed": 0},
            },
            "quarantined": 1,
        },
        "nonEmptyFailureQueues": ["ingest-dlq"],
    }

    lines = render(report, "15m")

    assert lines[0] == "stage prod"
    header, ingest, notify = lines[1:4]
    assert header.split()[:3] == ["PROCESSOR", "SOURCE", "BACKLOG"]
    assert header.endswith("ERRORS (15m)")
    # columns line up: every cell starts where its header does
    assert ingest.index("2.5 s") == header.index("BACKLOG")
    assert notify.index("notify-dlq") == header.index("FAILURE QUEUE")
    assert notify.rstrip().endswith("-")  # no log group: no count
    assert "  ingest  2024-05-01T10:00:00+00:00  WARNING Poison record" in lines
    assert any(
        "last run SUCCEEDED" in ln and "replayed 3, quarantined 1, kept 0" in ln for ln in lines
    )
    assert "quarantine  1 record" in lines
    assert lines[-1] == "attention   not empty: ingest-dlq"


# -- redrive history ----------------------------------------------------------------------


def test_describe_event_prints_states_and_failures_and_skips_the_rest() -> None:
    def event(kind: str, **details: Any) -> dict[str, Any]:
        return {"type": kind, **details}

    assert describe_event(event("PassStateEntered", stateEnteredEventDetails={"name": "A"})) == (
        "enter  A"
    )
    assert describe_event(event("MapStateExited", stateExitedEventDetails={"name": "M"})) == (
        "exit   M"
    )
    lambda_cause = json.dumps({"errorType": "TransientReplayError", "errorMessage": "r-1: busy"})
    failed = event(
        "LambdaFunctionFailed",
        lambdaFunctionFailedEventDetails={"error": "TransientReplayError", "cause": lambda_cause},
    )
    assert describe_event(failed) == "failed TransientReplayError: r-1: busy"
    assert describe_event(event("ExecutionTimedOut", executionTimedOutEventDetails={})) == (
        "execution failed ExecutionTimedOut"
    )
    assert describe_event(event("LambdaFunctionScheduled")) is None
    assert describe_event(event("MapIterationStarted")) is None


def test_new_events_reads_newest_first_pages_until_the_last_seen_id() -> None:
    calls: list[int] = []

    def pages() -> Iterator[list[dict[str, Any]]]:
        for page in ([{"id": 9}, {"id": 8}, {"id": 7}], [{"id": 6}, {"id": 5}], [{"id": 4}]):
            calls.append(page[0]["id"])
            yield page

    assert [e["id"] for e in new_events(pages(), after_id=5)] == [6, 7, 8, 9]
    assert calls == [9, 6]  # the third page was never fetched
    ascending = iter([[{"id": 1}, {"id": 2}, {"id": 3}]])  # a backend ignoring reverseOrder
    assert [e["id"] for e in new_events(ascending, after_id=1)] == [2, 3]


def test_format_summary_counts_and_lists_only_sources_that_did_something() -> None:
    output = {
        "replayed": 2,
        "quarantined": 1,
        "failed": 1,
        "sources": [
            {"source": "ingest-failures", "replayed": ["a", "b"], "quarantined": ["c"]}
            | {"failed": [], "deleted": 2},
            {"source": "fulfilment-dlq", "replayed": [], "quarantined": [], "failed": []}
            | {"deleted": 0},
            {"source": "changes-failures", "replayed": [], "quarantined": [], "failed": ["d"]}
            | {"deleted": 0, "error": {"Error": "DeleteMessageBatchFailed", "Cause": "1 of 1"}},
        ],
    }

    assert format_summary(output) == [
        "replayed 2, quarantined 1, kept 1",
        "  ingest-failures: replayed 2, quarantined 1, kept 0, deleted 2",
        "  changes-failures: replayed 0, quarantined 0, kept 1, deleted 0"
        " (error DeleteMessageBatchFailed: 1 of 1)",
    ]


# -- quarantine payloads ------------------------------------------------------------------


def test_render_payload_decodes_bytes_kinesis_data_and_dynamodb_images() -> None:
    assert json.loads(render_payload('{"order_id": "o-1"}')) == {"order_id": "o-1"}
    assert render_payload("not json at all") == "not json at all"
    as_bytes = "base64:" + base64.b64encode(b'{"a": 1}').decode()
    assert json.loads(render_payload(as_bytes)) == {"a": 1}
    binary = "base64:" + base64.b64encode(b"\xff\xfe\x00").decode()
    assert render_payload(binary).startswith("binary (3 bytes, base64): ")

    record = {"kinesis": {"partitionKey": "o-1", "data": base64.b64encode(b'{"v": 2}').decode()}}
    assert json.loads(render_payload(json.dumps(record)))["kinesis"]["data"] == {"v": 2}

    change = {"eventName": "MODIFY", "dynamodb": {"NewImage": {"version": {"N": "3"}}}}
    assert json.loads(render_payload(json.dumps(change)))["newImage (plain)"] == {"version": 3}


# -- binding the recovery adapters to a target --------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-shell")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-shell")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-abc")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield


@pytest.mark.usefixtures("clean_env")
def test_dal_bound_to_a_local_target_uses_its_endpoint_and_restores_the_environment() -> None:
    before = dict(os.environ)
    target = Target(endpoint_url="http://127.0.0.1:4599", profile=None, region=None)

    with dal_bound_to(target):
        from orderflow.dal import client

        assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4599"
        assert os.environ["AWS_ACCESS_KEY_ID"] == "test"
        assert "_X_AMZN_TRACE_ID" not in os.environ  # no trace to continue from a CLI
        assert client("sqs").meta.endpoint_url == "http://127.0.0.1:4599"

    assert dict(os.environ) == before
    assert client("sqs").meta.endpoint_url != "http://127.0.0.1:4599"  # cache reset


@pytest.mark.usefixtures("clean_env")
def test_dal_bound_to_a_profile_drops_key_variables_that_would_win_over_it() -> None:
    target = Target(endpoint_url=None, profile="prod", region="eu-west-1")

    with dal_bound_to(target):
        assert os.environ["AWS_PROFILE"] == "prod"
        assert os.environ["AWS_REGION"] == os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
        assert "AWS_ACCESS_KEY_ID" not in os.environ and "AWS_ENDPOINT_URL" not in os.environ

    assert os.environ["AWS_ACCESS_KEY_ID"] == "from-shell" and "AWS_PROFILE" not in os.environ


# -- publishing as the workflow does (in-process moto) ------------------------------------


@pytest.fixture
def aws() -> Iterator[Target]:
    with mock_aws():
        from orderflow.dal import reset_clients

        reset_clients()
        # endpoint_url None, no profile: the binding leaves moto's patched default session alone
        yield Target(endpoint_url=None, profile=None, region="us-east-1")
        reset_clients()


TASK_ID = "0b8c0f7e-3f7e-4b7b-9a59-6b2f2e1d3c4a"


def _task() -> str:
    """A fulfilment task body, built with the schema's own model."""
    from orderflow.events import FulfilmentTask

    return FulfilmentTask(
        kind="fulfil",
        task_id=TASK_ID,
        order_id="o-1",
        customer_id="c-1",
        amount_cents=100,
        version=2,
        event_id="2f1c3a3e-8b53-4a55-9d7e-0d6b0f5b7a01",
    ).model_dump_json()


def test_publish_to_kinesis_keeps_a_given_partition_key_or_uses_the_order_id(aws: Target) -> None:
    import boto3

    kinesis = boto3.client("kinesis", region_name="us-east-1")
    kinesis.create_stream(StreamName="events", ShardCount=1)
    event = {
        "event_id": "2f1c3a3e-8b53-4a55-9d7e-0d6b0f5b7a01",
        "order_id": "o-9",
        "version": 1,
        "type": "OrderCreated",
        "occurred_at": datetime.now(UTC).isoformat(),
        "customer_id": "c-1",
        "amount_cents": 100,
    }
    with dal_bound_to(aws):
        derived = publish(
            {"type": "kinesis", "streamName": "events"}, json.dumps(event), dedup_suffix="x"
        )
        kept = publish(
            {"type": "kinesis", "streamName": "events"},
            b"\x00raw",
            dedup_suffix="x",
            partition_key="k-7",
        )

    assert "key o-9" in derived and "key k-7" in kept
    shard = kinesis.describe_stream(StreamName="events")["StreamDescription"]["Shards"][0][
        "ShardId"
    ]
    iterator = kinesis.get_shard_iterator(
        StreamName="events", ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [(r["PartitionKey"], r["Data"]) for r in records] == [
        ("o-9", json.dumps(event).encode()),
        ("k-7", b"\x00raw"),
    ]


def test_publish_to_a_fifo_queue_uses_the_order_group_and_a_fresh_dedup_id(aws: Target) -> None:
    import boto3

    payload = _task()
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="tasks.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]

    with dal_bound_to(aws):
        publish({"type": "sqs", "queueUrl": url}, payload, dedup_suffix="release:1")
        publish({"type": "sqs", "queueUrl": url}, payload, dedup_suffix="release:2")

    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    # both arrive: the fresh dedup ids keep FIFO deduplication from dropping the second
    assert [
        (m["Attributes"]["MessageGroupId"], m["Attributes"]["MessageDeduplicationId"])
        for m in messages
    ] == [("o-1", f"{TASK_ID}:release:1"), ("o-1", f"{TASK_ID}:release:2")]


def test_publish_refuses_an_unknown_target_type(aws: Target) -> None:
    with dal_bound_to(aws), pytest.raises(PublishError, match="unknown replay target type"):
        publish({"type": "carrier-pigeon"}, "{}", dedup_suffix="x")
