"""Every template property is in effect after a deploy, or the deploy fails naming it.

Stacks are created through CloudFormation (as `cdk deploy` does, minus the CLI) and then
reconciled; each property below was dropped by moto's CloudFormation before (each assertion
fails without the property check).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.reconciler import ReconcileError, Reconciler

TAGS = [{"Key": "project", "Value": "streamline"}, {"Key": "stage", "Value": "test"}]
ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "states.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def _deploy(cloud: LocalCloud, resources: dict[str, Any]) -> tuple[str, list[str], dict[str, str]]:
    name = f"props-{uuid.uuid4().hex[:8]}"
    cfn = cloud.client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps({"Resources": resources}))
    applied = Reconciler(cloud.client).reconcile(name)
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    }
    return name, applied, physical


def test_properties_moto_dropped_are_applied(cloud: LocalCloud) -> None:
    _, applied, physical = _deploy(
        cloud,
        {
            "Events": {
                "Type": "AWS::Kinesis::Stream",
                "Properties": {
                    "ShardCount": 1,
                    "RetentionPeriodHours": 24,
                    "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
                    "StreamModeDetails": {"StreamMode": "PROVISIONED"},
                    "Tags": TAGS,
                },
            },
            "Orders": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "BillingMode": "PAY_PER_REQUEST",
                    "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": True},
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    "SSESpecification": {"SSEEnabled": True},
                    "Tags": TAGS,
                },
            },
            "Archive": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                    "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                    "LifecycleConfiguration": {
                        "Rules": [
                            {
                                "ExpirationInDays": 90,
                                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                                "Status": "Enabled",
                            }
                        ]
                    },
                    "Tags": TAGS,
                },
            },
            "Logs": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"RetentionInDays": 14, "Tags": TAGS},
            },
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"Tags": TAGS}},
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {"AssumeRolePolicyDocument": json.loads(ROLE_POLICY)},
            },
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionString": json.dumps(
                        {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
                    ),
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                    "LoggingConfiguration": {
                        "Level": "ALL",
                        "IncludeExecutionData": True,
                        "Destinations": [
                            {
                                "CloudWatchLogsLogGroup": {
                                    "LogGroupArn": {"Fn::GetAtt": ["Logs", "Arn"]}
                                }
                            }
                        ],
                    },
                    "TracingConfiguration": {"Enabled": True},
                    "Tags": TAGS,
                },
            },
        },
    )
    by_property = {a.rsplit(": ", 1)[-1] for a in applied if a.startswith("property ")}
    assert {
        "StreamEncryption",
        "TimeToLiveSpecification",
        "PointInTimeRecoverySpecification",
        "VersioningConfiguration",
        "PublicAccessBlockConfiguration",
        "OwnershipControls",
        "LifecycleConfiguration",
        "LoggingConfiguration",
        "TracingConfiguration",
    } <= by_property

    kinesis = cloud.client("kinesis").describe_stream_summary(StreamName=physical["Events"])
    assert kinesis["StreamDescriptionSummary"]["EncryptionType"] == "KMS"
    ddb = cloud.client("dynamodb")
    ttl = ddb.describe_time_to_live(TableName=physical["Orders"])["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires")
    backups = ddb.describe_continuous_backups(TableName=physical["Orders"])
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    assert ddb.describe_table(TableName=physical["Orders"])["Table"]["SSEDescription"][
        "Status"
    ] == ("ENABLED")
    s3 = cloud.client("s3")
    assert s3.get_bucket_versioning(Bucket=physical["Archive"])["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=physical["Archive"])
    assert all(block["PublicAccessBlockConfiguration"].values())
    machine = cloud.client("stepfunctions").describe_state_machine(
        stateMachineArn=physical["Machine"]
    )
    assert machine["loggingConfiguration"]["level"] == "ALL"
    assert machine["tracingConfiguration"] == {"enabled": True}
    tags = cloud.client("sns").list_tags_for_resource(ResourceArn=physical["Topic"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"project": "streamline", "stage": "test"}


def test_a_redeploy_finds_everything_in_effect_and_applies_nothing(cloud: LocalCloud) -> None:
    name, first, _ = _deploy(
        cloud,
        {
            "Events": {
                "Type": "AWS::Kinesis::Stream",
                "Properties": {
                    "ShardCount": 1,
                    "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
                },
            }
        },
    )
    assert any("StreamEncryption" in a for a in first)
    assert Reconciler(cloud.client).reconcile(name) == []


@pytest.mark.parametrize(
    ("resource", "named"),
    [
        (
            {
                "Type": "AWS::Kinesis::Stream",
                "Properties": {"ShardCount": 1, "MaxRecordSizeInKiB": 2048},
            },
            "MaxRecordSizeInKiB is not supported by the local cloud",
        ),
        (
            {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                    "BillingMode": "PAY_PER_REQUEST",
                    "TableClass": "STANDARD_INFREQUENT_ACCESS",
                },
            },
            "TableClass is not supported by the local cloud",
        ),
        (
            {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupClass": "INFREQUENT_ACCESS"}},
            "LogGroupClass is not supported by the local cloud",
        ),
    ],
    ids=["kinesis", "dynamodb", "logs"],
)
def test_a_property_the_local_cloud_cannot_put_in_effect_fails_the_deploy_naming_it(
    cloud: LocalCloud, resource: dict[str, Any], named: str
) -> None:
    with pytest.raises(ReconcileError) as refused:
        _deploy(cloud, {"Thing": resource})
    message = str(refused.value)
    assert f"/Thing ({resource['Type']}): {named}" in message
