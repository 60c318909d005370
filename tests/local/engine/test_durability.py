"""A crash loses nothing the cloud acknowledged, and a restart is at once (issue: SIGKILL).

Each test runs `streamline local up --detach` as a process of its own, so it can kill it with
SIGKILL at a moment of its choosing, and checks everything through public AWS APIs. (These
clouds are separate processes: they run in tests/local/engine, never beside the session
cloud's engines.)
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamline.local.cloud import make_client
from streamline.local.esm.testing import create_streamed_table, wait_until
from streamline.local.runtime.testing import PRINTER, create_function, ensure_iam_role
from tests.detached import down, kill, local_cli, up

pytestmark = pytest.mark.local


def _up(state: Path, port: int = 0) -> tuple[str, int, int]:
    cloud = up(state, port)
    return cloud.endpoint_url, cloud.port, cloud.pid


def _kinesis_records(kinesis: Any, name: str) -> list[tuple[str, bytes]]:
    shard = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"][0]
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    out: list[tuple[str, bytes]] = []
    while iterator:
        page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        out += [(r["SequenceNumber"], r["Data"]) for r in page["Records"]]
        if not page["Records"]:
            break
        iterator = page.get("NextShardIterator")
    return out


def test_a_sigkilled_cloud_comes_back_with_everything_it_acknowledged(tmp_path: Path) -> None:
    state = tmp_path / "cloud"
    endpoint, port, pid = _up(state)
    name = f"crash-{uuid.uuid4().hex[:8]}"
    try:
        # Given queues, a stream, a table with its stream, a function and an async event
        ensure_iam_role(endpoint)
        sqs, kinesis, ddb, lam = (
            make_client(s, endpoint) for s in ("sqs", "kinesis", "dynamodb", "lambda")
        )
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        for start in range(0, 50, 10):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)],
            )
        kinesis.create_stream(StreamName=name, ShardCount=1)
        wait_until(
            lambda: (
                kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"]
                == "ACTIVE"
            )
        )
        for n in range(20):
            kinesis.put_record(StreamName=name, Data=f"r{n}".encode(), PartitionKey="p")
        before = _kinesis_records(kinesis, name)
        table = create_streamed_table(ddb, name, key="k")
        for n in range(10):
            ddb.update_item(
                TableName=name,
                Key={"k": {"S": f"k{n}"}},
                UpdateExpression="SET v = :v",
                ExpressionAttributeValues={":v": {"N": str(n)}},
            )
        create_function(lam, name, PRINTER)
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": "kept"}')

        # When the cloud is killed with nothing saved but what it journaled as it went
        kill(pid)
        endpoint, port2, pid = _up(state, port)
        assert port2 == port

        # Then every acknowledged change is back, with the same names and sequence numbers
        sqs, kinesis, ddb, lam = (
            make_client(s, endpoint) for s in ("sqs", "kinesis", "dynamodb", "lambda")
        )
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        bodies: list[str] = []
        for _ in range(10):
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            bodies += [m["Body"] for m in got]
        assert sorted(bodies) == sorted(f"m{n}" for n in range(50))
        assert _kinesis_records(kinesis, name) == before
        after = kinesis.put_record(StreamName=name, Data=b"new", PartitionKey="p")
        assert int(after["SequenceNumber"]) > int(before[-1][0]), "numbered past what exists"
        items = ddb.scan(TableName=name)["Items"]
        assert sorted(i["k"]["S"] for i in items) == sorted(f"k{n}" for n in range(10))
        restored = ddb.describe_table(TableName=name)["Table"]
        assert restored["LatestStreamArn"] == table["LatestStreamArn"], "same stream, same ARN"
        assert lam.get_function(FunctionName=name)["Configuration"]["FunctionName"] == name

        lam.delete_function_concurrency(FunctionName=name)
        logs = make_client("logs", endpoint)

        def delivered() -> bool:
            try:
                events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
            except logs.exceptions.ResourceNotFoundException:
                return False
            return any('delivered {"n": "kept"}' in e["message"] for e in events)

        wait_until(delivered, timeout=90, interval=0.2)
    finally:
        down(state)


def test_up_works_at_once_after_a_stop_and_after_a_kill(tmp_path: Path) -> None:
    """`local up` was refused for 60-75 s after either (TIME_WAIT sockets, a stale pid file)."""
    state = tmp_path / "cloud"
    endpoint, port, pid = _up(state)
    sqs = make_client("sqs", endpoint)
    sqs.create_queue(QueueName="kept")
    # keep connections open so the stop leaves TIME_WAIT behind
    for _ in range(20):
        sqs.list_queues()

    stopped = local_cli("down", "--state-dir", str(state))
    assert stopped.returncode == 0, stopped.stderr
    endpoint, _, pid = _up(state, port)
    assert "kept" in json.dumps(make_client("sqs", endpoint).list_queues())

    kill(pid)
    endpoint, _, pid = _up(state, port)  # the stale pid file is recognised and cleared
    assert "kept" in json.dumps(make_client("sqs", endpoint).list_queues())
    down(state)


def test_a_stack_with_custom_resources_comes_back_after_a_kill_without_running_them_again(
    tmp_path: Path,
) -> None:
    """A deploy waited for its custom resources' answers, whose journal entries come after the
    deploy's own: replay takes the recorded answers (runs nothing) so Ref, GetAtt and outputs
    come back as they were."""
    from streamline.local.deploy import deploy
    from streamline.local.deploy import stack_outputs as outputs_of

    state = tmp_path / "cloud"
    endpoint, port, pid = _up(state)
    app = Path(__file__).resolve().parents[2] / "fixtures" / "apps" / "custom_resources"
    name = f"crash-cr-{uuid.uuid4().hex[:6]}"
    try:
        before = deploy(app, endpoint, {"stack": name})[name]
        assert before["GreetingText"] == "hello world x3"
        doubler_logs = f"/aws/lambda/{name}-Doubler"
        kill(pid)
        endpoint, _, pid = _up(state, port)

        after = outputs_of(endpoint, name)
        assert after == before
        logs = make_client("logs", endpoint)
        groups = logs.describe_log_groups(logGroupNamePrefix=doubler_logs)["logGroups"]
        starts = [
            e["message"]
            for g in groups
            for e in logs.filter_log_events(logGroupName=g["logGroupName"])["events"]
            if e["message"].startswith("START")
        ]
        assert starts == []  # the restart ran no custom resource (log lines are not replayed)
    finally:
        down(state)
