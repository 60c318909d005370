"""Every event source mapping carries exactly the settings the closing note promises."""

from __future__ import annotations

from typing import Any

import pytest

from .support import Synth, resources

REPORT = ["ReportBatchItemFailures"]


def mapping_of(synth: Synth, concern: str, function: Any) -> dict[str, Any]:
    logical = synth.logical_id(function.function)
    found = [
        r["Properties"]
        for r in resources(synth.json(concern), "AWS::Lambda::EventSourceMapping").values()
        if r["Properties"]["FunctionName"] == {"Ref": logical}
    ]
    assert len(found) == 1, f"expected one mapping for {logical}, found {len(found)}"
    return found[0]


def test_ingest_kinesis_mapping_is_bounded_and_reports_item_failures(stage: Synth) -> None:
    # Given the ingest stack of a stage
    ingest = stage.pipeline.ingest
    # When reading the Kinesis mapping of the ingest function
    props = mapping_of(stage, "ingest", ingest.ingest_function)
    # Then every failure-handling setting is explicit
    expected_parallelization = {"dev": 1, "prod": 2}[stage.stage]
    assert props["EventSourceArn"] == {"Fn::GetAtt": [stage.logical_id(ingest.stream), "Arn"]}
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["BatchSize"] == 100
    assert props["MaximumBatchingWindowInSeconds"] == 1
    assert props["FunctionResponseTypes"] == REPORT
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] == 3
    assert props["MaximumRecordAgeInSeconds"] == 3600
    assert props["ParallelizationFactor"] == expected_parallelization
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [stage.logical_id(ingest.ingest.failure_queue), "Arn"]
    }


def test_changes_dynamodb_mapping_is_bounded_and_reports_item_failures(stage: Synth) -> None:
    processing = stage.pipeline.processing
    props = mapping_of(stage, "processing", processing.changes_function)
    assert "Fn::ImportValue" in props["EventSourceArn"]  # the orders table stream (ingest stack)
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["BatchSize"] == 100
    assert props["MaximumBatchingWindowInSeconds"] == 1
    assert props["FunctionResponseTypes"] == REPORT
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] == 3
    assert props["MaximumRecordAgeInSeconds"] == 3600
    assert props["ParallelizationFactor"] == 1
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [stage.logical_id(processing.changes.failure_queue), "Arn"]
    }


def test_fulfilment_fifo_mapping_has_no_window_and_capped_concurrency(stage: Synth) -> None:
    processing = stage.pipeline.processing
    props = mapping_of(stage, "processing", processing.fulfil_function)
    assert props["EventSourceArn"] == {
        "Fn::GetAtt": [stage.logical_id(processing.fulfilment.queue), "Arn"]
    }
    assert props["BatchSize"] == 10
    assert "MaximumBatchingWindowInSeconds" not in props  # not supported on FIFO queues
    assert props["FunctionResponseTypes"] == REPORT
    assert props["ScalingConfig"] == {"MaximumConcurrency": 5}
    for stream_only in ("BisectBatchOnFunctionError", "MaximumRetryAttempts", "StartingPosition"):
        assert stream_only not in props


def test_notifications_mapping_batches_with_a_window(stage: Synth) -> None:
    processing = stage.pipeline.processing
    props = mapping_of(stage, "processing", processing.notify_function)
    assert props["EventSourceArn"] == {
        "Fn::GetAtt": [stage.logical_id(processing.notifications.queue), "Arn"]
    }
    assert props["BatchSize"] == 25
    assert props["MaximumBatchingWindowInSeconds"] == 5
    assert props["FunctionResponseTypes"] == REPORT
    assert props["ScalingConfig"] == {"MaximumConcurrency": 10}


def test_every_mapping_reports_batch_item_failures(stage: Synth) -> None:
    mappings = [
        r["Properties"]
        for concern in ("ingest", "processing", "orchestration")
        for r in resources(stage.json(concern), "AWS::Lambda::EventSourceMapping").values()
    ]
    assert len(mappings) == 4
    assert all(m["FunctionResponseTypes"] == REPORT for m in mappings)


@pytest.mark.parametrize("concern", ["ingest", "processing"])
def test_stream_mappings_never_use_infinite_retries_or_age(stage: Synth, concern: str) -> None:
    for props in (
        r["Properties"]
        for r in resources(stage.json(concern), "AWS::Lambda::EventSourceMapping").values()
        if "StartingPosition" in r["Properties"]
    ):
        assert 0 <= props["MaximumRetryAttempts"] <= 10
        assert 60 <= props["MaximumRecordAgeInSeconds"] <= 3600
        assert props["DestinationConfig"]["OnFailure"]["Destination"]
