"""The report-only IAM evaluator and request derivation, without AWS."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from streamline.local.iam_audit import Call, DenialLog, Request, audit, evaluate, requests_for

ACCOUNT = "123456789012"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:orders.fifo"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders"
LOCAL = {"aws:SecureTransport": "true", "aws:RequestedRegion": "us-east-1"}


def _policy(*statements: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("FnRoleDefaultPolicy", {"Version": "2012-10-17", "Statement": list(statements)})]


def _allows(documents: Any, action: str, resource: str | None) -> bool:
    return evaluate(documents, action, resource, LOCAL).allowed


def test_a_cdk_grant_allows_its_actions_on_its_resource_only() -> None:
    # What queue.grantSendMessages(fn) synthesizes.
    grant = _policy(
        {
            "Effect": "Allow",
            "Action": ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            "Resource": QUEUE,
        }
    )
    assert _allows(grant, "sqs:SendMessage", QUEUE)
    assert not _allows(grant, "sqs:SendMessage", QUEUE.replace("orders", "other"))
    assert not _allows(grant, "sqs:DeleteMessage", QUEUE)
    decision = evaluate(grant, "sqs:DeleteMessage", QUEUE, LOCAL)
    assert decision.reason == "no statement allows it (FnRoleDefaultPolicy)"


def test_actions_match_case_insensitively_and_resources_case_sensitively() -> None:
    grant = _policy({"Effect": "Allow", "Action": "SQS:sendmessage", "Resource": QUEUE})
    assert _allows(grant, "sqs:SendMessage", QUEUE)
    assert not _allows(grant, "sqs:SendMessage", QUEUE.upper())


def test_wildcards_are_iam_globs_not_regular_expressions() -> None:
    grant = _policy(
        {"Effect": "Allow", "Action": "dynamodb:*Item", "Resource": f"{TABLE}/index/*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b.x/k?y"},
    )
    assert _allows(grant, "dynamodb:PutItem", f"{TABLE}/index/by-status")
    assert not _allows(grant, "dynamodb:PutItem", TABLE)
    assert _allows(grant, "s3:GetObject", "arn:aws:s3:::b.x/key")
    assert not _allows(grant, "s3:GetObject", "arn:aws:s3:::bZx/key")  # "." is literal
    # Regex syntax in a policy is literal text, not an error.
    odd = _policy({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/(a"})
    assert _allows(odd, "s3:GetObject", "arn:aws:s3:::b/(a")


def test_an_explicit_deny_wins_over_any_allow() -> None:
    documents = _policy(
        {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": QUEUE},
    )
    assert _allows(documents, "sqs:SendMessage", QUEUE)
    decision = evaluate(documents, "sqs:DeleteQueue", QUEUE, LOCAL)
    assert (decision.allowed, decision.reason) == (False, "explicit deny in FnRoleDefaultPolicy")


def test_not_action_and_not_resource() -> None:
    documents = _policy(
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "sqs:*", "NotResource": QUEUE},
    )
    assert _allows(documents, "sqs:SendMessage", QUEUE)
    assert not _allows(documents, "sqs:SendMessage", QUEUE + "-other")
    assert not _allows(documents, "iam:PassRole", "*")


def test_the_tls_only_deny_does_not_apply_to_the_local_endpoint() -> None:
    documents = _policy(
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE},
        {
            "Effect": "Deny",
            "Action": "sqs:*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    )
    assert _allows(documents, "sqs:SendMessage", QUEUE)


def test_conditions_it_cannot_evaluate_lean_toward_allowed() -> None:
    unknown = {"StringEquals": {"aws:SourceVpce": "vpce-1"}}
    allow = _policy({"Effect": "Allow", "Action": "sqs:*", "Resource": "*", "Condition": unknown})
    assert _allows(allow, "sqs:SendMessage", QUEUE)
    deny = _policy(
        {"Effect": "Allow", "Action": "sqs:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "sqs:*", "Resource": "*", "Condition": unknown},
    )
    assert _allows(deny, "sqs:SendMessage", QUEUE)
    region = _policy(
        {
            "Effect": "Allow",
            "Action": "sqs:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}},
        }
    )
    assert not _allows(region, "sqs:SendMessage", QUEUE)  # a known key that does not hold


def test_action_only_mode_reports_only_an_action_nothing_allows() -> None:
    documents = _policy({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:kms:*"})
    assert _allows(documents, "kms:Decrypt", None)
    assert not _allows(documents, "kms:Encrypt", None)


def test_a_role_without_policies_is_denied_everything() -> None:
    decision = evaluate([], "sqs:SendMessage", QUEUE, LOCAL)
    assert decision.reason == "no statement allows it (the role has no policies)"


def test_malformed_documents_grant_nothing_and_never_raise() -> None:
    for document in ({}, {"Statement": "x"}, {"Statement": [1, None, {"Effect": "Allow"}]}):
        assert not _allows([("p", document)], "sqs:SendMessage", QUEUE)


def _call(service: str, operation: str, params: dict[str, Any], **extra: Any) -> Call:
    return Call(
        service=service,
        operation=operation,
        params=params.get,
        region="us-east-1",
        account=ACCOUNT,
        **extra,
    )


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            _call("sqs", "SendMessageBatch", {}, resource=QUEUE),
            [Request("sqs:SendMessage", QUEUE)],
        ),
        (
            _call("lambda", "Invoke", {}, path="/2015-03-31/functions/notifier%3Alive/invocations"),
            [
                Request(
                    "lambda:InvokeFunction",
                    f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:notifier:live",
                )
            ],
        ),
        (
            _call("dynamodb", "BatchWriteItem", {"RequestItems": {"orders": [], "effects": []}}),
            [
                Request("dynamodb:BatchWriteItem", TABLE),
                Request("dynamodb:BatchWriteItem", TABLE.replace("orders", "effects")),
            ],
        ),
        (
            _call(
                "dynamodb",
                "TransactWriteItems",
                {
                    "TransactItems": [
                        {"Put": {"TableName": "orders"}},
                        {"ConditionCheck": {"TableName": "orders"}},
                    ]
                },
            ),
            [Request("dynamodb:PutItem", TABLE), Request("dynamodb:ConditionCheckItem", TABLE)],
        ),
        (
            _call("dynamodb", "Query", {"TableName": "orders", "IndexName": "by-status"}),
            [Request("dynamodb:Query", f"{TABLE}/index/by-status")],
        ),
        (
            _call(
                "dynamodb",
                "GetRecords",
                {"ShardIterator": f"{TABLE}/stream/2026|1|abc"},
                target="DynamoDBStreams_20120810.GetRecords",
            ),
            [Request("dynamodb:GetRecords", f"{TABLE}/stream/2026")],
        ),
        (
            _call("kinesis", "PutRecords", {"StreamName": "events"}),
            [Request("kinesis:PutRecords", f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/events")],
        ),
        (
            _call(
                "kinesis",
                "GetRecords",
                {"ShardIterator": base64.b64encode(b"events:shardId-000000000000:42").decode()},
            ),
            [Request("kinesis:GetRecords", f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/events")],
        ),
        (
            _call("events", "PutEvents", {"Entries": [{"EventBusName": "orders"}, {}]}),
            [
                Request(
                    "events:PutEvents", f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default"
                ),
                Request("events:PutEvents", f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/orders"),
            ],
        ),
        (_call("monitoring", "PutMetricData", {}), [Request("cloudwatch:PutMetricData", "*")]),
        (_call("xray", "TraceSegments", {}), [Request("xray:PutTraceSegments", "*")]),
        (_call("kms", "Decrypt", {}), [Request("kms:Decrypt", None)]),
        (
            _call("s3", "GetObject", {}, resource="arn:aws:s3:::bucket/key"),
            [Request("s3:GetObject", "arn:aws:s3:::bucket/key")],
        ),
    ],
    ids=lambda v: v.operation if isinstance(v, Call) else None,
)
def test_requests_are_what_iam_authorises(call: Call, expected: list[Request]) -> None:
    assert requests_for(call) == expected


def test_an_unreadable_body_is_checked_by_action_alone() -> None:
    def broken(name: str) -> Any:
        raise json.JSONDecodeError("bad", "", 0)

    call = Call("dynamodb", "PutItem", broken, "us-east-1", ACCOUNT)
    assert requests_for(call) == [Request("dynamodb:PutItem", None)]


def test_denials_are_recorded_once_per_function_action_resource_with_a_count() -> None:
    log = DenialLog(limit=2)
    grant = _policy({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE})
    for _ in range(3):
        audit(
            "ingest",
            [Request("sqs:SendMessage", QUEUE), Request("sqs:DeleteMessage", QUEUE)],
            grant,
            LOCAL,
            log,
        )
    audit("ingest", [Request("sqs:PurgeQueue", QUEUE)], grant, LOCAL, log)
    audit("other", [Request("sqs:PurgeQueue", QUEUE)], grant, LOCAL, log)
    (first, second) = log.as_json()  # bounded at two keys
    assert (first["action"], first["count"], first["mode"]) == ("sqs:DeleteMessage", 3, "resource")
    assert second["action"] == "sqs:PurgeQueue"


def test_get_caller_identity_needs_no_permission() -> None:
    assert requests_for(_call("sts", "GetCallerIdentity", {})) == []
