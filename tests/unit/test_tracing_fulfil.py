"""fulfil records each task's work in the order's trace (the message's AWSTraceHeader).

Lambda starts a new trace for an SQS batch and only links it to the senders' traces, so the
order's trace continues into fulfil through the segment fulfil itself sends.
"""

from __future__ import annotations

import copy

import pytest

from .support import RecordingDaemon, load_event, record_linked_segments

FIXTURE = "sqs_fifo_fulfilment"
ORDER_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
FROM_CHANGES = f"Root={ORDER_ROOT};Parent=2222222222222222;Sampled=1"
FULFIL_BATCH = "Root=1-6000bbbb-000000000000000000000002;Parent=3333333333333333;Sampled=1"


@pytest.fixture
def daemon(monkeypatch) -> RecordingDaemon:
    return record_linked_segments(monkeypatch)


def one_task(header: str) -> dict:
    event = copy.deepcopy(load_event(FIXTURE))
    event["Records"] = event["Records"][:1]
    event["Records"][0]["attributes"]["AWSTraceHeader"] = header
    return event


def test_given_a_task_from_a_traced_order_when_fulfilled_in_a_new_trace_then_it_joins_the_order(
    pipeline, load_function, context, daemon, monkeypatch
):
    monkeypatch.setenv("_X_AMZN_TRACE_ID", FULFIL_BATCH)  # as AWS: a new trace per batch
    fulfil = load_function("fulfil")

    assert fulfil.handler(one_task(FROM_CHANGES), context) == {"batchItemFailures": []}

    (segment,) = daemon.segments
    assert (segment["trace_id"], segment["parent_id"]) == (ORDER_ROOT, "2222222222222222")
    assert segment["name"] == "fulfil"
    assert pipeline.effect_ids() == ["fulfil#o-A"]


def test_given_an_invocation_that_continues_the_order_trace_when_fulfilled_then_nothing_is_added(
    pipeline, load_function, context, daemon, monkeypatch
):
    # A platform that continues the message's trace already put fulfil's segment in it.
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={ORDER_ROOT};Parent=4444444444444444;Sampled=1")
    fulfil = load_function("fulfil")

    fulfil.handler(one_task(FROM_CHANGES), context)

    assert daemon.segments == []
    assert pipeline.effect_ids() == ["fulfil#o-A"]
