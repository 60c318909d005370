"""X-Ray on the local cloud: the daemon receives the SDK's UDP segments; `streamline traces`."""

from __future__ import annotations

import argparse
import json
import socket
import time
import uuid
from typing import Any, TypeVar

import pytest
from orderflow.dal.xray import DaemonEmitter
from orderflow.tracing import LinkedTraces, parse_daemon_address

from streamline.local.cloud import LocalCloud
from streamline.local.esm.testing import wait_until
from streamline.local.runtime.testing import create_function
from streamline.ops.target import Target
from streamline.ops.traces import format_tree, run

T = TypeVar("T")

POWERTOOLS = (
    "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:27"
)

HANDLER = """
import os
from aws_lambda_powertools import Tracer

tracer = Tracer(service="t")


@tracer.capture_lambda_handler
def handler(event, context):
    with tracer.provider.in_subsegment("## work"):
        pass
    return os.environ["_X_AMZN_TRACE_ID"]
"""


def _trace_id() -> str:
    return f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"


def _documents(cloud: LocalCloud, trace_id: str) -> list[dict[str, Any]]:
    traces = cloud.client("xray").batch_get_traces(TraceIds=[trace_id])["Traces"]
    return [json.loads(s["Document"]) for t in traces for s in t["Segments"]]


def _send(address: str, payload: bytes) -> None:
    host, port = address.split(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, (host, int(port)))


def _args(**overrides: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"trace_id": None, "since": "10m", "limit": 20, **overrides})


def test_daemon_stores_udp_segments_and_skips_malformed(cloud: LocalCloud) -> None:
    daemon = cloud.xray_daemon
    trace_id = _trace_id()
    now = time.time()
    segment = {"trace_id": trace_id, "id": "a" * 16, "name": "udp", "start_time": now}
    segment["end_time"] = now + 0.01
    skipped = daemon.malformed

    assert daemon.address.startswith("127.0.0.1:") and not daemon.address.endswith(":2000")
    _send(daemon.address, b"not an x-ray datagram")
    _send(daemon.address, b'{"format": "json", "version": 1}\n{"name": "no id"}')
    _send(daemon.address, b'{"format": "json", "version": 1}\n' + json.dumps(segment).encode())

    (stored,) = wait_until(lambda: _documents(cloud, trace_id))
    assert stored["name"] == "udp"
    assert daemon.malformed == skipped + 2


def test_linked_segments_from_orderflow_reach_xray_under_their_upstream_segment(
    cloud: LocalCloud,
) -> None:
    trace_id = _trace_id()
    now = time.time()
    producer = {"trace_id": trace_id, "id": "b" * 16, "name": "producer", "start_time": now}
    producer["end_time"] = now + 0.01
    _send(
        cloud.xray_daemon.address,
        b'{"format": "json", "version": 1}\n' + json.dumps(producer).encode(),
    )
    address = parse_daemon_address(cloud.xray_daemon.address)
    assert address is not None
    linked = LinkedTraces(DaemonEmitter(address), name="consumer", current=lambda: None)

    with linked.hop(f"Root={trace_id};Parent={'b' * 16};Sampled=1") as header:
        assert header is not None
    assert linked.flush() == 1

    def both() -> list[dict[str, Any]] | None:
        documents = _documents(cloud, trace_id)
        return documents if len(documents) == 2 else None

    lines = format_tree(trace_id, wait_until(both))
    assert lines[1].startswith("  producer  ")
    assert lines[2].startswith("    consumer  ")


def test_powertools_subsegments_reach_xray_under_the_function_segment(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"xray-{uuid.uuid4().hex[:8]}"
    role = cloud.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    create_function(
        cloud.client("lambda"),
        name,
        {"app.py": HANDLER},
        runtime="python3.13",
        role=role,
        TracingConfig={"Mode": "Active"},
        Layers=[POWERTOOLS],
    )

    response = cloud.client("lambda").invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in response
    header = json.loads(response["Payload"].read())
    trace_id = header.split(";")[0].removeprefix("Root=")

    def complete() -> list[dict[str, Any]] | None:
        docs = _documents(cloud, trace_id)
        names = {d["name"] for d in docs}
        return docs if name in names and "## handler" in names else None

    documents = wait_until(complete)
    (function,) = [d for d in documents if d["name"] == name]
    assert function["origin"] == "AWS::Lambda::Function"
    handler = next(d for d in documents if d["name"] == "## handler")
    assert handler["parent_id"] == function["id"]

    target = Target(endpoint_url=cloud.endpoint_url, profile=None, region=None)
    assert run(_args(trace_id=trace_id), target) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"trace {trace_id}")
    assert lines[1].startswith(f"  {name}  ") and lines[1].endswith(" ms")
    assert lines[2].startswith("    ## handler  ")
    assert lines[3].startswith("      ## work  ")

    assert run(_args(), target) == 0
    listed = capsys.readouterr().out
    assert any(line.startswith(trace_id) and line.endswith(name) for line in listed.splitlines())


def test_traces_one_line_errors(cloud: LocalCloud, capsys: pytest.CaptureFixture[str]) -> None:
    target = Target(endpoint_url=cloud.endpoint_url, profile=None, region=None)

    assert run(_args(trace_id=_trace_id()), target) == 2
    assert "no trace" in capsys.readouterr().err
    assert run(_args(since="yesterday"), target) == 2
    assert "--since" in capsys.readouterr().err
    assert run(_args(state_dir=str(cloud.state.root / "nowhere"), profile=None, region=None)) == 2
    assert "no local cloud" in capsys.readouterr().err


def test_format_tree_nests_by_parent_and_orders_children_by_start() -> None:
    t = "1-5759e988-bd862e3fe1be46a994272793"
    documents: list[dict[str, Any]] = [
        # a second function's segment (an SQS hop), called from the first function's subsegment
        {
            "id": "c1",
            "name": "consumer",
            "start_time": 10.5,
            "end_time": 10.9,
            "parent_id": "s2",
            "fault": True,
        },
        {"id": "f1", "name": "producer", "start_time": 10.0, "end_time": 11.0},
        {
            "id": "s2",
            "name": "SQS",
            "start_time": 10.4,
            "end_time": 10.45,
            "parent_id": "f1",
            "type": "subsegment",
        },
        {
            "id": "s1",
            "name": "## handler",
            "start_time": 10.1,
            "end_time": 10.3,
            "parent_id": "f1",
            "type": "subsegment",
            "error": True,
            "subsegments": [
                {"id": "w2", "name": "## second", "start_time": 10.2, "end_time": 10.25},
                {"id": "w1", "name": "## first", "start_time": 10.11, "end_time": 10.12},
            ],
        },
        {
            "id": "x1",
            "name": "orphan",
            "start_time": 12.0,
            "in_progress": True,
            "parent_id": "gone",
        },
    ]

    assert format_tree(t, documents) == [
        f"trace {t}  1000.0 ms",
        "  producer  1000.0 ms",
        "    ## handler  200.0 ms  [error]",
        "      ## first  10.0 ms",
        "      ## second  50.0 ms",
        "    SQS  50.0 ms",
        "      consumer  400.0 ms  [fault]",
        "  orphan  in progress",
    ]
