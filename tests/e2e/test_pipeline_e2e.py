"""End to end on the local cloud: the demo's flow, restarts, redelivery, poison and malformed input.

Every check goes through public AWS APIs against Streamline's own deployed stacks. The tests
share one cloud and run in file order; each uses its own orders, and the conservation check
only looks at the events its run produced.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from streamline.demo.observe import failure_queue_depths, quarantined_records, scan_table
from streamline.demo.run import DemoOptions, run_pipeline
from streamline.local.esm.testing import wait_until
from streamline.producers import generate_events
from tests.conftest import E2E
from tests.orders import order_event

pytestmark = pytest.mark.e2e

QUIET = {"out": lambda line: None}


def _effects(e2e: E2E) -> dict[str, dict[str, Any]]:
    return {i["effect_id"]: i for i in scan_table(e2e.cloud, e2e.outputs["EffectsTableName"])}


def test_the_demo_flow_conserves_every_event_at_small_scale(e2e: E2E) -> None:
    summary = run_pipeline(
        e2e.cloud,
        e2e.outputs,
        DemoOptions(events=300, poison_rate=0.02, transient_rate=0.05, seed=20261128, timeout=180),
        **QUIET,
    )

    c = summary.conservation
    assert c.ok, c.problems()
    assert c.produced == 300 and c.delivered + c.quarantined == 300
    assert c.quarantined == summary.faults["poison"] > 0
    assert summary.replayed >= 1, "transient faults should have been replayed by recovery"
    assert not any(summary.left_in_queues.values()), summary.left_in_queues
    by_stage = {s.stage: s for s in summary.stages}
    assert by_stage["ingest"].records_processed > 0 and by_stage["notify"].invocations > 0
    assert summary.latency_ms["p50"] is not None
    # The recovery workflow is billed as AWS bills it: its schedule monthly (read from the
    # deployed rule), what the failed records added per event (from the runs' histories).
    assert "Step Functions recovery runs (2,920 a month)" in summary.cost_table
    assert "Step Functions transitions per failed record" in summary.cost_table
    assert "1% poison + 5% transient" in summary.cost_table
    # Every call our functions made is one their CDK grants allow (the IAM audit, report-only).
    assert e2e.cloud.status()["would_be_denied"] == []


def test_poison_events_end_quarantined_with_the_reason_naming_the_bad_field(e2e: E2E) -> None:
    order = f"o-poison-{uuid.uuid4().hex[:6]}"
    poison = order_event(order, amount_cents=-5)
    e2e.cloud.client("kinesis").put_record(
        StreamName=e2e.outputs["OrderEventsStreamName"],
        Data=json.dumps(poison).encode(),
        PartitionKey=order,
    )
    e2e.cloud.wait_idle(timeout=120)
    _recover(e2e)

    found = [
        q for q in quarantined_records(e2e.cloud, e2e.outputs) if poison["event_id"] in q.event_ids
    ]
    assert len(found) == 1
    assert "amount_cents" in found[0].reason
    assert not any(i.get("order_id") == order for i in _effects(e2e).values())


def test_a_malformed_record_lands_in_its_failure_queue_with_a_reason_and_blocks_nothing(
    e2e: E2E,
) -> None:
    """A producer that skips validation writes junk; the shard goes on with the next record."""
    order = f"o-junk-{uuid.uuid4().hex[:6]}"
    kinesis, sqs = e2e.cloud.client("kinesis"), e2e.cloud.client("sqs")
    stream = e2e.outputs["OrderEventsStreamName"]
    kinesis.put_record(StreamName=stream, Data=b"{not json at all", PartitionKey=order)
    good = order_event(order)
    kinesis.put_record(StreamName=stream, Data=json.dumps(good).encode(), PartitionKey=order)
    sqs.send_message(QueueUrl=e2e.outputs["NotificationsQueueUrl"], MessageBody="<notify me>")

    # The good record behind the junk is processed without waiting out any retries.
    wait_until(lambda: f"notify#{order}#CREATED" in _effects(e2e), timeout=60, interval=0.2)
    e2e.cloud.wait_idle(timeout=120)

    envelopes = _peek(e2e, e2e.outputs["IngestFailureQueueUrl"]) + _peek(
        e2e, e2e.outputs["NotificationsDlqUrl"]
    )
    junk = [e for e in envelopes if e.get("streamline") == "poison/1"]
    by_kind = {e["source"]["kind"].lower(): e for e in junk}
    assert {"kinesis", "sqs"} <= by_kind.keys(), junk
    assert all(e["reason"] and e["record"] for e in by_kind.values())
    assert "json" in by_kind["kinesis"]["reason"].lower()
    _recover(e2e)  # leave the queues empty for the next test
    assert not any(failure_queue_depths(e2e.cloud, e2e.outputs).values())


def test_redelivered_batches_cause_no_double_effects(e2e: E2E) -> None:
    """Every stream record is delivered again (mappings re-created at TRIM_HORIZON) and every
    SQS task sent twice: the effects table does not change."""
    e2e.cloud.wait_idle(timeout=120)
    before = _effects(e2e)
    lam = e2e.cloud.client("lambda")
    for function in (e2e.outputs["IngestFunctionName"], e2e.outputs["ChangesFunctionName"]):
        for mapping in lam.list_event_source_mappings(FunctionName=function)["EventSourceMappings"]:
            settings = {
                key: mapping[key]
                for key in (
                    "BatchSize",
                    "MaximumBatchingWindowInSeconds",
                    "MaximumRetryAttempts",
                    "BisectBatchOnFunctionError",
                    "MaximumRecordAgeInSeconds",
                    "FunctionResponseTypes",
                    "DestinationConfig",
                    "ParallelizationFactor",
                )
                if key in mapping
            }
            lam.delete_event_source_mapping(UUID=mapping["UUID"])
            lam.create_event_source_mapping(
                EventSourceArn=mapping["EventSourceArn"],
                FunctionName=function,
                StartingPosition="TRIM_HORIZON",
                **settings,
            )
    e2e.cloud.wait_idle(timeout=300)
    _recover(e2e)
    after = _effects(e2e)

    assert after.keys() == before.keys()
    changed = [k for k in before if before[k]["created_at"] != after[k]["created_at"]]
    assert not changed, changed[:5]


def test_a_restart_in_the_middle_of_a_run_loses_nothing(e2e: E2E) -> None:
    planned = generate_events(400, poison_rate=0.01, transient_rate=0.0, seed=7)

    summary = run_pipeline(
        e2e.cloud,
        e2e.outputs,
        DemoOptions(events=len(planned), seed=7, timeout=180),
        planned=planned,
        after_produce=e2e.restart,
        **QUIET,
    )

    assert e2e.restarts == 1
    c = summary.conservation
    assert c.ok, c.problems()
    assert c.delivered + c.quarantined == 400


def _recover(e2e: E2E) -> dict[str, Any]:
    sfn = e2e.cloud.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=e2e.outputs["RecoveryStateMachineArn"], input=json.dumps({"trigger": "e2e"})
    )["executionArn"]
    done = wait_until(
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
        timeout=180,
        interval=0.2,
    )
    assert done["status"] == "SUCCEEDED", done
    e2e.cloud.wait_idle(timeout=120)
    return dict(json.loads(done["output"]))


def _peek(e2e: E2E, url: str) -> list[dict[str, Any]]:
    """Bodies in a queue, made visible again at once (the recovery workflow drains them)."""
    sqs = e2e.cloud.client("sqs")
    bodies: list[dict[str, Any]] = []
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
    return bodies
