"""Every template property is in effect on the local cloud, or the deploy fails naming it.

moto's CloudFormation creates the types it models but drops some of their properties without a
word (a Kinesis stream's StreamEncryption, a table's TimeToLiveSpecification, a bucket's
versioning and public-access block...), and its update path can lose a resource altogether.
After each deploy :class:`PropertyCheck` compares every property a template sets on the types
below with what the service's own describe APIs report. A property that differs is applied
through the public API and compared again; one that still differs, one with no describe API
here, and one of a type's properties this module does not know fail the deploy, naming the
stack, the resource, the type and the property.

Types checked: DynamoDB tables, Kinesis streams, SQS queues, Lambda functions and event-source
mappings, S3 buckets, log groups, SNS topics, Step Functions state machines. Comparisons are
"at least what the template says": a service may report more (defaults, CloudFormation's own
tags). A property removed from a template is not reset to its default (moto's update keeps the
old value; AWS resets it): a known limit.

Why one module of some 900 lines: it is nine small tables, one per resource type, each with
the read/apply helpers only that table uses, and one checker over them; a reader looks up one
type at a time, top to bottom. Split it into a package per service when a type's table grows
past a screen or gains logic of its own.

Example::

    problems, applied = PropertyCheck(client).check(stack_name, template, physical, resolve)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CHECKED_TYPES", "PropertyCheck", "same"]


# -- comparing -------------------------------------------------------------------------------


def same(got: Any, want: Any) -> bool:
    """``got`` (the service's value) has at least what ``want`` (the template's) says.

    Dicts compare key by key of ``want`` (a service may add defaults); lists element by
    element; scalars as text, booleans case-blind ("true" == True, 30 == "30").
    """
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and all(
            k in got and same(got[k], v) for k, v in want.items()
        )
    if isinstance(want, list | tuple):
        return (
            isinstance(got, list | tuple)
            and len(got) == len(want)
            and all(same(g, w) for g, w in zip(got, want, strict=True))
        )
    if isinstance(want, bool) or isinstance(got, bool):
        return str(got).lower() == str(want).lower()
    if isinstance(want, int | float) or isinstance(got, int | float):
        try:
            return float(got) == float(want)
        except (TypeError, ValueError):
            return False
    return str(got) == str(want)


def _tags(value: Any) -> dict[str, str]:
    """CloudFormation's ``[{Key, Value}]`` (or a map) as a map."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {str(t["Key"]): str(t.get("Value", "")) for t in value or []}


# -- one resource being checked ----------------------------------------------------------------


@dataclass
class Resource:
    """One deployed resource: its physical id, resolved properties, and cached reads."""

    client: Callable[[str], Any]
    logical_id: str
    type: str
    physical: str
    properties: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict)

    def read(self, key: str, fetch: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fetch()
        return self._cache[key]

    def forget(self) -> None:
        self._cache.clear()


Read = Callable[[Resource], Any]
Apply = Callable[[Resource, Any], None]


@dataclass(frozen=True)
class Prop:
    """How to check one property: ``read`` the service's value in the template's terms,
    ``expect`` the template's value in the same terms, ``apply`` it when they differ."""

    read: Read
    expect: Callable[[Any], Any] = lambda value: value
    apply: Apply | None = None


# -- DynamoDB ----------------------------------------------------------------------------------


def _table(r: Resource) -> dict[str, Any]:
    return r.read(
        "table", lambda: r.client("dynamodb").describe_table(TableName=r.physical)["Table"]
    )


def _indexes(value: Any) -> dict[str, Any]:
    return {
        i["IndexName"]: {"KeySchema": i["KeySchema"], "Projection": i.get("Projection", {})}
        for i in value or []
    }


def _by_name(value: Any) -> list[Any]:
    return sorted(value or [], key=lambda a: a["AttributeName"])


def _pitr(r: Resource) -> dict[str, bool]:
    backups = r.client("dynamodb").describe_continuous_backups(TableName=r.physical)
    status = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    return {"PointInTimeRecoveryEnabled": status["PointInTimeRecoveryStatus"] == "ENABLED"}


def _set_pitr(r: Resource, value: Any) -> None:
    enabled = str(value.get("PointInTimeRecoveryEnabled", False)).lower() == "true"
    r.client("dynamodb").update_continuous_backups(
        TableName=r.physical,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": enabled},
    )


def _ttl(r: Resource) -> dict[str, Any]:
    described = r.client("dynamodb").describe_time_to_live(TableName=r.physical)
    ttl = described["TimeToLiveDescription"]
    enabled = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
    return {"Enabled": enabled, **({"AttributeName": ttl["AttributeName"]} if enabled else {})}


def _expect_ttl(value: Any) -> dict[str, Any]:
    enabled = str(value.get("Enabled")).lower() == "true"
    return {"Enabled": enabled, **({"AttributeName": value["AttributeName"]} if enabled else {})}


def _set_ttl(r: Resource, value: Any) -> None:
    r.client("dynamodb").update_time_to_live(
        TableName=r.physical,
        TimeToLiveSpecification={
            "Enabled": str(value.get("Enabled")).lower() == "true",
            "AttributeName": value["AttributeName"],
        },
    )


def _table_tags(r: Resource) -> dict[str, str]:
    tags = r.client("dynamodb").list_tags_of_resource(ResourceArn=_table(r)["TableArn"])
    return _tags(tags.get("Tags"))


def _tag_table(r: Resource, value: Any) -> None:
    r.client("dynamodb").tag_resource(
        ResourceArn=_table(r)["TableArn"],
        Tags=[{"Key": k, "Value": v} for k, v in _tags(value).items()],
    )


_DYNAMODB: dict[str, Prop] = {
    "TableName": Prop(lambda r: _table(r)["TableName"]),
    "KeySchema": Prop(lambda r: _table(r)["KeySchema"]),
    "AttributeDefinitions": Prop(lambda r: _by_name(_table(r)["AttributeDefinitions"]), _by_name),
    "BillingMode": Prop(
        lambda r: _table(r).get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    ),
    "ProvisionedThroughput": Prop(lambda r: _table(r).get("ProvisionedThroughput", {})),
    "GlobalSecondaryIndexes": Prop(
        lambda r: _indexes(_table(r).get("GlobalSecondaryIndexes")), _indexes
    ),
    "LocalSecondaryIndexes": Prop(
        lambda r: _indexes(_table(r).get("LocalSecondaryIndexes")), _indexes
    ),
    "StreamSpecification": Prop(lambda r: _table(r).get("StreamSpecification", {})),
    "SSESpecification": Prop(
        lambda r: {"SSEEnabled": _table(r).get("SSEDescription", {}).get("Status") == "ENABLED"},
        lambda v: {"SSEEnabled": str(v.get("SSEEnabled", False)).lower() == "true"},
    ),
    "PointInTimeRecoverySpecification": Prop(
        _pitr,
        lambda v: {
            "PointInTimeRecoveryEnabled": str(v.get("PointInTimeRecoveryEnabled")).lower() == "true"
        },
        _set_pitr,
    ),
    "TimeToLiveSpecification": Prop(_ttl, _expect_ttl, _set_ttl),
    "DeletionProtectionEnabled": Prop(lambda r: _table(r).get("DeletionProtectionEnabled", False)),
    "Tags": Prop(_table_tags, _tags, _tag_table),
}


# -- Kinesis -----------------------------------------------------------------------------------


def _stream(r: Resource) -> dict[str, Any]:
    return r.read(
        "stream",
        lambda: r.client("kinesis").describe_stream_summary(StreamName=r.physical)[
            "StreamDescriptionSummary"
        ],
    )


def _stream_encryption(r: Resource) -> dict[str, Any]:
    summary = _stream(r)
    found = {"EncryptionType": summary.get("EncryptionType", "NONE")}
    if summary.get("KeyId"):
        found["KeyId"] = summary["KeyId"]
    return found


def _encrypt_stream(r: Resource, value: Any) -> None:
    r.client("kinesis").start_stream_encryption(
        StreamName=r.physical, EncryptionType=value["EncryptionType"], KeyId=value["KeyId"]
    )


def _stream_mode(r: Resource, value: Any) -> None:
    r.client("kinesis").update_stream_mode(
        StreamARN=_stream(r)["StreamARN"], StreamModeDetails=value
    )


def _shard_metrics(r: Resource) -> list[str]:
    monitoring = _stream(r).get("EnhancedMonitoring") or [{}]
    return sorted(monitoring[0].get("ShardLevelMetrics", []))


def _enable_shard_metrics(r: Resource, value: Any) -> None:
    r.client("kinesis").enable_enhanced_monitoring(StreamName=r.physical, ShardLevelMetrics=value)


def _stream_tags(r: Resource) -> dict[str, str]:
    return _tags(r.client("kinesis").list_tags_for_stream(StreamName=r.physical)["Tags"])


def _tag_stream(r: Resource, value: Any) -> None:
    r.client("kinesis").add_tags_to_stream(StreamName=r.physical, Tags=_tags(value))


_KINESIS: dict[str, Prop] = {
    "Name": Prop(lambda r: _stream(r)["StreamName"]),
    "ShardCount": Prop(lambda r: _stream(r)["OpenShardCount"]),
    "RetentionPeriodHours": Prop(lambda r: _stream(r)["RetentionPeriodHours"]),
    "StreamModeDetails": Prop(
        lambda r: _stream(r).get("StreamModeDetails", {"StreamMode": "PROVISIONED"}),
        apply=_stream_mode,
    ),
    "StreamEncryption": Prop(_stream_encryption, apply=_encrypt_stream),
    "DesiredShardLevelMetrics": Prop(_shard_metrics, sorted, _enable_shard_metrics),
    "Tags": Prop(_stream_tags, _tags, _tag_stream),
}


# -- SQS ---------------------------------------------------------------------------------------


def _queue(r: Resource) -> dict[str, str]:
    return r.read(
        "queue",
        lambda: r.client("sqs").get_queue_attributes(QueueUrl=r.physical, AttributeNames=["All"])[
            "Attributes"
        ],
    )


def _set_queue_attribute(name: str) -> Apply:
    def apply(r: Resource, value: Any) -> None:
        text = json.dumps(value) if isinstance(value, Mapping) else str(value)
        attributes = {name: text.lower() if isinstance(value, bool) else text}
        policy = _queue(r).get("Policy")
        if policy:  # moto's SetQueueAttributes drops a Policy it is not sent again
            attributes["Policy"] = policy
        r.client("sqs").set_queue_attributes(QueueUrl=r.physical, Attributes=attributes)

    return apply


def _queue_attribute(name: str) -> Prop:
    return Prop(lambda r: _queue(r).get(name), apply=_set_queue_attribute(name))


def _queue_json(name: str) -> Prop:
    return Prop(
        lambda r: json.loads(_queue(r)[name]) if _queue(r).get(name) else None,
        lambda v: json.loads(v) if isinstance(v, str) else v,
        _set_queue_attribute(name),
    )


def _queue_tags(r: Resource) -> dict[str, str]:
    return _tags(r.client("sqs").list_queue_tags(QueueUrl=r.physical).get("Tags"))


def _tag_queue(r: Resource, value: Any) -> None:
    r.client("sqs").tag_queue(QueueUrl=r.physical, Tags=_tags(value))


_SQS: dict[str, Prop] = {
    "QueueName": Prop(lambda r: r.physical.rsplit("/", 1)[-1]),
    **{
        name: _queue_attribute(name)
        for name in (
            "VisibilityTimeout",
            "ReceiveMessageWaitTimeSeconds",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "FifoQueue",
            "ContentBasedDeduplication",
            "DeduplicationScope",
            "FifoThroughputLimit",
            "SqsManagedSseEnabled",
            "KmsMasterKeyId",
            "KmsDataKeyReusePeriodSeconds",
        )
    },
    "RedrivePolicy": _queue_json("RedrivePolicy"),
    "Tags": Prop(_queue_tags, _tags, _tag_queue),
}


# -- Lambda ------------------------------------------------------------------------------------


def _function(r: Resource) -> dict[str, Any]:
    return r.read(
        "function",
        lambda: r.client("lambda").get_function_configuration(FunctionName=r.physical),
    )


def _concurrency(r: Resource) -> Any:
    found = r.client("lambda").get_function_concurrency(FunctionName=r.physical)
    return found.get("ReservedConcurrentExecutions")


def _set_concurrency(r: Resource, value: Any) -> None:
    r.client("lambda").put_function_concurrency(
        FunctionName=r.physical, ReservedConcurrentExecutions=int(value)
    )


def _function_tags(r: Resource) -> dict[str, str]:
    return _tags(r.client("lambda").list_tags(Resource=_function(r)["FunctionArn"]).get("Tags"))


def _tag_function(r: Resource, value: Any) -> None:
    r.client("lambda").tag_resource(Resource=_function(r)["FunctionArn"], Tags=_tags(value))


def _function_field(name: str, default: Any = None) -> Prop:
    return Prop(lambda r: _function(r).get(name, default))


_LAMBDA: dict[str, Prop] = {
    **{
        name: _function_field(name)
        for name in (
            "FunctionName",
            "Handler",
            "Runtime",
            "Role",
            "MemorySize",
            "Timeout",
            "TracingConfig",
            "Architectures",
            "LoggingConfig",
            "DeadLetterConfig",
            "EphemeralStorage",
        )
    },
    "Description": _function_field("Description", ""),
    "KmsKeyArn": _function_field("KMSKeyArn"),
    "Environment": Prop(lambda r: _function(r).get("Environment", {"Variables": {}})),
    "VpcConfig": Prop(
        lambda r: _function(r).get("VpcConfig", {}),
        lambda v: {k: v[k] for k in ("SubnetIds", "SecurityGroupIds") if k in v},
    ),
    "Layers": Prop(lambda r: [layer["Arn"] for layer in _function(r).get("Layers", [])]),
    "ReservedConcurrentExecutions": Prop(_concurrency, apply=_set_concurrency),
    # The package is what CreateFunction/UpdateFunctionCode stored: moto applies Code on
    # create and update, and its bytes are the asset's (nothing to compare them with here).
    "Code": Prop(lambda r: None, lambda v: None),
    "PackageType": Prop(lambda r: _function(r).get("PackageType", "Zip")),
    "Tags": Prop(_function_tags, _tags, _tag_function),
}


def _mapping(r: Resource) -> dict[str, Any]:
    return r.read("mapping", lambda: r.client("lambda").get_event_source_mapping(UUID=r.physical))


def _function_name(value: Any) -> str:
    """A function's name from a name, a partial ARN or an ARN (qualifier dropped)."""
    text = str(value)
    if ":function:" in text:
        text = text.split(":function:", 1)[1]
    return text.split(":", 1)[0]


def _mapping_tags(r: Resource) -> dict[str, str]:
    arn = _mapping(r)["EventSourceMappingArn"]
    return _tags(r.client("lambda").list_tags(Resource=arn).get("Tags"))


def _tag_mapping(r: Resource, value: Any) -> None:
    arn = _mapping(r)["EventSourceMappingArn"]
    r.client("lambda").tag_resource(Resource=arn, Tags=_tags(value))


def _mapping_kms(r: Resource, value: Any) -> None:
    r.client("lambda").update_event_source_mapping(UUID=r.physical, KMSKeyArn=value)


def _mapping_field(name: str) -> Prop:
    return Prop(lambda r: _mapping(r).get(name))


_MAPPING: dict[str, Prop] = {
    **{
        name: _mapping_field(name)
        for name in (
            "EventSourceArn",
            "BatchSize",
            "StartingPosition",
            "StartingPositionTimestamp",
            "MaximumBatchingWindowInSeconds",
            "ParallelizationFactor",
            "DestinationConfig",
            "MaximumRecordAgeInSeconds",
            "BisectBatchOnFunctionError",
            "MaximumRetryAttempts",
            "FunctionResponseTypes",
            "ScalingConfig",
            "Queues",
            "Topics",
        )
    },
    "FilterCriteria": Prop(
        lambda r: {
            "Filters": [
                {"Pattern": json.loads(f["Pattern"])}
                for f in _mapping(r).get("FilterCriteria", {}).get("Filters", [])
            ]
        },
        lambda v: {
            "Filters": [
                {"Pattern": json.loads(f["Pattern"]) if isinstance(f["Pattern"], str) else f}
                for f in v.get("Filters", [])
            ]
        },
    ),
    "FunctionName": Prop(lambda r: _function_name(_mapping(r)["FunctionArn"]), _function_name),
    "Enabled": Prop(lambda r: _mapping(r).get("State") not in ("Disabled", "Disabling")),
    "KmsKeyArn": Prop(lambda r: _mapping(r).get("KMSKeyArn"), apply=_mapping_kms),
    "Tags": Prop(_mapping_tags, _tags, _tag_mapping),
}


# -- S3 ----------------------------------------------------------------------------------------


def _s3_or(default: Any, call: Callable[[], Any]) -> Any:
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return default
        raise


def encryption_rules(value: Any) -> list[dict[str, Any]]:
    """CloudFormation's BucketEncryption rules in the S3 API's shape."""
    return [
        {
            ("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
            for k, v in rule.items()
        }
        for rule in value.get("ServerSideEncryptionConfiguration", [])
    ]


def _bucket_encryption(r: Resource) -> list[dict[str, Any]]:
    found = _s3_or(
        {"ServerSideEncryptionConfiguration": {"Rules": []}},
        lambda: r.client("s3").get_bucket_encryption(Bucket=r.physical),
    )
    return found["ServerSideEncryptionConfiguration"]["Rules"]


def _encrypt_bucket(r: Resource, value: Any) -> None:
    r.client("s3").put_bucket_encryption(
        Bucket=r.physical, ServerSideEncryptionConfiguration={"Rules": encryption_rules(value)}
    )


def _bucket_tags(r: Resource) -> dict[str, str]:
    found = _s3_or({"TagSet": []}, lambda: r.client("s3").get_bucket_tagging(Bucket=r.physical))
    return _tags(found["TagSet"])


def _tag_bucket(r: Resource, value: Any) -> None:
    tags = {**_bucket_tags(r), **_tags(value)}
    r.client("s3").put_bucket_tagging(
        Bucket=r.physical, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
    )


def _versioning(r: Resource) -> dict[str, str]:
    found = r.client("s3").get_bucket_versioning(Bucket=r.physical)
    return {"Status": found.get("Status", "Suspended")}


def _version_bucket(r: Resource, value: Any) -> None:
    r.client("s3").put_bucket_versioning(
        Bucket=r.physical, VersioningConfiguration={"Status": value["Status"]}
    )


def _public_access(r: Resource) -> dict[str, Any]:
    found = _s3_or({}, lambda: r.client("s3").get_public_access_block(Bucket=r.physical))
    return found.get("PublicAccessBlockConfiguration", {})


def _block_public_access(r: Resource, value: Any) -> None:
    r.client("s3").put_public_access_block(
        Bucket=r.physical,
        PublicAccessBlockConfiguration={k: str(v).lower() == "true" for k, v in value.items()},
    )


def _ownership(r: Resource) -> dict[str, Any]:
    found = _s3_or({}, lambda: r.client("s3").get_bucket_ownership_controls(Bucket=r.physical))
    return found.get("OwnershipControls", {})


def _own_bucket(r: Resource, value: Any) -> None:
    r.client("s3").put_bucket_ownership_controls(Bucket=r.physical, OwnershipControls=value)


_FILTER_KEYS = ("Prefix", "ObjectSizeGreaterThan", "ObjectSizeLessThan")


def lifecycle_rules(value: Any) -> list[dict[str, Any]]:
    """CloudFormation's LifecycleConfiguration rules in the S3 API's shape."""
    rules = []
    for rule in value.get("Rules", []):
        api: dict[str, Any] = {"Status": rule["Status"]}
        if "Id" in rule:
            api["ID"] = rule["Id"]
        conditions = [{k: rule[k]} for k in _FILTER_KEYS if k in rule]
        conditions += [{"Tag": t} for t in rule.get("TagFilters", [])]
        if len(conditions) > 1:
            merged: dict[str, Any] = {}
            for condition in conditions:
                if "Tag" in condition:
                    merged.setdefault("Tags", []).append(condition["Tag"])
                else:
                    merged.update(condition)
            api["Filter"] = {"And": merged}
        else:
            api["Filter"] = conditions[0] if conditions else {"Prefix": ""}
        expiration = {}
        if "ExpirationInDays" in rule:
            expiration["Days"] = rule["ExpirationInDays"]
        if "ExpirationDate" in rule:
            expiration["Date"] = rule["ExpirationDate"]
        if "ExpiredObjectDeleteMarker" in rule:
            expiration["ExpiredObjectDeleteMarker"] = rule["ExpiredObjectDeleteMarker"]
        if expiration:
            api["Expiration"] = expiration
        noncurrent = dict(rule.get("NoncurrentVersionExpiration") or {})
        if "NoncurrentVersionExpirationInDays" in rule:
            noncurrent["NoncurrentDays"] = rule["NoncurrentVersionExpirationInDays"]
        if noncurrent:
            api["NoncurrentVersionExpiration"] = noncurrent
        if "AbortIncompleteMultipartUpload" in rule:
            api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
        transitions = [
            {
                "StorageClass": t["StorageClass"],
                **({"Days": t["TransitionInDays"]} if "TransitionInDays" in t else {}),
                **({"Date": t["TransitionDate"]} if "TransitionDate" in t else {}),
            }
            for t in [
                *rule.get("Transitions", []),
                *([rule["Transition"]] if "Transition" in rule else []),
            ]
        ]
        if transitions:
            api["Transitions"] = transitions
        noncurrent_transitions = [
            {"StorageClass": t["StorageClass"], "NoncurrentDays": t["TransitionInDays"]}
            for t in rule.get("NoncurrentVersionTransitions", [])
        ]
        if noncurrent_transitions:
            api["NoncurrentVersionTransitions"] = noncurrent_transitions
        rules.append(api)
    return rules


def _lifecycle(r: Resource) -> list[dict[str, Any]]:
    found = _s3_or(
        {"Rules": []},
        lambda: r.client("s3").get_bucket_lifecycle_configuration(Bucket=r.physical),
    )
    return found["Rules"]


def _set_lifecycle(r: Resource, value: Any) -> None:
    r.client("s3").put_bucket_lifecycle_configuration(
        Bucket=r.physical, LifecycleConfiguration={"Rules": lifecycle_rules(value)}
    )


def _logging(r: Resource) -> dict[str, Any]:
    enabled = r.client("s3").get_bucket_logging(Bucket=r.physical).get("LoggingEnabled") or {}
    found = {}
    if "TargetBucket" in enabled:
        found["DestinationBucketName"] = enabled["TargetBucket"]
    if enabled.get("TargetPrefix"):
        found["LogFilePrefix"] = enabled["TargetPrefix"]
    return found


def _set_logging(r: Resource, value: Any) -> None:
    r.client("s3").put_bucket_logging(
        Bucket=r.physical,
        BucketLoggingStatus={
            "LoggingEnabled": {
                "TargetBucket": value.get("DestinationBucketName", r.physical),
                "TargetPrefix": value.get("LogFilePrefix", ""),
            }
        },
    )


def cors_rules(value: Any) -> list[dict[str, Any]]:
    """CloudFormation's CorsConfiguration rules in the S3 API's shape."""
    renames = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds", "Id": "ID"}
    return [{renames.get(k, k): v for k, v in rule.items()} for rule in value.get("CorsRules", [])]


def _cors(r: Resource) -> list[dict[str, Any]]:
    found = _s3_or({"CORSRules": []}, lambda: r.client("s3").get_bucket_cors(Bucket=r.physical))
    return found["CORSRules"]


def _set_cors(r: Resource, value: Any) -> None:
    r.client("s3").put_bucket_cors(
        Bucket=r.physical, CORSConfiguration={"CORSRules": cors_rules(value)}
    )


_S3: dict[str, Prop] = {
    "BucketName": Prop(lambda r: r.physical),
    "BucketEncryption": Prop(_bucket_encryption, encryption_rules, _encrypt_bucket),
    "Tags": Prop(_bucket_tags, _tags, _tag_bucket),
    "VersioningConfiguration": Prop(_versioning, apply=_version_bucket),
    "PublicAccessBlockConfiguration": Prop(_public_access, apply=_block_public_access),
    "OwnershipControls": Prop(_ownership, apply=_own_bucket),
    "LifecycleConfiguration": Prop(_lifecycle, lifecycle_rules, _set_lifecycle),
    "LoggingConfiguration": Prop(_logging, apply=_set_logging),
    "CorsConfiguration": Prop(_cors, cors_rules, _set_cors),
}


# -- CloudWatch Logs ---------------------------------------------------------------------------


def _log_group(r: Resource) -> dict[str, Any]:
    def fetch() -> dict[str, Any]:
        logs = r.client("logs")
        for page in logs.get_paginator("describe_log_groups").paginate(
            logGroupNamePrefix=r.physical
        ):
            for group in page["logGroups"]:
                if group["logGroupName"] == r.physical:
                    return group
        return {}

    return r.read("log_group", fetch)


def _retention(r: Resource, value: Any) -> None:
    r.client("logs").put_retention_policy(logGroupName=r.physical, retentionInDays=int(value))


def _log_tags(r: Resource) -> dict[str, str]:
    return _tags(r.client("logs").list_tags_log_group(logGroupName=r.physical).get("tags"))


def _tag_log_group(r: Resource, value: Any) -> None:
    r.client("logs").tag_log_group(logGroupName=r.physical, tags=_tags(value))


_LOGS: dict[str, Prop] = {
    "LogGroupName": Prop(lambda r: _log_group(r).get("logGroupName")),
    "RetentionInDays": Prop(lambda r: _log_group(r).get("retentionInDays"), apply=_retention),
    "KmsKeyId": Prop(lambda r: _log_group(r).get("kmsKeyId")),
    "Tags": Prop(_log_tags, _tags, _tag_log_group),
}


# -- SNS ---------------------------------------------------------------------------------------


def _topic(r: Resource) -> dict[str, str]:
    return r.read(
        "topic", lambda: r.client("sns").get_topic_attributes(TopicArn=r.physical)["Attributes"]
    )


def _topic_attribute(name: str, settable: bool = True) -> Prop:
    def apply(r: Resource, value: Any) -> None:
        r.client("sns").set_topic_attributes(
            TopicArn=r.physical, AttributeName=name, AttributeValue=str(value)
        )

    return Prop(lambda r: _topic(r).get(name), apply=apply if settable else None)


def _subscriptions(r: Resource) -> list[tuple[str, str]]:
    found = []
    for page in (
        r.client("sns").get_paginator("list_subscriptions_by_topic").paginate(TopicArn=r.physical)
    ):
        found += [(s["Protocol"], s["Endpoint"]) for s in page["Subscriptions"]]
    return sorted(set(found))


def _topic_tags(r: Resource) -> dict[str, str]:
    return _tags(r.client("sns").list_tags_for_resource(ResourceArn=r.physical).get("Tags"))


def _tag_topic(r: Resource, value: Any) -> None:
    r.client("sns").tag_resource(
        ResourceArn=r.physical,
        Tags=[{"Key": k, "Value": v} for k, v in _tags(value).items()],
    )


_SNS: dict[str, Prop] = {
    "TopicName": Prop(lambda r: r.physical.rsplit(":", 1)[-1]),
    "DisplayName": _topic_attribute("DisplayName"),
    "KmsMasterKeyId": _topic_attribute("KmsMasterKeyId"),
    "FifoTopic": _topic_attribute("FifoTopic", settable=False),
    "ContentBasedDeduplication": _topic_attribute("ContentBasedDeduplication"),
    "Subscription": Prop(
        _subscriptions, lambda v: sorted({(s["Protocol"], s["Endpoint"]) for s in v})
    ),
    "Tags": Prop(_topic_tags, _tags, _tag_topic),
}


# -- Step Functions ----------------------------------------------------------------------------


def _machine(r: Resource) -> dict[str, Any]:
    return r.read(
        "machine",
        lambda: r.client("stepfunctions").describe_state_machine(stateMachineArn=r.physical),
    )


def machine_logging(value: Any) -> dict[str, Any]:
    """CloudFormation's LoggingConfiguration in the Step Functions API's (camelCase) shape."""
    api: dict[str, Any] = {"level": value.get("Level", "OFF")}
    if "IncludeExecutionData" in value:
        api["includeExecutionData"] = str(value["IncludeExecutionData"]).lower() == "true"
    api["destinations"] = [
        {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
        for d in value.get("Destinations", [])
    ]
    return api


def _set_machine_logging(r: Resource, value: Any) -> None:
    r.client("stepfunctions").update_state_machine(
        stateMachineArn=r.physical, loggingConfiguration=machine_logging(value)
    )


def _set_machine_tracing(r: Resource, value: Any) -> None:
    r.client("stepfunctions").update_state_machine(
        stateMachineArn=r.physical,
        tracingConfiguration={"enabled": str(value.get("Enabled")).lower() == "true"},
    )


def _machine_tags(r: Resource) -> dict[str, str]:
    found = r.client("stepfunctions").list_tags_for_resource(resourceArn=r.physical)["tags"]
    return {t["key"]: t["value"] for t in found}


def _tag_machine(r: Resource, value: Any) -> None:
    r.client("stepfunctions").tag_resource(
        resourceArn=r.physical, tags=[{"key": k, "value": v} for k, v in _tags(value).items()]
    )


_STATES: dict[str, Prop] = {
    "StateMachineName": Prop(lambda r: _machine(r)["name"]),
    "DefinitionString": Prop(lambda r: json.loads(_machine(r)["definition"]), json.loads),
    "RoleArn": Prop(lambda r: _machine(r)["roleArn"]),
    "StateMachineType": Prop(lambda r: _machine(r).get("type", "STANDARD")),
    "LoggingConfiguration": Prop(
        lambda r: _machine(r).get("loggingConfiguration", {"level": "OFF"}),
        machine_logging,
        _set_machine_logging,
    ),
    "TracingConfiguration": Prop(
        lambda r: {"enabled": _machine(r).get("tracingConfiguration", {}).get("enabled", False)},
        lambda v: {"enabled": str(v.get("Enabled")).lower() == "true"},
        _set_machine_tracing,
    ),
    "Tags": Prop(_machine_tags, _tags, _tag_machine),
}


#: Every property this module can check, per type; any other property of these types fails.
CHECKED_TYPES: dict[str, dict[str, Prop]] = {
    "AWS::DynamoDB::Table": _DYNAMODB,
    "AWS::Kinesis::Stream": _KINESIS,
    "AWS::SQS::Queue": _SQS,
    "AWS::Lambda::Function": _LAMBDA,
    "AWS::Lambda::EventSourceMapping": _MAPPING,
    "AWS::S3::Bucket": _S3,
    "AWS::Logs::LogGroup": _LOGS,
    "AWS::SNS::Topic": _SNS,
    "AWS::StepFunctions::StateMachine": _STATES,
}


# -- the check ---------------------------------------------------------------------------------


class PropertyCheck:
    """Compares, applies, and reports what could not be put in effect."""

    def __init__(self, client: Callable[[str], Any]) -> None:
        self._client = client

    def check(
        self,
        stack: str,
        template: Mapping[str, Any],
        physical: Mapping[str, str],
        resolve: Callable[[Any], Any],
    ) -> tuple[list[str], list[str]]:
        """``(problems, applied)`` for one deployed stack; each names resource and property."""
        problems: list[str] = []
        applied: list[str] = []
        for logical_id, body in template.get("Resources", {}).items():
            props = CHECKED_TYPES.get(body.get("Type", ""))
            if props is None:
                continue
            rtype = body["Type"]
            where = f"{stack}/{logical_id} ({rtype})"
            if not physical.get(logical_id):
                problems.append(f"{where}: the local cloud holds no such resource (moto lost it)")
                continue
            try:
                properties = resolve(body.get("Properties") or {})
            except Exception as exc:
                problems.append(f"{where}: its properties cannot be resolved ({exc})")
                continue
            resource = Resource(self._client, logical_id, rtype, physical[logical_id], properties)
            for name, value in properties.items():
                problem = self._one(resource, props.get(name), name, value)
                if problem == "applied":
                    applied.append(f"{where}: {name}")
                elif problem:
                    problems.append(f"{where}: {name} {problem}")
        return problems, applied

    @staticmethod
    def _one(resource: Resource, prop: Prop | None, name: str, value: Any) -> str | None:
        if prop is None:
            return "is not supported by the local cloud"
        try:
            want = prop.expect(value)
            got = prop.read(resource)
            if same(got, want):
                return None
            if prop.apply is None:
                return f"is {_short(want)} in the template, {_short(got)} on the local cloud"
            prop.apply(resource, value)
            resource.forget()
            got = prop.read(resource)
        except Exception as exc:
            return f"could not be checked or applied ({type(exc).__name__}: {_short(str(exc))})"
        if same(got, want):
            return "applied"
        return (
            f"is {_short(want)} in the template, still {_short(got)} on the local cloud after "
            "applying it"
        )


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."
