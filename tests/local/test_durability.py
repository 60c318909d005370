"""A crash loses nothing the cloud acknowledged, and a restart is at once (issue: SIGKILL).

Each test runs `streamline local up --detach` as a process of its own, so it can kill it with
SIGKILL at a moment of its choosing, and checks everything through public AWS APIs. (These
clouds are separate processes: they run with the own-moto group, never beside the session
cloud's engines.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamline.local.cloud import make_client
from streamline.local.runtime.testing import _ensure_iam_role, create_function
from streamline.local.state import StateDir

pytestmark = pytest.mark.local

PRINTER = {
    "app.py": """
    import json
    def handler(event, context):
        print("delivered " + json.dumps(event))
        return {"ok": True}
    """
}


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamline", "local", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _up(state: Path, port: int = 0) -> tuple[str, int, int]:
    done = _cli("up", "--detach", "--port", str(port), "--state-dir", str(state))
    assert done.returncode == 0, done.stderr + done.stdout
    info = StateDir(state).read_endpoint()
    assert info is not None
    return info.endpoint_url, info.port, info.pid


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # reap it if it is our grandchild's zombie; otherwise wait for the kernel
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} did not die")


def _down(state: Path) -> None:
    _cli("down", "--state-dir", str(state))


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


def _wait(predicate: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:g} s")
        time.sleep(0.2)


def test_a_sigkilled_cloud_comes_back_with_everything_it_acknowledged(tmp_path: Path) -> None:
    state = tmp_path / "cloud"
    endpoint, port, pid = _up(state)
    name = f"crash-{uuid.uuid4().hex[:8]}"
    try:
        # Given queues, a stream, a table with its stream, a function and an async event
        _ensure_iam_role(endpoint)
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
        _wait(
            lambda: (
                kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"]
                == "ACTIVE"
            )
        )
        for n in range(20):
            kinesis.put_record(StreamName=name, Data=f"r{n}".encode(), PartitionKey="p")
        before = _kinesis_records(kinesis, name)
        table = ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
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
        _kill(pid)
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

        _wait(delivered, timeout=90)
    finally:
        _down(state)


def test_up_works_at_once_after_a_stop_and_after_a_kill(tmp_path: Path) -> None:
    """`local up` was refused for 60-75 s after either (TIME_WAIT sockets, a stale pid file)."""
    state = tmp_path / "cloud"
    endpoint, port, pid = _up(state)
    sqs = make_client("sqs", endpoint)
    sqs.create_queue(QueueName="kept")
    # keep connections open so the stop leaves TIME_WAIT behind
    for _ in range(20):
        sqs.list_queues()

    down = _cli("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    endpoint, _, pid = _up(state, port)
    assert "kept" in json.dumps(make_client("sqs", endpoint).list_queues())

    _kill(pid)
    endpoint, _, pid = _up(state, port)  # the stale pid file is recognised and cleared
    assert "kept" in json.dumps(make_client("sqs", endpoint).list_queues())
    _down(state)
