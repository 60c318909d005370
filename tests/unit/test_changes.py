"""changes: DynamoDB stream of orders -> tasks on the fulfilment FIFO and notification queues."""

from __future__ import annotations

import copy
import json

import pytest

from .support import (
    RecordingDaemon,
    expected_response,
    fail_when,
    load_event,
    record_linked_segments,
    throttle,
)
from .test_outbox import RecordingSqs, keep_batch_trace_headers

FIXTURE = "dynamodb_order_changes"


@pytest.fixture(autouse=True)
def trace_headers(monkeypatch):
    keep_batch_trace_headers(monkeypatch)


def refuse_order(changes, order_id: str) -> RecordingSqs:
    """SQS fails every try of ``order_id``'s tasks on its side (SenderFault false)."""
    sqs = RecordingSqs({order_id: [("InternalError", False)] * changes.outbox.attempts})
    changes.outbox.sqs = sqs
    changes.outbox.sleep = lambda seconds: None
    return sqs


def bodies(pipeline, queue: str) -> list[dict]:
    return [json.loads(message["Body"]) for message in pipeline.messages(queue)]


def test_given_changes_with_poison_and_transient_when_processed_then_exact_failures_and_tasks(
    pipeline, load_function, context
):
    changes = load_function("changes")
    refuse_order(changes, "o-15")

    response = changes.handler(load_event(FIXTURE), context)

    assert response == expected_response(FIXTURE)
    fulfilment = bodies(pipeline, "fulfilment.fifo")
    notifications = bodies(pipeline, "notifications")
    assert [(t["kind"], t["order_id"]) for t in fulfilment] == [("fulfil", "o-11")]
    assert sorted((t["order_id"], t["status"]) for t in notifications) == [
        ("o-10", "CREATED"),
        ("o-11", "PAID"),
    ]


def test_given_a_batch_of_changes_when_processed_then_one_batch_call_per_queue_sends_them(
    pipeline, load_function, context
):
    changes = load_function("changes")
    sqs = RecordingSqs()
    changes.outbox.sqs = sqs

    changes.handler(load_event(FIXTURE), context)

    # Four tasks in two calls: before the outbox, one SendMessage each.
    assert sqs.sizes(pipeline.queues["fulfilment.fifo"]) == [1]
    assert sqs.sizes(pipeline.queues["notifications"]) == [3]
    assert len(changes.outbox) == 0


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


INGEST_ROOT = "1-5759e988-bd862e3fe1be46a994272793"
INGEST_HEADER = f"Root={INGEST_ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
CHANGES_HEADER = "Root=1-6000aaaa-000000000000000000000001;Parent=1111111111111111;Sampled=1"


@pytest.fixture
def daemon(monkeypatch) -> RecordingDaemon:
    """Tracing on (as with active tracing in Lambda), segments kept instead of sent."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", CHANGES_HEADER)
    return record_linked_segments(monkeypatch)


def with_ingest_trace(event: dict, header: str = INGEST_HEADER) -> dict:
    """The event as the stream delivers items written by a traced ingest invocation."""
    event = copy.deepcopy(event)
    for record in event["Records"]:
        for image in ("NewImage", "OldImage"):
            if image in record["dynamodb"]:
                record["dynamodb"][image]["trace_header"] = {"S": header}
    return event


def test_given_changes_written_by_a_traced_ingest_when_processed_then_tasks_continue_its_trace(
    pipeline, load_function, context, daemon
):
    changes = load_function("changes")
    event = with_ingest_trace(load_event(FIXTURE))
    event["Records"] = event["Records"][:2]  # o-10 created, o-11 paid

    assert changes.handler(event, context) == {"batchItemFailures": []}

    # One segment of changes in the ingest trace, under the ingest segment, for both records.
    (segment,) = daemon.segments
    assert segment["trace_id"] == INGEST_ROOT
    assert segment["parent_id"] == "53995c3f42cd8ad8"
    assert segment["name"] == "changes"
    assert segment["annotations"] == {"records": 2}
    assert segment["metadata"]["streamline"]["invocation_trace_id"] == CHANGES_HEADER[5:40]
    # Every task carries the ingest trace on, under the changes segment.
    continued = f"Root={INGEST_ROOT};Parent={segment['id']};Sampled=1"
    messages = pipeline.messages("fulfilment.fifo") + pipeline.messages("notifications")
    assert len(messages) == 3
    assert {m["Attributes"]["AWSTraceHeader"] for m in messages} == {continued}


def test_given_failures_in_a_traced_order_when_processed_then_its_segment_shows_them(
    pipeline, load_function, context, daemon, monkeypatch
):
    changes = load_function("changes")
    # A transient failure while the record runs (a refused send fails it only after the hop).
    fail_when(
        monkeypatch,
        changes,
        "tasks_for_change",
        lambda old, new: new is not None and new.state.order_id == "o-15",
        throttle("Send"),
    )
    event = with_ingest_trace(load_event(FIXTURE))

    response = changes.handler(event, context)

    assert response == expected_response(FIXTURE)  # the trace header changes no outcome
    (segment,) = daemon.segments
    assert segment["error"] is True  # the poison image
    assert segment["fault"] is True  # the transient failure
    changed = [r for r in event["Records"] if r["eventName"] != "REMOVE"]
    assert segment["annotations"] == {"records": len(changed)}


def test_given_a_change_without_a_trace_header_when_processed_then_nothing_is_recorded(
    pipeline, load_function, context, daemon
):
    changes = load_function("changes")
    event = load_event(FIXTURE)
    event["Records"] = [event["Records"][1]]

    changes.handler(event, context)

    assert daemon.segments == []
    (message,) = pipeline.messages("fulfilment.fifo")
    assert message["Attributes"]["AWSTraceHeader"] == CHANGES_HEADER


def test_given_tracing_disabled_when_a_traced_change_arrives_then_it_is_processed_untraced(
    pipeline, load_function, context, monkeypatch
):
    monkeypatch.setenv("_X_AMZN_TRACE_ID", CHANGES_HEADER)
    changes = load_function("changes")
    event = with_ingest_trace(load_event(FIXTURE))
    event["Records"] = [event["Records"][1]]

    assert changes.handler(event, context) == {"batchItemFailures": []}

    (message,) = pipeline.messages("fulfilment.fifo")
    assert message["Attributes"]["AWSTraceHeader"] == CHANGES_HEADER
