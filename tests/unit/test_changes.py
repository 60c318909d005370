"""changes: DynamoDB stream of orders -> tasks on the fulfilment FIFO and notification queues."""

from __future__ import annotations

import json

from orderflow.dal import TaskQueue

from .support import expected_response, fail_when, load_event, throttle

FIXTURE = "dynamodb_order_changes"


def bodies(pipeline, queue: str) -> list[dict]:
    return [json.loads(message["Body"]) for message in pipeline.messages(queue)]


def test_given_changes_with_poison_and_transient_when_processed_then_exact_failures_and_tasks(
    pipeline, load_function, context, monkeypatch
):
    changes = load_function("changes")
    fail_when(
        monkeypatch, TaskQueue, "send", lambda self, task: task.order_id == "o-15", throttle("Send")
    )

    response = changes.handler(load_event(FIXTURE), context)

    assert response == expected_response(FIXTURE)
    fulfilment = bodies(pipeline, "fulfilment.fifo")
    notifications = bodies(pipeline, "notifications")
    assert [(t["kind"], t["order_id"]) for t in fulfilment] == [("fulfil", "o-11")]
    assert sorted((t["order_id"], t["status"]) for t in notifications) == [
        ("o-10", "CREATED"),
        ("o-11", "PAID"),
    ]


def test_given_a_poison_image_when_processed_then_the_envelope_names_the_bad_field(
    pipeline, load_function, context
):
    changes = load_function("changes")

    changes.handler(load_event(FIXTURE), context)

    envelopes = [json.loads(m["Body"]) for m in pipeline.messages("changes-failures")]
    assert len(envelopes) == 1
    assert envelopes[0]["source"]["kind"] == "DYNAMODB_STREAMS"
    assert envelopes[0]["record"]["dynamodb"]["SequenceNumber"] == "100000000000000000005"
    assert "status" in envelopes[0]["reason"]


def test_given_a_trace_header_when_tasks_are_sent_then_sqs_carries_it(
    pipeline, load_function, context, monkeypatch
):
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    changes = load_function("changes")
    event = load_event(FIXTURE)
    event["Records"] = [event["Records"][1]]

    changes.handler(event, context)

    messages = pipeline.messages("fulfilment.fifo")
    assert messages[0]["Attributes"]["MessageGroupId"] == "o-11"
    assert messages[0]["Attributes"]["AWSTraceHeader"] == header


def test_given_the_same_change_twice_when_processed_then_fifo_dedups_the_fulfilment(
    pipeline, load_function, context
):
    changes = load_function("changes")
    event = load_event(FIXTURE)
    event["Records"] = [event["Records"][1]]

    changes.handler(event, context)
    changes.handler(event, context)

    assert len(pipeline.messages("fulfilment.fifo")) == 1
