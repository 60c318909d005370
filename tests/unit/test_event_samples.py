"""``streamline events generate``: AWS's event shape for each source, our payloads inside, and
each sample accepted whole by the function it is for (real handlers on in-process moto)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamModel,
    KinesisDataStreamModel,
    SqsModel,
)
from orderflow.events import (
    FulfilmentTask,
    NotificationTask,
    OrderState,
    parse_event,
    parse_model,
    parse_order_image,
)

from streamline.cli import main
from streamline.producers.samples import SOURCES, sample_event

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_kinesis_sample_parses_as_a_kinesis_event_with_order_events_as_data() -> None:
    event = sample_event("kinesis", 5, seed=1, now=NOW)

    model = KinesisDataStreamModel.model_validate(event)

    assert len(model.Records) == 5
    for record in model.Records:
        order_event = parse_event(record.kinesis.data)  # Powertools decoded the base64
        assert record.kinesis.partitionKey == order_event.order_id
        assert record.eventID.endswith(record.kinesis.sequenceNumber)
    sequences = [int(r.kinesis.sequenceNumber) for r in model.Records]
    assert sequences == sorted(set(sequences)) and len(str(sequences[0])) == 56


def test_dynamodb_sample_parses_as_a_stream_event_with_order_states_as_images() -> None:
    event = sample_event("dynamodb", 12, seed=2, now=NOW)

    model = DynamoDBStreamModel.model_validate(event)

    previous: dict[str, OrderState] = {}
    for raw, record in zip(event["Records"], model.Records, strict=True):
        change = record.dynamodb
        assert change.StreamViewType == "NEW_AND_OLD_IMAGES"
        # The strict parser reads the typed images as the changes function does.
        new = parse_order_image(raw["dynamodb"]["NewImage"]).state
        assert change.Keys == {"order_id": new.order_id}
        if new.order_id in previous:
            assert record.eventName == "MODIFY"
            assert parse_order_image(raw["dynamodb"]["OldImage"]).state == previous[new.order_id]
        else:
            assert record.eventName == "INSERT" and change.OldImage is None
        previous[new.order_id] = new


@pytest.mark.parametrize(
    ("source", "task"), [("sqs", NotificationTask), ("sqs-fifo", FulfilmentTask)]
)
def test_sqs_samples_parse_as_sqs_events_with_task_bodies(source: str, task: type) -> None:
    event = sample_event(source, 4, seed=3, now=NOW)

    model = SqsModel.model_validate(event)

    assert len(model.Records) == 4
    for record in model.Records:
        body = parse_model(task, record.body)
        assert record.md5OfBody == hashlib.md5(record.body.encode()).hexdigest()
        attributes = record.attributes
        if source == "sqs-fifo":
            assert record.eventSourceARN.endswith(":fulfilment.fifo")
            assert attributes.MessageGroupId == body.order_id
            assert attributes.MessageDeduplicationId == body.task_id
            assert attributes.SequenceNumber and len(attributes.SequenceNumber) == 20
        else:
            assert attributes.MessageGroupId is None and attributes.SequenceNumber is None


@pytest.mark.parametrize("source", SOURCES)
def test_a_seed_makes_the_sample_reproducible(source: str) -> None:
    assert sample_event(source, 3, seed=9, now=NOW) == sample_event(source, 3, seed=9, now=NOW)
    assert sample_event(source, 3, seed=9, now=NOW) != sample_event(source, 3, seed=10, now=NOW)


def test_the_command_prints_the_sample_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "generate", "kinesis", "--count", "2", "--seed", "4"]) == 0

    printed = json.loads(capsys.readouterr().out)

    assert len(printed["Records"]) == 2
    data = base64.b64decode(printed["Records"][0]["kinesis"]["data"])
    assert parse_event(data).event_id == json.loads(data)["event_id"]


FAILURE_QUEUE = {
    "ingest": "ingest-failures",
    "changes": "changes-failures",
    "notify": "notifications-dlq",
    "fulfil": "fulfilment-dlq.fifo",
}


@pytest.mark.parametrize(
    ("source", "function"),
    [("kinesis", "ingest"), ("dynamodb", "changes"), ("sqs", "notify"), ("sqs-fifo", "fulfil")],
)
def test_each_sample_is_processed_whole_by_its_function(
    pipeline: Any, load_function: Any, context: Any, source: str, function: str
) -> None:
    handler = load_function(function)

    response = handler.handler(sample_event(source, 6, seed=5), context)

    # A poison record is reported handled too, so also: nothing reached the failure queue.
    assert response == {"batchItemFailures": []}
    assert pipeline.messages(FAILURE_QUEUE[function]) == []
    if function == "ingest":
        assert pipeline_orders(pipeline)
    if function == "changes":
        assert pipeline.messages("notifications")
    if function == "fulfil":
        assert all(e.startswith("fulfil#") for e in pipeline.effect_ids())
        assert len(pipeline.effect_ids()) >= 1


def pipeline_orders(pipeline: Any) -> list[dict[str, Any]]:
    return list(boto3.client("dynamodb").scan(TableName=pipeline.orders_table)["Items"])
