"""Streamline's own app on the local cloud: records flow through every stage, failures land
where AWS would put them, and the recovery workflow replays and quarantines them.

This is issue 3's "done when", as a test: the unchanged `cdk deploy` of the repository's app,
producers writing to the stream through public APIs, and every check made through public APIs.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.local.cloud.deployed import eventually
from tests.orders import order_event

pytestmark = pytest.mark.local

STATUSES = {"OrderCreated": "CREATED", "OrderPaid": "PAID", "OrderShipped": "SHIPPED"}


def _scan(cloud: Any, table: str) -> list[dict[str, Any]]:
    ddb = cloud.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return items


def _drain_queue(cloud: Any, url: str) -> list[dict[str, Any]]:
    sqs = cloud.client("sqs")
    bodies = []
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies.append(json.loads(message["Body"]))
        # make it visible again for the recovery workflow
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    return bodies


def test_records_flow_through_every_stage_and_failures_are_recovered(
    cloud: Any, pipeline: dict[str, str]
) -> None:
    kinesis = cloud.client("kinesis")
    prefix = f"o-{uuid.uuid4().hex[:6]}"
    orders = [f"{prefix}-{n}" for n in range(8)]
    records = [
        {"Data": json.dumps(order_event(o, v, kind)).encode(), "PartitionKey": o}
        for o in orders
        for v, kind in enumerate(STATUSES, start=1)
    ]
    poison = {"Data": b'{"order_id": "broken", "version": "not a number"}', "PartitionKey": "x"}
    flaky_order = f"{prefix}-flaky"
    # Long enough that the mapping exhausts its retries inside the window even on a loaded
    # machine (3 s once let a slow first attempt succeed: no on-failure record ever came).
    transient_until = datetime.now(UTC) + timedelta(seconds=20)
    flaky = {
        "Data": json.dumps(
            order_event(
                flaky_order,
                1,
                "OrderCreated",
                chaos={"transient_until": transient_until.isoformat()},
            )
        ).encode(),
        "PartitionKey": flaky_order,
    }
    out = kinesis.put_records(
        StreamName=pipeline["OrderEventsStreamName"], Records=[*records, poison, flaky]
    )
    assert out["FailedRecordCount"] == 0

    # every stage: orders table, then the changes stream into both queues, then the sink
    def orders_done() -> bool:
        items = {i["order_id"]["S"]: i for i in _scan(cloud, pipeline["OrdersTableName"])}
        return all(items.get(o, {}).get("status", {}).get("S") == "SHIPPED" for o in orders)

    eventually(orders_done, timeout=60)

    def effects() -> set[str]:
        return {i["effect_id"]["S"] for i in _scan(cloud, pipeline["EffectsTableName"])}

    expected = {f"fulfil#{o}" for o in orders} | {
        f"notify#{o}#{status}" for o in orders for status in STATUSES.values()
    }
    eventually(lambda: expected <= effects(), timeout=60)

    # the poison record went straight to the failure queue with its reason; the flaky one
    # exhausted its retries and left an AWS on-failure record (metadata only)
    failures: list[dict[str, Any]] = []

    def both_kinds_arrived() -> bool:
        # The queue is peeked (messages made visible again), so the same message can be seen
        # many times: wait for one of each kind, not for a count.
        failures[:] = _drain_queue(cloud, pipeline["IngestFailureQueueUrl"])
        return any(f.get("streamline") == "poison/1" for f in failures) and any(
            "KinesisBatchInfo" in f for f in failures
        )

    eventually(both_kinds_arrived, timeout=60)
    envelope = next(f for f in failures if f.get("streamline") == "poison/1")
    assert "version" in envelope["reason"]
    aws_record = next(f for f in failures if "KinesisBatchInfo" in f)
    assert aws_record["requestContext"]["condition"] == "RetryAttemptsExhausted"

    # recovery: replay the transient one once its chaos window is over, quarantine the poison one
    eventually(lambda: datetime.now(UTC) > transient_until, timeout=60)
    sfn = cloud.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=pipeline["RecoveryStateMachineArn"], input=json.dumps({"trigger": "test"})
    )["executionArn"]
    done = eventually(
        lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d,
        timeout=120,
    )
    assert done["status"] == "SUCCEEDED", done
    summary = json.loads(done["output"])
    assert summary["quarantined"] >= 1 and summary["replayed"] >= 1, summary

    def flaky_applied() -> bool:
        items = {i["order_id"]["S"]: i for i in _scan(cloud, pipeline["OrdersTableName"])}
        return flaky_order in items

    eventually(flaky_applied, timeout=60)
    quarantined = _scan(cloud, pipeline["RecoveryTableName"])
    assert any("version" in i.get("reason", {}).get("S", "") for i in quarantined)
    objects = cloud.client("s3").list_objects_v2(Bucket=pipeline["QuarantineBucketName"])
    assert objects.get("KeyCount", 0) >= 1
