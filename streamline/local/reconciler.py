"""Apply what moto's CloudFormation skipped, or fail naming the resource type or property.

moto creates the resource types it models and silently drops the rest (a warning, then the
resource is None). After each deploy we read every stack's template (GetTemplate) and resources
(ListStackResources), and for each resource of a type moto skipped either apply it through the
public API (idempotently: a redeploy re-applies the same state) or, when we have no handler,
refuse with the type and logical id so nothing is silently missing. Then every property of the
types moto does model is compared with what the services report, applied where moto dropped it,
or refused by name (:mod:`streamline.local.properties`).

Example::

    reconcile_stacks("http://localhost:4566", ["streamline-dev-processing"])
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamline.local.properties import PropertyCheck
from streamline.local.server import ACCOUNT_ID, REGION

__all__ = [
    "IGNORED_TYPES",
    "ReconcileError",
    "Reconciler",
    "reconcile_stacks",
    "skipped_types",
]

# Types with no local behaviour, each deliberately ignored.
IGNORED_TYPES: dict[str, str] = {
    # Only CDK's usage analytics; no runtime meaning.
    "AWS::CDK::Metadata": "CDK analytics metadata",
    # Unresolved conditions/wait handles are modelled as no-ops by moto itself.
    "AWS::CloudFormation::WaitConditionHandle": "no-op in CloudFormation without signals",
    "AWS::CloudFormation::WaitCondition": "no-op in CloudFormation without signals",
}


class ReconcileError(RuntimeError):
    """A template holds a resource moto skipped and the reconciler cannot apply."""


def skipped_types(template: Mapping[str, Any]) -> dict[str, str]:
    """``{logical id: type}`` of resources in ``template`` that moto's CloudFormation skips.

    moto's support table is read in this process, which may be a CLI that only talks to a
    cloud running elsewhere: apply our patches (idempotent) so the table matches the server's,
    which supports more types (CloudWatch alarms, for one) than stock moto.
    """
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    from streamline.local.patches import apply_all

    apply_all()

    supported = set(get_model_map()) | set(NULL_MODELS)
    return {
        logical_id: resource["Type"]
        for logical_id, resource in template.get("Resources", {}).items()
        if resource["Type"] not in supported
        and not resource["Type"].startswith("Custom::")
        and resource["Type"] != "AWS::CloudFormation::CustomResource"
    }


@dataclass
class _Stack:
    name: str
    template: dict[str, Any]
    physical: dict[str, str]  # logical id -> physical id (moto leaves skipped ones empty)
    types: dict[str, str] = field(default_factory=dict)


class Reconciler:
    """Resolves intrinsic functions in one stack and applies its skipped resources."""

    def __init__(self, client: Callable[[str], Any]) -> None:
        self._client = client
        self._exports: dict[str, str] | None = None
        self.handlers: dict[str, Callable[[_Stack, str, dict[str, Any]], None]] = {
            "AWS::Lambda::EventInvokeConfig": self._event_invoke_config,
            "AWS::SNS::Subscription": self._sns_subscription,
            "AWS::SQS::QueuePolicy": self._queue_policy,
            "AWS::SNS::TopicPolicy": self._topic_policy,
            "AWS::S3::BucketPolicy": self._bucket_policy,
        }

    # -- reading stacks ----------------------------------------------------------------------

    def load(self, stack_name: str) -> _Stack:
        cfn = self._client("cloudformation")
        body = cfn.get_template(StackName=stack_name)["TemplateBody"]
        template = body if isinstance(body, dict) else json.loads(body)
        physical: dict[str, str] = {}
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name):
            for summary in page["StackResourceSummaries"]:
                if summary.get("PhysicalResourceId"):
                    physical[summary["LogicalResourceId"]] = summary["PhysicalResourceId"]
        types = {lid: r["Type"] for lid, r in template.get("Resources", {}).items()}
        return _Stack(stack_name, template, physical, types)

    def reconcile(self, stack_name: str) -> list[str]:
        """Apply every skipped resource of one stack; return ``["Type LogicalId", ...]`` applied."""
        stack = self.load(stack_name)
        applied: list[str] = []
        unhandled = []
        for logical_id, rtype in skipped_types(stack.template).items():
            if rtype in IGNORED_TYPES:
                continue
            handler = self.handlers.get(rtype)
            if handler is None:
                unhandled.append(f"{rtype} ({logical_id})")
                continue
            properties = self.resolve(
                stack, stack.template["Resources"][logical_id].get("Properties", {})
            )
            handler(stack, logical_id, properties)
            applied.append(f"{rtype} {logical_id}")
        if unhandled:
            raise ReconcileError(
                f"stack {stack_name}: the local cloud cannot create "
                + ", ".join(unhandled)
                + " (moto's CloudFormation skips these types and the reconciler has no handler)"
            )
        problems, fixed = PropertyCheck(self._client).check(
            stack_name, stack.template, stack.physical, lambda value: self.resolve(stack, value)
        )
        if problems:
            raise ReconcileError(
                "template properties not in effect on the local cloud:\n  " + "\n  ".join(problems)
            )
        return applied + [f"property {f}" for f in fixed]

    # -- intrinsic functions -----------------------------------------------------------------

    def resolve(self, stack: _Stack, value: Any) -> Any:
        """Resolve Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::ImportValue."""
        if isinstance(value, list):
            return [self.resolve(stack, v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(stack, arg)
            if key == "Fn::GetAtt":
                logical_id, attr = arg.split(".", 1) if isinstance(arg, str) else arg
                return self._get_att(stack, logical_id, attr)
            if key == "Fn::Join":
                sep, parts = arg
                return sep.join(str(p) for p in self.resolve(stack, parts))
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(stack, items)[int(self.resolve(stack, index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(stack, text)).split(sep)
            if key == "Fn::ImportValue":
                return self._import(str(self.resolve(stack, arg)))
            if key == "Fn::Sub":
                return self._sub(stack, arg)
            if key.startswith("Fn::"):
                raise ReconcileError(f"stack {stack.name}: unsupported intrinsic {key}")
        return {k: self.resolve(stack, v) for k, v in value.items()}

    _PSEUDO = {
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Region": REGION,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }

    def _ref(self, stack: _Stack, name: str) -> Any:
        if name in self._PSEUDO:
            return self._PSEUDO[name]
        if name == "AWS::StackName":
            return stack.name
        if name in stack.physical:
            return stack.physical[name]
        if name in stack.template.get("Parameters", {}):
            return self._parameter(stack, name)
        raise ReconcileError(f"stack {stack.name}: cannot resolve Ref {name}")

    def _parameter(self, stack: _Stack, name: str) -> str:
        cfn = self._client("cloudformation")
        described = cfn.describe_stacks(StackName=stack.name)["Stacks"][0]
        for parameter in described.get("Parameters", []):
            if parameter["ParameterKey"] == name:
                return str(parameter.get("ResolvedValue") or parameter["ParameterValue"])
        default = stack.template["Parameters"][name].get("Default")
        if default is None:
            raise ReconcileError(f"stack {stack.name}: parameter {name} has no value")
        return str(default)

    def _import(self, name: str) -> str:
        if self._exports is None:
            cfn = self._client("cloudformation")
            self._exports = {}
            for page in cfn.get_paginator("list_exports").paginate():
                self._exports.update({e["Name"]: e["Value"] for e in page["Exports"]})
        if name not in self._exports:
            raise ReconcileError(f"no export named {name}")
        return self._exports[name]

    def _sub(self, stack: _Stack, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        resolved = {k: self.resolve(stack, v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal}
            if name in resolved:
                return str(resolved[name])
            if "." in name:
                logical_id, attr = name.split(".", 1)
                return str(self._get_att(stack, logical_id, attr))
            return str(self._ref(stack, name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _get_att(self, stack: _Stack, logical_id: str, attr: str) -> str:
        rtype = stack.types.get(logical_id)
        physical = stack.physical.get(logical_id)
        if rtype is None or physical is None:
            raise ReconcileError(f"stack {stack.name}: cannot resolve {logical_id}.{attr}")
        if (rtype, attr) == ("AWS::DynamoDB::Table", "StreamArn"):
            table = self._client("dynamodb").describe_table(TableName=physical)["Table"]
            return str(table["LatestStreamArn"])
        found = _attribute(rtype, physical, attr)
        if found is None and attr == "Arn" and physical.startswith("arn:"):
            found = physical  # types whose physical id already is their ARN
        if found is None:
            raise ReconcileError(
                f"stack {stack.name}: cannot resolve Fn::GetAtt {logical_id}.{attr}"
            )
        return found

    # -- handlers (each idempotent) ----------------------------------------------------------

    def _event_invoke_config(self, stack: _Stack, logical_id: str, p: dict[str, Any]) -> None:
        kwargs: dict[str, Any] = {"FunctionName": p["FunctionName"]}
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"):
            if key in p:
                kwargs[key] = p[key]
        if p.get("Qualifier") not in (None, "$LATEST"):
            kwargs["Qualifier"] = p["Qualifier"]
        self._client("lambda").put_function_event_invoke_config(**kwargs)

    def _sns_subscription(self, stack: _Stack, logical_id: str, p: dict[str, Any]) -> None:
        sns = self._client("sns")
        attributes: dict[str, str] = {}
        for key in ("RawMessageDelivery", "FilterPolicyScope"):
            if key in p:
                attributes[key] = str(p[key]).lower() if key == "RawMessageDelivery" else p[key]
        for key in ("FilterPolicy", "RedrivePolicy", "DeliveryPolicy"):
            if key in p:
                attributes[key] = p[key] if isinstance(p[key], str) else json.dumps(p[key])
        existing = None
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(
            TopicArn=p["TopicArn"]
        ):
            for sub in page["Subscriptions"]:
                if sub["Protocol"] == p["Protocol"] and sub["Endpoint"] == p.get("Endpoint"):
                    existing = sub["SubscriptionArn"]
        if existing is None:
            sns.subscribe(
                TopicArn=p["TopicArn"],
                Protocol=p["Protocol"],
                Endpoint=p.get("Endpoint", ""),
                Attributes=attributes,
                ReturnSubscriptionArn=True,
            )
        else:
            for name, value in attributes.items():
                sns.set_subscription_attributes(
                    SubscriptionArn=existing, AttributeName=name, AttributeValue=value
                )

    def _queue_policy(self, stack: _Stack, logical_id: str, p: dict[str, Any]) -> None:
        sqs = self._client("sqs")
        policy = json.dumps(p["PolicyDocument"])
        for queue_url in p["Queues"]:
            sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": policy})

    def _topic_policy(self, stack: _Stack, logical_id: str, p: dict[str, Any]) -> None:
        sns = self._client("sns")
        policy = json.dumps(p["PolicyDocument"])
        for topic_arn in p["Topics"]:
            sns.set_topic_attributes(
                TopicArn=topic_arn, AttributeName="Policy", AttributeValue=policy
            )

    def _bucket_policy(self, stack: _Stack, logical_id: str, p: dict[str, Any]) -> None:
        self._client("s3").put_bucket_policy(
            Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"])
        )


def reconcile_stacks(endpoint_url: str, stack_names: list[str]) -> dict[str, list[str]]:
    """Reconcile each stack in order (dependencies first, as CDK deployed them)."""
    from streamline.local.cloud import make_client

    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = make_client(service, endpoint_url)
        return clients[service]

    reconciler = Reconciler(client)
    return {name: reconciler.reconcile(name) for name in stack_names}


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


def _rule_arn(physical: str) -> str:
    if physical.startswith("arn:"):
        return physical
    # moto names a rule on a custom bus "<bus>|<rule>"; its ARN puts the bus in the path
    bus, _, rule = physical.rpartition("|")
    return _arn("events", f"rule/{bus + '/' if bus else ''}{rule}")


# Fn::GetAtt from a resource's physical id, per type and attribute, as CloudFormation answers.
_ATTRIBUTES: dict[tuple[str, str], Callable[[str], str]] = {
    ("AWS::SQS::Queue", "Arn"): lambda p: _arn("sqs", p.rsplit("/", 1)[-1]),
    ("AWS::SQS::Queue", "QueueName"): lambda p: p.rsplit("/", 1)[-1],
    ("AWS::SQS::Queue", "QueueUrl"): lambda p: p,
    ("AWS::Lambda::Function", "Arn"): lambda p: (
        p if p.startswith("arn:") else _arn("lambda", f"function:{p}")
    ),
    ("AWS::SNS::Topic", "TopicArn"): lambda p: p,
    ("AWS::SNS::Topic", "TopicName"): lambda p: p.rsplit(":", 1)[-1],
    ("AWS::Kinesis::Stream", "Arn"): lambda p: _arn("kinesis", f"stream/{p}"),
    ("AWS::DynamoDB::Table", "Arn"): lambda p: _arn("dynamodb", f"table/{p}"),
    ("AWS::Events::EventBus", "Arn"): lambda p: _arn("events", f"event-bus/{p}"),
    ("AWS::Events::EventBus", "Name"): lambda p: p,
    ("AWS::S3::Bucket", "Arn"): lambda p: f"arn:aws:s3:::{p}",
    ("AWS::IAM::Role", "Arn"): lambda p: f"arn:aws:iam::{ACCOUNT_ID}:role/{p}",
    ("AWS::Logs::LogGroup", "Arn"): lambda p: _arn("logs", f"log-group:{p}:*"),
    ("AWS::StepFunctions::StateMachine", "Arn"): lambda p: p,
    ("AWS::Events::Rule", "Arn"): _rule_arn,
}


def _attribute(rtype: str, physical: str, attr: str) -> str | None:
    found = _ATTRIBUTES.get((rtype, attr))
    return found(physical) if found is not None else None
