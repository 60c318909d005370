"""One order, one trace: ingest -> orders stream -> changes -> SQS -> fulfil as one X-Ray tree.

The deployed pipeline, an order produced to Kinesis, and the trace read back through the public
X-Ray API and `streamline traces`. The DynamoDB stream carries no trace context, so without the
header the order item carries (orderflow.tracing) changes and fulfil would sit in other traces.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamline.local.cloud import LocalCloud
from streamline.ops.target import Target
from streamline.ops.traces import Node, build_tree, run
from tests.local.cloud.deployed import eventually

pytestmark = pytest.mark.local


def _event(order: str, version: int, kind: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "order_id": order,
        "version": version,
        "type": kind,
        "occurred_at": at.isoformat(),
        "customer_id": "c-trace",
        "amount_cents": 4200,
    }


def _produce(cloud: LocalCloud, stream: str, order: str) -> None:
    now = datetime.now(UTC)
    events = [_event(order, 1, "OrderCreated", now), _event(order, 2, "OrderPaid", now)]
    records = [{"Data": json.dumps(e).encode(), "PartitionKey": order} for e in events]
    assert (
        cloud.client("kinesis").put_records(StreamName=stream, Records=records)["FailedRecordCount"]
        == 0
    )


def _order_trace(cloud: LocalCloud, table: str, order: str) -> str:
    """The trace the order's latest write belongs to: the ingest header stored on the item."""
    item = cloud.client("dynamodb").get_item(
        TableName=table, Key={"order_id": {"S": order}}, ConsistentRead=True
    )["Item"]
    assert item["status"]["S"] == "PAID"
    header = item["trace_header"]["S"]
    return header.split(";")[0].removeprefix("Root=")


def _documents(cloud: LocalCloud, trace_id: str) -> list[dict[str, Any]]:
    traces = cloud.client("xray").batch_get_traces(TraceIds=[trace_id])["Traces"]
    return [json.loads(s["Document"]) for t in traces for s in t["Segments"]]


def _flatten(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    for node in nodes:
        out.append(node)
        out.extend(_flatten(node.children))
    return out


def _path(roots: list[Node], target: Node) -> list[Node]:
    """The nodes from a root down to ``target``."""

    def walk(node: Node, trail: list[Node]) -> list[Node] | None:
        trail = [*trail, node]
        if node is target:
            return trail
        for child in node.children:
            found = walk(child, trail)
            if found:
                return found
        return None

    for root in roots:
        found = walk(root, [])
        if found:
            return found
    raise AssertionError(f"{target.name} is not in the tree")


def test_a_trace_through_ingest_changes_and_fulfil_is_one_connected_tree(
    cloud: LocalCloud, pipeline: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ingest, changes, fulfil = (
        pipeline["IngestFunctionName"],
        pipeline["ChangesFunctionName"],
        pipeline["FulfilFunctionName"],
    )
    order = f"o-trace-{uuid.uuid4().hex[:8]}"
    _produce(cloud, pipeline["OrderEventsStreamName"], order)

    effects = pipeline["EffectsTableName"]

    def fulfilled() -> bool:
        key = {"effect_id": {"S": f"fulfil#{order}"}}
        return "Item" in cloud.client("dynamodb").get_item(TableName=effects, Key=key)

    eventually(fulfilled, timeout=60)
    cloud.wait_idle(timeout=60)
    trace_id = _order_trace(cloud, pipeline["OrdersTableName"], order)

    # Segments arrive over UDP after the invocations end: wait for the whole path.
    def complete() -> list[dict[str, Any]] | None:
        documents = _documents(cloud, trace_id)
        names = {d["name"] for d in documents}
        return documents if {ingest, changes, fulfil} <= names else None

    documents = eventually(complete, timeout=30)

    # The X-Ray API knows it as one trace.
    now = datetime.now(UTC)
    summaries = cloud.client("xray").get_trace_summaries(
        StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1)
    )["TraceSummaries"]
    assert trace_id in {s["Id"] for s in summaries}

    # One tree: a single root (ingest's segment), every other segment's parent in the trace.
    roots = build_tree(documents)
    assert [root.name for root in roots] == [ingest], [r.name for r in roots]
    nodes = _flatten(roots)
    ids = {node.id for node in nodes}
    assert all(node.parent_id in ids for node in nodes if node is not roots[0])

    # Causal order: fulfil under changes under ingest, each starting after its cause.
    segment = next(n for n in nodes if n.name == fulfil and n.parent_id)
    chain = [n for n in _path(roots, segment) if n.name in (ingest, changes, fulfil)]
    assert [n.name for n in chain] == [ingest, changes, fulfil]
    assert chain[0].start <= chain[1].start <= chain[2].start
    assert not any(n.error or n.fault for n in chain)

    # `streamline traces ID` prints the same tree.
    target = Target(endpoint_url=cloud.endpoint_url, profile=None, region=None)
    args = argparse.Namespace(trace_id=trace_id, since="10m", limit=20)
    assert run(args, target) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"trace {trace_id}")
    depth = {}
    for line in lines[1:]:
        name = line.strip().split("  ")[0]
        depth.setdefault(name, (len(line) - len(line.lstrip())) // 2)
    assert depth[ingest] == 1
    assert depth[ingest] < depth[changes] < depth[fulfil]
