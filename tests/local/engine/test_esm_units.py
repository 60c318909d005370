"""Pure parts of the ESM engine: response parsing, filters, validation, checkpoints.

Given / When / Then in each test; items named as in docs/esm-semantics.md.
"""

from __future__ import annotations

import json

import pytest

from streamline.local.contracts import InvokeResult
from streamline.local.esm.checkpoints import CheckpointStore
from streamline.local.esm.filters import FilterError, FilterMatcher, filter_view, matches_pattern
from streamline.local.esm.responses import OutcomeKind, parse_batch_response
from streamline.local.esm.validation import validate_spec

SQS = "arn:aws:sqs:us-east-1:123456789012:q"
FIFO = "arn:aws:sqs:us-east-1:123456789012:q.fifo"
KINESIS = "arn:aws:kinesis:us-east-1:123456789012:stream/s"
DDB = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00"


def _result(payload: bytes, error: str | None = None) -> InvokeResult:
    return InvokeResult("req", payload, function_error=error)


@pytest.mark.parametrize(
    "payload",
    [
        b"{}",
        b"null",
        b'""',
        b"[]",
        b'{"batchItemFailures": []}',
        b'{"batchItemFailures": null}',
        b"",
    ],
)
def test_item_01_full_success_forms(payload: bytes) -> None:
    outcome = parse_batch_response(_result(payload), report_item_failures=True, batch_ids={"a"})
    assert outcome.kind is OutcomeKind.SUCCESS


@pytest.mark.parametrize(
    "payload",
    [
        b'{"batchItemFailures": [{"itemIdentifier": ""}]}',
        b'{"batchItemFailures": [{"itemIdentifier": null}]}',
        b'{"batchItemFailures": [{}]}',
        b'{"batchItemFailures": [{"itemIdentifier": "zzz"}]}',
        b'{"batchItemFailures": "a"}',
        b"not json {",
    ],
)
def test_item_02_malformed_responses_fail_the_whole_batch(payload: bytes) -> None:
    outcome = parse_batch_response(_result(payload), report_item_failures=True, batch_ids={"a"})
    assert outcome.kind is OutcomeKind.MALFORMED
    assert outcome.whole_batch_failed


def test_item_02_function_error_fails_whole_batch_even_with_report_batch_item_failures() -> None:
    body = json.dumps({"errorType": "Boom", "errorMessage": "x"}).encode()
    outcome = parse_batch_response(
        _result(body, "Unhandled"), report_item_failures=True, batch_ids={"a"}
    )
    assert outcome.kind is OutcomeKind.FUNCTION_ERROR
    assert "Boom" in outcome.reason


def test_item_03_batch_item_failures_only_honoured_with_report_batch_item_failures() -> None:
    payload = b'{"batchItemFailures": [{"itemIdentifier": "a"}]}'
    ignored = parse_batch_response(_result(payload), report_item_failures=False, batch_ids={"a"})
    honoured = parse_batch_response(_result(payload), report_item_failures=True, batch_ids={"a"})
    assert ignored.kind is OutcomeKind.SUCCESS
    assert honoured.kind is OutcomeKind.PARTIAL and honoured.failed_ids == ("a",)


def test_item_07_batch_size_and_window_validation() -> None:
    assert validate_spec({"EventSourceArn": SQS, "BatchSize": 10}) == []
    assert (
        validate_spec(
            {"EventSourceArn": SQS, "BatchSize": 10_000, "MaximumBatchingWindowInSeconds": 1}
        )
        == []
    )
    (problem,) = validate_spec({"EventSourceArn": SQS, "BatchSize": 11})
    assert "MaximumBatchingWindowInSeconds" in problem
    assert validate_spec(
        {"EventSourceArn": SQS, "BatchSize": 10_001, "MaximumBatchingWindowInSeconds": 5}
    )
    assert validate_spec(
        {"EventSourceArn": FIFO, "BatchSize": 11, "MaximumBatchingWindowInSeconds": 5}
    )
    assert validate_spec({"EventSourceArn": SQS, "MaximumBatchingWindowInSeconds": 301})
    assert validate_spec({"EventSourceArn": SQS, "BatchSize": 0})


def test_item_09_filter_pattern_syntax() -> None:
    doc = {
        "body": {"kind": "Order", "total": 12.5, "tags": ["a", "b"], "nested": {"x": "abc"}},
        "attributes": {"MessageGroupId": "g1"},
    }
    cases = {
        '{"body": {"kind": ["Order"]}}': True,
        '{"body": {"kind": ["Refund"]}}': False,
        '{"body": {"kind": [{"prefix": "Or"}]}}': True,
        '{"body": {"kind": [{"suffix": "der"}]}}': True,
        '{"body": {"kind": [{"equals-ignore-case": "ORDER"}]}}': True,
        '{"body": {"kind": [{"anything-but": ["Order"]}]}}': False,
        '{"body": {"kind": [{"anything-but": {"prefix": "Re"}}]}}': True,
        '{"body": {"total": [{"numeric": [">", 10, "<=", 20]}]}}': True,
        '{"body": {"total": [{"numeric": ["<", 10]}]}}': False,
        '{"body": {"total": [12.5]}}': True,
        '{"body": {"missing": [{"exists": false}]}}': True,
        '{"body": {"kind": [{"exists": true}]}}': True,
        '{"body": {"missing": [{"exists": true}]}}': False,
        '{"body": {"tags": ["b"]}}': True,
        '{"body": {"nested": {"x": [{"wildcard": "a*c"}]}}}': True,
        '{"attributes": {"MessageGroupId": ["g1"]}, "body": {"kind": ["Order"]}}': True,
    }
    for pattern, expected in cases.items():
        assert matches_pattern(json.loads(pattern), doc) is expected, pattern
    either = FilterMatcher.from_criteria(
        {
            "Filters": [
                {"Pattern": '{"body": {"kind": ["X"]}}'},
                {"Pattern": '{"body": {"kind": ["Order"]}}'},
            ]
        }
    )
    assert either.matches(doc)
    with pytest.raises(FilterError):
        FilterMatcher.from_criteria({"Filters": [{"Pattern": '{"body": "notalist"}'}]})
    with pytest.raises(FilterError):
        FilterMatcher.from_criteria({"Filters": [{"Pattern": '{"body": {"k": [{"bogus": 1}]}}'}]})


def test_item_09_sqs_plain_text_body_matches_as_string() -> None:
    view = filter_view("sqs", {"body": "hello world", "attributes": {}})
    assert matches_pattern({"body": [{"prefix": "hello"}]}, view)
    assert not matches_pattern({"body": {"kind": ["x"]}}, view)


def test_item_23_kinesis_data_patterns_match_decoded_json() -> None:
    import base64

    record = {
        "kinesis": {
            "partitionKey": "p",
            "data": base64.b64encode(b'{"type": "keep", "n": 3}').decode(),
        }
    }
    view = filter_view("kinesis", record)
    assert matches_pattern({"data": {"type": ["keep"]}}, view)
    assert not matches_pattern({"data": {"n": [{"numeric": [">", 3]}]}}, view)


def test_item_11_visibility_timeout_below_function_timeout_is_refused() -> None:
    problems = validate_spec(
        {"EventSourceArn": SQS}, queue_visibility_timeout=5, function_timeout=30
    )
    assert problems == [
        "Queue visibility timeout: 5 seconds is less than Function timeout: 30 seconds"
    ]
    assert (
        validate_spec({"EventSourceArn": SQS}, queue_visibility_timeout=30, function_timeout=30)
        == []
    )


def test_item_13_maximum_concurrency_range() -> None:
    assert validate_spec({"EventSourceArn": SQS, "ScalingConfig": {"MaximumConcurrency": 2}}) == []
    assert validate_spec({"EventSourceArn": SQS, "ScalingConfig": {"MaximumConcurrency": 1}})
    assert validate_spec({"EventSourceArn": SQS, "ScalingConfig": {"MaximumConcurrency": 1001}})


def test_item_20_starting_position_required_and_checked() -> None:
    assert validate_spec({"EventSourceArn": KINESIS})
    assert validate_spec({"EventSourceArn": KINESIS, "StartingPosition": "LATEST"}) == []
    assert validate_spec({"EventSourceArn": KINESIS, "StartingPosition": "AT_TIMESTAMP"})
    assert (
        validate_spec(
            {
                "EventSourceArn": KINESIS,
                "StartingPosition": "AT_TIMESTAMP",
                "StartingPositionTimestamp": 1,
            }
        )
        == []
    )
    assert validate_spec(
        {"EventSourceArn": DDB, "StartingPosition": "AT_TIMESTAMP", "StartingPositionTimestamp": 1}
    )
    assert validate_spec({"EventSourceArn": SQS, "StartingPosition": "LATEST"})


def test_item_24_parallelization_range_and_tumbling_window_refused() -> None:
    base = {"EventSourceArn": KINESIS, "StartingPosition": "LATEST"}
    assert validate_spec({**base, "ParallelizationFactor": 10}) == []
    assert validate_spec({**base, "ParallelizationFactor": 11})
    (problem,) = validate_spec({**base, "TumblingWindowInSeconds": 60})
    assert "TumblingWindowInSeconds" in problem and "not supported" in problem


def test_item_18_destination_and_retry_ranges() -> None:
    base = {"EventSourceArn": KINESIS, "StartingPosition": "LATEST"}
    ok = {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:123456789012:dlq"}}
    assert validate_spec({**base, "DestinationConfig": ok, "MaximumRetryAttempts": -1}) == []
    bad = {"OnFailure": {"Destination": "arn:aws:lambda:us-east-1:123456789012:function:f"}}
    assert validate_spec({**base, "DestinationConfig": bad})
    assert validate_spec({**base, "MaximumRecordAgeInSeconds": 59})
    assert validate_spec({**base, "MaximumRetryAttempts": 10_001})
    assert validate_spec({"EventSourceArn": SQS, "DestinationConfig": ok})


def test_item_14_checkpoints_are_atomic_and_durable(tmp_path) -> None:
    store = CheckpointStore(tmp_path)
    assert store.load("u", "shardId-000000000000") is None
    store.save("u", "shardId-000000000000", {"sequenceNumber": "7"})
    again = CheckpointStore(tmp_path)
    assert again.load("u", "shardId-000000000000") == {"sequenceNumber": "7"}
    assert not list(store.path("u", "shardId-000000000000").parent.glob(".tmp-*"))
    assert again.shards("u") == ["shardId-000000000000"]
    again.forget("u")
    assert again.load("u", "shardId-000000000000") is None
