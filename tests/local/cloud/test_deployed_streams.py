"""docs/esm-semantics.md items 14-24 on the deployed conformance app: Kinesis and DynamoDB Streams.

Streams, tables and mappings are created through the public APIs; the function is the one the
fixture app deployed. On-failure records land in an SQS queue the test reads.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.local.cloud.deployed import (
    Deployed,
    eventually,
)

pytestmark = pytest.mark.local


def _stream(d: Deployed, shards: int = 1) -> str:
    kinesis = d.client("kinesis")
    name = f"s-{uuid.uuid4().hex[:10]}"
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    return kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]


def _failure_queue(d: Deployed) -> tuple[str, str]:
    sqs = d.client("sqs")
    url = sqs.create_queue(QueueName=f"f-{uuid.uuid4().hex[:10]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def _map(d: Deployed, source_arn: str, **kwargs: Any) -> str:
    kwargs.setdefault("StartingPosition", "TRIM_HORIZON")
    kwargs.setdefault("FunctionResponseTypes", ["ReportBatchItemFailures"])
    return d.client("lambda").create_event_source_mapping(
        FunctionName=d.out("SlowArn"), EventSourceArn=source_arn, **kwargs
    )["UUID"]


def _put(
    d: Deployed, stream_arn: str, directives: list[dict[str, Any]], key: str = "k"
) -> list[str]:
    kinesis = d.client("kinesis")
    return [
        kinesis.put_record(
            StreamARN=stream_arn, Data=json.dumps(x).encode(), PartitionKey=x.get("key", key)
        )["SequenceNumber"]
        for x in directives
    ]


def _data(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(record["kinesis"]["data"]))


def _failures(d: Deployed, url: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    sqs = d.client("sqs")

    def probe() -> bool:
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            got.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return len(got) >= count

    eventually(probe, timeout=timeout)
    return got


def test_item_14_shards_progress_in_order_and_a_failing_shard_blocks_no_other(
    deployed: Deployed,
) -> None:
    arn = _stream(deployed, shards=2)
    scenario = f"item14-{uuid.uuid4().hex[:6]}"
    _, fail_arn = _failure_queue(deployed)
    mapping = _map(
        deployed,
        arn,
        MaximumRetryAttempts=-1,
        MaximumRecordAgeInSeconds=-1,
        DestinationConfig={"OnFailure": {"Destination": fail_arn}},
    )
    kinesis = deployed.client("kinesis")
    shards = kinesis.list_shards(StreamARN=arn)["Shards"]
    hash_keys = [s["HashKeyRange"]["StartingHashKey"] for s in shards]
    bad = {"scenario": scenario, "respond": "raise"}
    kinesis.put_record(
        StreamARN=arn, Data=json.dumps(bad).encode(), PartitionKey="x", ExplicitHashKey=hash_keys[0]
    )
    for n in range(5):
        kinesis.put_record(
            StreamARN=arn,
            Data=json.dumps({"scenario": scenario, "n": n}).encode(),
            PartitionKey="y",
            ExplicitHashKey=hash_keys[1],
        )
    eventually(
        lambda: sum(1 for b in deployed.records(scenario) for r in b if "n" in _data(r)) >= 5,
        timeout=20,
    )
    good = [_data(r)["n"] for b in deployed.records(scenario) for r in b if "n" in _data(r)]
    assert good == [0, 1, 2, 3, 4]
    # the bad shard keeps retrying its one record, in order, while the good shard finished
    eventually(
        lambda: sum(1 for b in deployed.records(scenario) for r in b if "n" not in _data(r)) >= 2,
        timeout=30,
    )
    # retrying forever is the point of this mapping; stop it so the shared cloud can go idle
    deployed.client("lambda").delete_event_source_mapping(UUID=mapping)


def test_items_15_18_19_retries_then_an_on_failure_record(deployed: Deployed) -> None:
    arn = _stream(deployed)
    scenario = f"item15-{uuid.uuid4().hex[:6]}"
    url, fail_arn = _failure_queue(deployed)
    _map(
        deployed,
        arn,
        MaximumRetryAttempts=2,
        BisectBatchOnFunctionError=False,
        DestinationConfig={"OnFailure": {"Destination": fail_arn}},
    )
    seqs = _put(deployed, arn, [{"scenario": scenario, "respond": "raise"}])
    (record,) = _failures(deployed, url, 1)
    assert len(deployed.journal(scenario)) == 3  # N retries give N + 1 invocations
    assert record["version"] == "1.0"
    assert set(record) >= {
        "version",
        "timestamp",
        "requestContext",
        "responseContext",
        "KinesisBatchInfo",
    }
    ctx = record["requestContext"]
    assert ctx["condition"] == "RetryAttemptsExhausted"
    assert ctx["approximateInvokeCount"] == 3
    assert ctx["functionArn"].startswith(deployed.out("SlowArn"))
    assert record["responseContext"]["executedVersion"] == "$LATEST"
    assert record["responseContext"]["functionError"] == "Unhandled"
    info = record["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == seqs[0] == info["endSequenceNumber"]
    assert info["batchSize"] == 1 and info["streamArn"] == arn
    assert {"shardId", "approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"} <= set(
        info
    )


def test_item_16_partial_failure_resumes_from_the_lowest_reported_record(
    deployed: Deployed,
) -> None:
    arn = _stream(deployed)
    scenario = f"item16-{uuid.uuid4().hex[:6]}"
    url, fail_arn = _failure_queue(deployed)
    _put(
        deployed,
        arn,
        [
            {"scenario": scenario, "n": 0},
            {"scenario": scenario, "n": 1, "fail": True},
            {"scenario": scenario, "n": 2},
        ],
    )
    _map(
        deployed,
        arn,
        MaximumRetryAttempts=1,
        BatchSize=10,
        DestinationConfig={"OnFailure": {"Destination": fail_arn}},
    )
    (record,) = _failures(deployed, url, 1)
    batches = [[_data(r)["n"] for r in b] for b in deployed.records(scenario)]
    assert batches[:2] == [[0, 1, 2], [1, 2]]
    assert record["KinesisBatchInfo"]["batchSize"] == 2


def test_item_17_bisect_splits_without_consuming_retries(deployed: Deployed) -> None:
    arn = _stream(deployed)
    scenario = f"item17-{uuid.uuid4().hex[:6]}"
    url, fail_arn = _failure_queue(deployed)
    directives = [{"scenario": scenario, "n": n} for n in range(4)]
    directives[3]["respond"] = "raise"
    _put(deployed, arn, directives)
    _map(
        deployed,
        arn,
        MaximumRetryAttempts=0,
        BisectBatchOnFunctionError=True,
        BatchSize=10,
        FunctionResponseTypes=[],
        DestinationConfig={"OnFailure": {"Destination": fail_arn}},
    )
    (record,) = _failures(deployed, url, 1)
    sizes = [len(b) for b in deployed.records(scenario)]
    assert sizes[0] == 4 and 2 in sizes and 1 in sizes
    assert record["KinesisBatchInfo"]["batchSize"] == 1


def test_item_18_records_too_old_are_reported_and_never_delivered(deployed: Deployed) -> None:
    arn = _stream(deployed)
    scenario = f"item18-{uuid.uuid4().hex[:6]}"
    url, fail_arn = _failure_queue(deployed)
    _put(deployed, arn, [{"scenario": scenario}])
    deployed.cloud.clock.advance(120)  # the engine's clock: the record is now two minutes old
    _map(
        deployed,
        arn,
        MaximumRecordAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": fail_arn}},
    )
    (record,) = _failures(deployed, url, 1)
    assert record["requestContext"]["condition"] == "RecordAgeExceeded"
    assert "responseContext" not in record
    assert record["KinesisBatchInfo"]["batchSize"] == 1
    assert deployed.journal(scenario) == []


def test_item_20_latest_skips_records_already_in_the_stream(deployed: Deployed) -> None:
    arn = _stream(deployed)
    scenario = f"item20-{uuid.uuid4().hex[:6]}"
    _put(deployed, arn, [{"scenario": scenario, "n": "old"}])
    mapping = _map(deployed, arn, StartingPosition="LATEST")
    eventually(
        lambda: (
            deployed.client("lambda").get_event_source_mapping(UUID=mapping)["State"] == "Enabled"
        )
    )
    time.sleep(1.5)  # let the shard worker take its LATEST position before producing
    _put(deployed, arn, [{"scenario": scenario, "n": "new"}])
    eventually(lambda: deployed.journal(scenario), timeout=15)
    seen = [_data(r)["n"] for b in deployed.records(scenario) for r in b]
    assert seen == ["new"]
    with pytest.raises(ClientError):
        deployed.client("lambda").create_event_source_mapping(
            FunctionName=deployed.out("SlowArn"), EventSourceArn=arn
        )


def test_item_21_kinesis_record_shape(deployed: Deployed) -> None:
    arn = _stream(deployed)
    scenario = f"item21-{uuid.uuid4().hex[:6]}"
    (seq,) = _put(deployed, arn, [{"scenario": scenario}], key="pk-1")
    _map(deployed, arn)
    (batch,) = eventually(lambda: deployed.records(scenario), timeout=15)
    (record,) = batch
    assert record["eventName"] == "aws:kinesis:record"
    assert record["eventVersion"] == "1.0"
    assert record["eventSource"] == "aws:kinesis"
    assert record["eventSourceARN"] == arn
    assert record["eventID"].endswith(f":{seq}") and record["eventID"].startswith("shardId-")
    assert {"invokeIdentityArn", "awsRegion"} <= set(record)
    kin = record["kinesis"]
    assert kin["partitionKey"] == "pk-1" and kin["sequenceNumber"] == seq
    assert kin["kinesisSchemaVersion"] == "1.0"
    assert isinstance(kin["approximateArrivalTimestamp"], (int, float))


def test_item_22_dynamodb_record_shape(deployed: Deployed) -> None:
    ddb = deployed.client("dynamodb")
    table = f"t-{uuid.uuid4().hex[:10]}"
    desc = ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    scenario = f"item22-{uuid.uuid4().hex[:6]}"
    _map(deployed, desc["LatestStreamArn"])
    directive = json.dumps({"scenario": scenario})
    ddb.put_item(
        TableName=table, Item={"pk": {"S": "a"}, "directive": {"S": directive}, "v": {"N": "1"}}
    )
    ddb.put_item(
        TableName=table, Item={"pk": {"S": "a"}, "directive": {"S": directive}, "v": {"N": "2"}}
    )
    records = eventually(
        lambda: (
            [r for b in deployed.records(scenario) for r in b][1:]
            and [r for b in deployed.records(scenario) for r in b]
        ),
        timeout=15,
    )
    insert, modify = records[:2]
    assert insert["eventName"] == "INSERT" and modify["eventName"] == "MODIFY"
    for record in (insert, modify):
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventSourceARN"] == desc["LatestStreamArn"]
        assert {"eventID", "awsRegion"} <= set(record)
        body = record["dynamodb"]
        assert {
            "ApproximateCreationDateTime",
            "Keys",
            "SequenceNumber",
            "SizeBytes",
            "StreamViewType",
        } <= set(body)
        assert body["Keys"] == {"pk": {"S": "a"}}
        assert body["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["v"] == {"N": "1"}
    assert modify["dynamodb"]["NewImage"]["v"] == {"N": "2"}


def test_item_23_filtered_out_records_are_skipped_and_the_checkpoint_moves(
    deployed: Deployed,
) -> None:
    arn = _stream(deployed)
    scenario = f"item23-{uuid.uuid4().hex[:6]}"
    _map(
        deployed,
        arn,
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"data": {"keep": [True]}})}]},
    )
    _put(
        deployed,
        arn,
        [
            {"scenario": scenario, "keep": False, "n": 0},
            {"scenario": scenario, "keep": True, "n": 1},
            {"scenario": scenario, "keep": False, "n": 2},
            {"scenario": scenario, "keep": True, "n": 3},
        ],
    )
    # a kept sentinel after them proves the checkpoint moved past the filtered records
    _put(deployed, arn, [{"scenario": scenario, "keep": True, "n": 4}])
    eventually(lambda: sum(len(b) for b in deployed.records(scenario)) >= 3, timeout=30)
    assert [_data(r)["n"] for b in deployed.records(scenario) for r in b] == [1, 3, 4]


def test_item_24_parallelization_keeps_order_per_key_and_tumbling_windows_are_not_ignored(
    deployed: Deployed,
) -> None:
    arn = _stream(deployed)
    scenario = f"item24-{uuid.uuid4().hex[:6]}"
    _map(deployed, arn, ParallelizationFactor=4, BatchSize=2)
    _put(deployed, arn, [{"scenario": scenario, "key": f"k{n % 3}", "n": n} for n in range(12)])
    eventually(lambda: sum(len(b) for b in deployed.records(scenario)) >= 12, timeout=20)
    per_key: dict[str, list[int]] = {}
    for batch in deployed.records(scenario):
        for r in batch:
            per_key.setdefault(r["kinesis"]["partitionKey"], []).append(_data(r)["n"])
    assert all(ns == sorted(ns) for ns in per_key.values())
    assert sorted(n for ns in per_key.values() for n in ns) == list(range(12))
    try:
        mapping = _map(deployed, _stream(deployed), TumblingWindowInSeconds=30)
    except ClientError as error:
        assert "TumblingWindow" in str(error)
    else:
        state = deployed.client("lambda").get_event_source_mapping(UUID=mapping)
        assert state["TumblingWindowInSeconds"] == 30
