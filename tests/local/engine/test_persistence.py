"""A restarted local cloud (``persist=True``) goes on where it stopped: nothing is lost.

Each test starts and stops its own clouds on one state dir (so it runs in tests/local/engine,
never beside the session cloud). Everything is checked through public AWS APIs.
"""

from __future__ import annotations

import io
import pickle
import threading
import time
import uuid
import weakref
from collections import defaultdict
from pathlib import Path

import pytest

from streamline.local import persistence
from streamline.local.cloud import LocalCloud
from streamline.local.runtime.testing import PRINTER, create_function, ensure_iam_role

pytestmark = pytest.mark.local


def _cloud(state_dir: Path) -> LocalCloud:
    return LocalCloud(port=None, state_dir=state_dir, persist=True)


def test_queues_streams_tables_functions_and_async_events_survive_a_restart(
    tmp_path: Path,
) -> None:
    name = f"persist-{uuid.uuid4().hex[:8]}"
    with _cloud(tmp_path) as cloud:
        ensure_iam_role(cloud.endpoint_url)
        sqs, kinesis, ddb, lam = (cloud.client(s) for s in ("sqs", "kinesis", "dynamodb", "lambda"))
        url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
        )
        # one message in flight at the stop: it must come back once its timeout passes
        in_flight = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
        kinesis.create_stream(StreamName=name, ShardCount=1)
        kinesis.put_record(StreamName=name, Data=b"record", PartitionKey="p")
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName=name, Item={"k": {"S": "kept"}})
        create_function(lam, name, PRINTER)
        # Throttled to nothing: the accepted async event waits in the engine's queue.
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"n": 1}')
        assert not cloud.async_engine.idle()

    # Nothing is saved at stop: every change is in the journal already.
    assert not (tmp_path / persistence.STATE_FILE).exists()
    assert list((tmp_path / "journal").glob("*.log"))

    with _cloud(tmp_path) as cloud:
        sqs, kinesis, ddb, lam = (cloud.client(s) for s in ("sqs", "kinesis", "dynamodb", "lambda"))
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        time.sleep(1.1)  # the in-flight message's visibility timeout
        bodies = []
        for _ in range(3):
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                bodies.append(message["Body"])
        assert sorted(bodies) == ["m0", "m1", "m2"]
        assert in_flight[0]["Body"] in bodies

        shard = kinesis.describe_stream(StreamName=name)["StreamDescription"]["Shards"][0]
        iterator = kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [
            b"record"
        ]
        assert ddb.get_item(TableName=name, Key={"k": {"S": "kept"}})["Item"]

        lam.delete_function_concurrency(FunctionName=name)
        cloud.wait_idle(timeout=60)
        logs = cloud.client("logs")
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        assert any('delivered {"n": 1}' in e["message"] for e in events)


def test_a_corrupt_saved_state_is_a_clear_error_not_an_empty_cloud(tmp_path: Path) -> None:
    (tmp_path / persistence.STATE_FILE).write_bytes(b"not a pickle")
    with pytest.raises(persistence.PersistenceError, match="remove it to start empty"):
        _cloud(tmp_path).start()


class _Item:
    """A module-level class, as moto's models are (pickle finds classes by name)."""


def test_unpicklable_members_come_back_usable() -> None:
    """Locks come back new, weak indexes keep pointing at the restored objects."""
    items = {"a": _Item()}
    nested: defaultdict[str, defaultdict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    nested["x"]["y"].append(1)
    state = {
        "lock": threading.RLock(),
        "items": items,
        "index": weakref.WeakValueDictionary(items),
        "nested": nested,
    }
    buffer = io.BytesIO()
    persistence._Pickler(buffer).dump(state)

    restored = pickle.loads(buffer.getvalue())

    assert restored["lock"].acquire(blocking=False)
    assert restored["index"]["a"] is restored["items"]["a"]
    assert restored["nested"]["x"]["y"] == [1]
    assert restored["nested"]["new"]["z"] == []
