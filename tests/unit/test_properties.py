"""Template-property comparison and the CloudFormation-to-API shapes, without AWS."""

from __future__ import annotations

from typing import Any

from streamline.local.properties import (
    CHECKED_TYPES,
    PropertyCheck,
    cors_rules,
    lifecycle_rules,
    machine_logging,
    same,
)


def test_same_is_at_least_what_the_template_says() -> None:
    assert same({"a": "1", "b": "extra"}, {"a": 1})
    assert not same({"b": "extra"}, {"a": 1})
    assert same("true", True) and same("TRUE", True) and not same("false", True)
    assert same("30", 30) and same(30.0, "30") and not same("thirty", 30)
    assert same([{"k": 1, "x": 2}], [{"k": "1"}])
    assert not same([1, 2], [1])  # lists are whole
    assert not same(None, {"a": 1}) and not same({"a": 1}, [1])


def test_lifecycle_rules_in_the_api_shape() -> None:
    template = {
        "Rules": [
            {
                "ExpirationInDays": 90,
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                "Status": "Enabled",
            },
            {
                "Id": "logs",
                "Prefix": "logs/",
                "TagFilters": [{"Key": "k", "Value": "v"}],
                "Status": "Disabled",
                "Transitions": [{"StorageClass": "GLACIER", "TransitionInDays": 30}],
                "NoncurrentVersionTransitions": [
                    {"StorageClass": "GLACIER", "TransitionInDays": 7}
                ],
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            },
        ]
    }
    assert lifecycle_rules(template) == [
        {
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "Expiration": {"Days": 90},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        },
        {
            "Status": "Disabled",
            "ID": "logs",
            "Filter": {"And": {"Prefix": "logs/", "Tags": [{"Key": "k", "Value": "v"}]}},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            "Transitions": [{"StorageClass": "GLACIER", "Days": 30}],
            "NoncurrentVersionTransitions": [{"StorageClass": "GLACIER", "NoncurrentDays": 7}],
        },
    ]


def test_cors_and_state_machine_logging_in_the_api_shape() -> None:
    assert cors_rules(
        {
            "CorsRules": [
                {"AllowedMethods": ["GET"], "ExposedHeaders": ["x"], "MaxAge": 5, "Id": "r"}
            ]
        }
    ) == [{"AllowedMethods": ["GET"], "ExposeHeaders": ["x"], "MaxAgeSeconds": 5, "ID": "r"}]
    assert machine_logging(
        {
            "Level": "ALL",
            "IncludeExecutionData": True,
            "Destinations": [{"CloudWatchLogsLogGroup": {"LogGroupArn": "arn:lg"}}],
        }
    ) == {
        "level": "ALL",
        "includeExecutionData": True,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": "arn:lg"}}],
    }


class _Kinesis:
    """A stream that reports no encryption until StartStreamEncryption is called."""

    def __init__(self, honour: bool) -> None:
        self.honour = honour
        self.encrypted = False
        self.calls: list[str] = []

    def describe_stream_summary(self, StreamName: str) -> dict[str, Any]:
        summary: dict[str, Any] = {"StreamName": StreamName, "OpenShardCount": 1}
        summary["EncryptionType"] = "KMS" if self.encrypted else "NONE"
        if self.encrypted:
            summary["KeyId"] = "alias/aws/kinesis"
        return {"StreamDescriptionSummary": summary}

    def start_stream_encryption(self, **kwargs: Any) -> None:
        self.calls.append("start_stream_encryption")
        self.encrypted = self.honour


def _check(kinesis: _Kinesis, properties: dict[str, Any]) -> tuple[list[str], list[str]]:
    template = {"Resources": {"Events": {"Type": "AWS::Kinesis::Stream", "Properties": properties}}}
    return PropertyCheck(lambda service: kinesis).check(
        "app", template, {"Events": "events"}, lambda v: v
    )


def test_a_dropped_property_is_applied_and_reported_as_applied() -> None:
    kinesis = _Kinesis(honour=True)
    encryption = {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
    problems, applied = _check(kinesis, {"ShardCount": 1, "StreamEncryption": encryption})
    assert (problems, applied) == ([], ["app/Events (AWS::Kinesis::Stream): StreamEncryption"])
    assert kinesis.calls == ["start_stream_encryption"]


def test_a_property_that_does_not_take_effect_fails_naming_it() -> None:
    encryption = {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
    problems, _ = _check(_Kinesis(honour=False), {"StreamEncryption": encryption})
    (problem,) = problems
    assert problem.startswith("app/Events (AWS::Kinesis::Stream): StreamEncryption is ")
    assert "still" in problem and '"NONE"' in problem


def test_an_unknown_property_and_a_lost_resource_fail_naming_them() -> None:
    problems, _ = _check(_Kinesis(honour=True), {"MaxRecordSizeInKiB": 2048})
    assert problems == [
        "app/Events (AWS::Kinesis::Stream): MaxRecordSizeInKiB is not supported by the local cloud"
    ]
    template = {"Resources": {"T": {"Type": "AWS::DynamoDB::Table", "Properties": {}}}}
    problems, _ = PropertyCheck(lambda s: None).check("app", template, {}, lambda v: v)
    assert problems == [
        "app/T (AWS::DynamoDB::Table): the local cloud holds no such resource (moto lost it)"
    ]


def test_the_brief_names_every_type_it_asks_for() -> None:
    assert set(CHECKED_TYPES) >= {
        "AWS::DynamoDB::Table",
        "AWS::Kinesis::Stream",
        "AWS::SQS::Queue",
        "AWS::Lambda::Function",
        "AWS::Lambda::EventSourceMapping",
        "AWS::S3::Bucket",
        "AWS::Logs::LogGroup",
        "AWS::SNS::Topic",
        "AWS::StepFunctions::StateMachine",
    }
