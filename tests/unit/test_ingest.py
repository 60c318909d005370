"""ingest: Kinesis order events -> orders table, with poison fast path and chaos."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from orderflow.dal import OrdersRepository
from orderflow.events import EventType, OrderEvent, parse_order_image
from orderflow.logic import state_for
from orderflow.observability import linked_traces

from .support import expected_response, load_event

FIXTURE = "kinesis_order_events"


def orders(pipeline) -> dict[str, dict]:
    items = boto3.client("dynamodb").scan(TableName=pipeline.orders_table)["Items"]
    return {item["order_id"]["S"]: item for item in items}


def test_given_good_poison_and_transient_records_when_ingested_then_only_transient_is_retried(
    pipeline, load_function, context
):
    ingest = load_function("ingest", CHAOS_ENABLED="true")

    response = ingest.handler(load_event(FIXTURE), context)

    assert response == expected_response(FIXTURE)
    stored = orders(pipeline)
    assert sorted(stored) == ["o-1"]
    assert stored["o-1"]["status"]["S"] == "PAID"
    assert stored["o-1"]["version"]["N"] == "2"


def test_given_poison_records_when_ingested_then_each_reaches_the_failure_queue_with_reason(
    pipeline, load_function, context
):
    ingest = load_function("ingest", CHAOS_ENABLED="true")
    event = load_event(FIXTURE)

    ingest.handler(event, context)
    # The mapping redelivers from the failed record (4) on; its window has passed by then.
    retried = load_event(FIXTURE)
    retried["Records"] = retried["Records"][3:]
    load_function("ingest", CHAOS_ENABLED="false").handler(retried, context)

    envelopes = [json.loads(m["Body"]) for m in pipeline.messages("ingest-failures")]
    by_sequence = {env["record"]["kinesis"]["sequenceNumber"]: env for env in envelopes}
    poison = [event["Records"][i]["kinesis"]["sequenceNumber"] for i in (1, 2, 5)]
    # One envelope per poison record: the one after the failure was sent on the redelivery.
    assert len(envelopes) == 3
    assert sorted(by_sequence) == sorted(poison)
    assert len({env["envelopeId"] for env in envelopes}) == 3
    for envelope in envelopes:
        assert envelope["streamline"] == "poison/1"
        assert envelope["errorType"] == "PoisonRecordError"
        assert envelope["source"] == {
            "kind": "KINESIS",
            "arn": event["Records"][0]["eventSourceARN"],
        }
    assert "amount_cents" in by_sequence[poison[0]]["reason"]
    assert "Invalid JSON" in by_sequence[poison[1]]["reason"]
    assert "surprise" in by_sequence[poison[2]]["reason"]


def test_given_chaos_disabled_when_ingested_then_chaos_field_is_ignored(
    pipeline, load_function, context
):
    ingest = load_function("ingest", CHAOS_ENABLED="false")

    response = ingest.handler(load_event(FIXTURE), context)

    assert response == {"batchItemFailures": []}
    assert sorted(orders(pipeline)) == ["o-1", "o-4"]


def test_given_the_same_batch_twice_when_ingested_then_the_table_is_unchanged(
    pipeline, load_function, context
):
    ingest = load_function("ingest")
    ingest.handler(load_event(FIXTURE), context)
    first = orders(pipeline)

    assert ingest.handler(load_event(FIXTURE), context) == {"batchItemFailures": []}
    assert orders(pipeline) == first


def test_given_a_batch_when_ingested_then_failures_are_logged_once_and_metrics_flushed_once(
    pipeline, load_function, context, logs, capsys
):
    ingest = load_function("ingest", CHAOS_ENABLED="true")

    ingest.handler(load_event(FIXTURE), context)

    warnings = logs.warnings()
    # 2 poison sent + 1 transient + 1 poison after it (redelivered), none for the 2 successes
    assert len(warnings) == 4
    assert all(line["correlation_id"] for line in warnings)
    assert {line["record_id"] for line in warnings} == {
        r["kinesis"]["sequenceNumber"]
        for i, r in enumerate(load_event(FIXTURE)["Records"])
        if i != 0 and i != 4
    }
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(emf) == 1
    blob = emf[0]
    counts = [blob[name] for name in ("RecordsProcessed", "RecordsFailed", "RecordsPoisoned")]
    assert counts == [[2.0], [2.0], [2.0]]  # one value each: aggregated per batch
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Streamline"


def test_given_every_record_transient_when_ingested_then_all_are_item_failures_not_an_error(
    pipeline, load_function, context
):
    ingest = load_function("ingest", CHAOS_ENABLED="true")
    event = load_event(FIXTURE)
    event["Records"] = [event["Records"][3]]

    response = ingest.handler(event, context)

    assert response == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}]
    }


def test_given_the_failure_queue_is_unreachable_when_poison_arrives_then_it_is_retried_not_lost(
    pipeline, load_function, context
):
    ingest = load_function("ingest", FAILURE_QUEUE_URL=pipeline.queues["ingest-failures"] + "-gone")
    event = load_event(FIXTURE)
    event["Records"] = [event["Records"][1]]

    response = ingest.handler(event, context)

    assert response["batchItemFailures"] == [
        {"itemIdentifier": event["Records"][0]["kinesis"]["sequenceNumber"]}
    ]


T0 = datetime(2024, 5, 1, tzinfo=UTC)
_history = st.lists(
    st.tuples(st.integers(1, 20), st.sampled_from(list(EventType))),
    min_size=1,
    max_size=6,
    unique_by=lambda pair: pair[0],
)


@given(history=_history, data=st.data())
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_given_any_interleaving_when_written_through_the_conditional_put_then_the_table_converges(
    pipeline, history, data
):
    order_id = f"o-{uuid.uuid4()}"
    events = [
        OrderEvent.model_validate(
            {
                "event_id": str(uuid.uuid4()),
                "order_id": order_id,
                "version": version,
                "type": kind,
                "occurred_at": T0 + timedelta(seconds=version),
                "customer_id": "c-1",
                "amount_cents": version,
            }
        )
        for version, kind in history
    ]
    delivered = data.draw(st.permutations(events + events[:1]))
    repository = OrdersRepository(pipeline.orders_table)

    for event in delivered:
        repository.record(state_for(event))

    assert repository.get(order_id) == state_for(max(events, key=lambda e: e.version))
    # ... and every status a delivered event carried is in the seen set, with its event
    item = boto3.client("dynamodb").get_item(
        TableName=pipeline.orders_table, Key={"order_id": {"S": order_id}}
    )["Item"]
    seen = parse_order_image(item).seen
    assert set(seen) == {event.status for event in events}
    for status, mark in seen.items():  # the first event of that status to arrive
        first = next(e for e in delivered if e.status is status)
        assert (mark.version, mark.event_id) == (first.version, first.event_id)


INVOCATION = (
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=ab:1"
)


class NoDaemon:
    """Tracing on, as in Lambda with active tracing; ingest itself sends nothing."""

    def send(self, document):
        raise AssertionError(f"ingest sent a segment: {document}")


@pytest.fixture
def traced(monkeypatch):
    monkeypatch.setattr(linked_traces, "emitter", NoDaemon())
    monkeypatch.setenv("_X_AMZN_TRACE_ID", INVOCATION)


def test_given_a_traced_invocation_when_ingested_then_the_item_carries_its_trace_header(
    pipeline, load_function, context, traced
):
    ingest = load_function("ingest")

    ingest.handler(load_event(FIXTURE), context)

    item = orders(pipeline)["o-1"]
    # Root and Parent (the ingest segment): the stream hands them to changes.
    assert item["trace_header"] == {
        "S": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    }
    # ...and the header is storage, not schema: the order still reads back as an OrderState.
    stored = OrdersRepository(pipeline.orders_table).get("o-1")
    assert stored is not None and stored.version == 2


@pytest.mark.parametrize(
    "header", [INVOCATION.replace("Sampled=1", "Sampled=0"), None], ids=["unsampled", "none"]
)
def test_given_an_untraced_invocation_when_ingested_then_the_item_has_no_trace_header(
    pipeline, load_function, context, traced, monkeypatch, header
):
    if header is None:
        monkeypatch.delenv("_X_AMZN_TRACE_ID")
    else:
        monkeypatch.setenv("_X_AMZN_TRACE_ID", header)
    ingest = load_function("ingest")

    ingest.handler(load_event(FIXTURE), context)

    assert all("trace_header" not in item for item in orders(pipeline).values())


def test_given_tracing_disabled_when_ingested_then_the_item_has_no_trace_header(
    pipeline, load_function, context, monkeypatch
):
    monkeypatch.setenv("_X_AMZN_TRACE_ID", INVOCATION)
    ingest = load_function("ingest")

    ingest.handler(load_event(FIXTURE), context)

    assert all("trace_header" not in item for item in orders(pipeline).values())


def test_given_kinesis_data_when_encoded_like_the_fixture_then_it_round_trips():
    record = load_event(FIXTURE)["Records"][0]
    assert json.loads(base64.b64decode(record["kinesis"]["data"]))["order_id"] == "o-1"
