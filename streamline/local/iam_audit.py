"""Report-only IAM: the calls each function's execution role would be denied on AWS.

The local cloud does not enforce IAM (moto's switch is process-global and would refuse the CLI's
and CDK's keys too). It audits instead: every request signed with a function's keys
(:mod:`streamline.local.identities`) is turned into the IAM action(s) and resource ARN(s) AWS
would authorise, and the role's identity policies (CDK grants arrive as inline role policies,
managed policies are read too) are evaluated with AWS's rules: an explicit Deny wins, else an
Allow is needed. What would be denied is recorded in :data:`DENIALS` and shown by
``streamline local status``, so a missing CDK grant shows up before ``cdk deploy`` to AWS does.

The evaluator is ours, not moto's: moto authorises most services against resource ``*`` (so a
correctly scoped grant fails), uses SDK operation names that are not IAM actions
(``sqs:SendMessageBatch``, ``lambda:Invoke``), matches case-sensitively and ignores
``NotResource``. What it does not model, it leans toward "allowed", to keep false alarms out:

* a condition it cannot evaluate (an operator or key it does not know) makes an Allow apply and
  a Deny not apply; known keys are the local request's (``aws:SecureTransport`` is true, as on
  the TLS endpoint AWS has);
* a request whose resource it cannot derive is checked by action alone (``resource`` is None):
  reported only when no Allow statement names the action at all;
* resource-based policies (queue, topic, bucket, function policies), permission boundaries,
  SCPs and session policies are not evaluated; nor are the KMS calls AWS makes on a caller's
  behalf for encrypted queues, tables and buckets.

Three parts in one module (about 550 lines), in order: the pure evaluator, what an API call
asks IAM for (per service), and the record of would-be denials. They change together (a new
service needs its action names, its resources and nothing else); split them when one of them
is used without the others.

Example::

    decision = evaluate([("p", {"Statement": [...]})], "sqs:SendMessage", queue_arn, context)
    decision.allowed, decision.reason
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

__all__ = [
    "DENIALS",
    "Decision",
    "DenialLog",
    "Request",
    "evaluate",
    "mapping_requests",
    "requests_for",
]


# -- the evaluator (pure) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Request:
    """One IAM authorisation: an action on a resource ARN (None: not derivable here)."""

    action: str
    resource: str | None


_MATCH = "match"
_NO_MATCH = "no-match"
_UNKNOWN = "unknown"


@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _matches_action(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(_glob(p, False).match(action) for p in _listed(statement["Action"]))
    if "NotAction" in statement:
        return not any(_glob(p, False).match(action) for p in _listed(statement["NotAction"]))
    return False


def _resource_state(patterns: list[str], resource: str) -> str:
    found = _NO_MATCH
    for pattern in patterns:
        if "${" in pattern:
            found = _UNKNOWN  # a policy variable: not resolved locally
        elif _glob(pattern, True).match(resource):
            return _MATCH
    return found


def _matches_resource(statement: Mapping[str, Any], resource: str | None) -> str:
    if "Resource" in statement:
        patterns = _listed(statement["Resource"])
        if resource is None:
            return _MATCH if "*" in patterns else _UNKNOWN
        return _resource_state(patterns, resource)
    if "NotResource" in statement:
        if resource is None:
            return _UNKNOWN
        state = _resource_state(_listed(statement["NotResource"]), resource)
        return {_MATCH: _NO_MATCH, _NO_MATCH: _MATCH}.get(state, _UNKNOWN)
    return _NO_MATCH  # a statement with neither is invalid: it grants nothing


def _string_test(operator: str) -> Callable[[str, str], bool] | None:
    return {
        "StringEquals": lambda a, b: a == b,
        "StringNotEquals": lambda a, b: a != b,
        "StringEqualsIgnoreCase": lambda a, b: a.lower() == b.lower(),
        "StringNotEqualsIgnoreCase": lambda a, b: a.lower() != b.lower(),
        "StringLike": lambda a, b: bool(_glob(b, True).match(a)),
        "StringNotLike": lambda a, b: not _glob(b, True).match(a),
        "ArnEquals": lambda a, b: bool(_glob(b, True).match(a)),
        "ArnLike": lambda a, b: bool(_glob(b, True).match(a)),
        "ArnNotEquals": lambda a, b: not _glob(b, True).match(a),
        "ArnNotLike": lambda a, b: not _glob(b, True).match(a),
        "Bool": lambda a, b: a.lower() == b.lower(),
    }.get(operator)


def _conditions(statement: Mapping[str, Any], context: Mapping[str, str]) -> str:
    """``match`` when every condition holds, ``no-match`` when one fails, else ``unknown``."""
    block = statement.get("Condition")
    if not block:
        return _MATCH
    if not isinstance(block, Mapping):
        return _UNKNOWN
    result = _MATCH
    for raw_operator, tests in block.items():
        operator = str(raw_operator)
        if_exists = operator.endswith("IfExists")
        operator = operator.removesuffix("IfExists")
        qualifier, _, operator = operator.rpartition(":")  # ForAnyValue:/ForAllValues:
        test = _string_test(operator)
        if test is None or qualifier or not isinstance(tests, Mapping):
            result = _UNKNOWN
            continue
        for key, wanted in tests.items():
            value = context.get(str(key).lower())
            if value is None:
                if not if_exists:
                    result = _UNKNOWN  # a key the local request does not carry
                continue
            negated = "Not" in operator
            checks = [test(value, w) for w in _listed(wanted)]
            holds = all(checks) if negated else any(checks)
            if not holds:
                return _NO_MATCH
    return result


def evaluate(
    documents: Iterable[tuple[str, Mapping[str, Any]]],
    action: str,
    resource: str | None,
    context: Mapping[str, str] | None = None,
) -> Decision:
    """AWS's identity-policy decision for ``action`` on ``resource`` (see the module doc)."""
    context = {k.lower(): v for k, v in (context or {}).items()}
    allowed_by = None
    for name, document in documents:
        statements = document.get("Statement", [])
        if isinstance(statements, Mapping):
            statements = [statements]
        for statement in statements if isinstance(statements, list) else []:
            if not isinstance(statement, Mapping) or not _matches_action(statement, action):
                continue
            where = _matches_resource(statement, resource)
            when = _conditions(statement, context)
            if statement.get("Effect") == "Deny":
                # Only a Deny that certainly applies counts.
                if where == _MATCH and when == _MATCH:
                    return Decision(False, f"explicit deny in {name}")
            elif statement.get("Effect") == "Allow" and _NO_MATCH not in (where, when):
                allowed_by = allowed_by or name
    if allowed_by is not None:
        return Decision(True, f"allowed by {allowed_by}")
    policies = ", ".join(n for n, _ in documents) if isinstance(documents, list) else ""
    return Decision(False, f"no statement allows it ({policies or 'the role has no policies'})")


# -- requests: what AWS authorises for an API call -----------------------------------------

# SDK operation -> IAM action, where they differ.
_ALIASES = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeWithResponseStream"): "InvokeFunction",
    ("sns", "PublishBatch"): "Publish",
    ("xray", "TraceSegments"): "PutTraceSegments",
    ("xray", "TelemetryRecords"): "PutTelemetryRecords",
    ("s3", "HeadBucket"): "ListBucket",
    ("s3", "SelectObjectContent"): "GetObject",
}
# Signing names that are not IAM service prefixes.
_PREFIXES = {"monitoring": "cloudwatch"}
_STREAMS_TARGET = "DynamoDBStreams_"
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


@dataclass(frozen=True, slots=True)
class Call:
    """What the audit reads from one request (built by the server patch)."""

    service: str  # the SigV4 signing name
    operation: str  # moto's action name
    params: Callable[[str], Any]  # a request parameter by name, None when absent
    region: str
    account: str
    path: str = ""
    target: str = ""  # X-Amz-Target
    resource: str = "*"  # what moto derived (SQS queue, S3 bucket/key)


def requests_for(call: Call) -> list[Request]:
    """The IAM requests AWS makes for ``call``; never raises (unknown: action alone)."""
    prefix = _PREFIXES.get(call.service, call.service)
    try:
        return _requests(prefix, call)
    except Exception:  # a body we cannot read: check the action alone
        return [Request(f"{prefix}:{_ALIASES.get((prefix, call.operation), call.operation)}", None)]


def _requests(prefix: str, call: Call) -> list[Request]:
    op = call.operation
    action = f"{prefix}:{_ALIASES.get((prefix, op), op)}"
    if (prefix, op) == ("sts", "GetCallerIdentity"):
        return []  # needs no permission: AWS never denies it
    if prefix == "s3" or (prefix == "sqs" and call.resource != "*"):
        return [Request(action, call.resource)]  # moto derived these itself
    if prefix in ("cloudwatch", "xray"):
        return [Request(action, "*")]  # no resource-level permissions for these calls
    per_service = _RESOURCES.get(prefix)
    if per_service is None:
        return [Request(action, None)]
    return per_service(action, call, f"{call.region}:{call.account}")


def _dynamodb(action: str, call: Call, arn: str) -> list[Request]:
    op, p = call.operation, call.params
    if call.target.startswith(_STREAMS_TARGET):
        stream = p("StreamArn") or str(p("ShardIterator") or "").split("|")[0] or None
        return [Request(action, stream if op != "ListStreams" else "*")]
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [Request(action, _table(arn, t)) for t in (p("RequestItems") or {})]
    if op in ("TransactWriteItems", "TransactGetItems"):
        return [
            Request(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", _table(arn, body["TableName"]))
            for item in p("TransactItems") or []
            for kind, body in item.items()
        ]
    if op == "ListTables":
        return [Request(action, "*")]
    table = p("TableName")
    if not table:
        return [Request(action, None)]
    index = p("IndexName")
    return [Request(action, _table(arn, table) + (f"/index/{index}" if index else ""))]


def _kinesis(action: str, call: Call, arn: str) -> list[Request]:
    p = call.params
    stream = p("StreamARN") or (
        f"arn:aws:kinesis:{arn}:stream/{p('StreamName')}" if p("StreamName") else None
    )
    if stream is None and p("ShardIterator"):
        stream = _kinesis_iterator_stream(arn, str(p("ShardIterator")))
    return [Request(action, stream)]


def _sns(action: str, call: Call, arn: str) -> list[Request]:
    target = call.params("TopicArn") or call.params("TargetArn")
    listing = call.operation in ("ListTopics", "CreateTopic")
    return [Request(action, target or ("*" if listing else None))]


def _lambda(action: str, call: Call, arn: str) -> list[Request]:
    function = _lambda_function(call.path)
    if function is None:
        return [Request(action, None)]
    if not function.startswith("arn:"):
        name, _, qualifier = function.partition(":")
        qualifier = qualifier or str(call.params("Qualifier") or "")
        function = f"arn:aws:lambda:{arn}:function:{name}" + (f":{qualifier}" if qualifier else "")
    return [Request(action, function)]


def _states(action: str, call: Call, arn: str) -> list[Request]:
    return [Request(action, call.params("stateMachineArn") or call.params("executionArn") or None)]


def _events(action: str, call: Call, arn: str) -> list[Request]:
    if call.operation != "PutEvents":
        return [Request(action, None)]
    buses = {str(e.get("EventBusName") or "default") for e in call.params("Entries") or []}
    return [
        Request(action, b if b.startswith("arn:") else f"arn:aws:events:{arn}:event-bus/{b}")
        for b in sorted(buses)
    ]


def _logs(action: str, call: Call, arn: str) -> list[Request]:
    group = call.params("logGroupName")
    if not group:
        return [Request(action, None)]
    stream = call.params("logStreamName")
    base = f"arn:aws:logs:{arn}:log-group:{group}"
    return [Request(action, f"{base}:log-stream:{stream}" if stream else f"{base}:*")]


#: How each service's request names the resource IAM authorises it on.
_RESOURCES: dict[str, Callable[[str, Call, str], list[Request]]] = {
    "dynamodb": _dynamodb,
    "kinesis": _kinesis,
    "sns": _sns,
    "lambda": _lambda,
    "states": _states,
    "events": _events,
    "logs": _logs,
}


def _table(arn: str, table: str) -> str:
    return table if table.startswith("arn:") else f"arn:aws:dynamodb:{arn}:table/{table}"


def _kinesis_iterator_stream(arn: str, iterator: str) -> str | None:
    # moto's iterators are base64 of "<stream>:<shard>:<sequence>" (moto/kinesis/utils.py).
    try:
        stream = base64.b64decode(iterator).decode().split(":")[0]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return f"arn:aws:kinesis:{arn}:stream/{stream}" if stream else None


_LAMBDA_PATH = re.compile(r"/functions/([^/]+)")


def _lambda_function(path: str) -> str | None:
    found = _LAMBDA_PATH.search(path or "")
    return unquote(found.group(1)) if found else None


# What Lambda's pollers call with the function's execution role (the Lambda developer guide,
# "execution role permissions" per event source), and what an on-failure destination needs.
_POLLER_ACTIONS = {
    "sqs": ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"),
    "kinesis": (
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
    ),
    "dynamodb": (
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:DescribeStream",
        "dynamodb:ListStreams",
    ),
}


def mapping_requests(source_arn: str, on_failure_arn: str | None = None) -> list[Request]:
    """The calls Lambda makes with a mapping's function role: polling ``source_arn`` and
    sending on-failure records to ``on_failure_arn``."""
    service = source_arn.split(":")[2] if source_arn.count(":") >= 2 else ""
    requests = [Request(action, source_arn) for action in _POLLER_ACTIONS.get(service, ())]
    if on_failure_arn:
        target = on_failure_arn.split(":")[2] if on_failure_arn.count(":") >= 2 else ""
        if target == "sqs":
            requests.append(Request("sqs:SendMessage", on_failure_arn))
        elif target == "sns":
            requests.append(Request("sns:Publish", on_failure_arn))
        elif target == "s3":
            requests.append(Request("s3:PutObject", f"{on_failure_arn}/on-failure-record"))
    return requests


# -- what was denied ------------------------------------------------------------------------


@dataclass(slots=True)
class Denial:
    function: str
    action: str
    resource: str | None
    reason: str
    count: int
    first_at: float
    last_at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "action": self.action,
            "resource": self.resource,
            "mode": "action-only" if self.resource is None else "resource",
            "reason": self.reason,
            "count": self.count,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


class DenialLog:
    """Would-be denials by (function, action, resource), bounded; thread-safe."""

    def __init__(self, limit: int = 500) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._items: dict[tuple[str, str, str | None], Denial] = {}

    def record(self, function: str, request: Request, reason: str) -> None:
        key = (function, request.action, request.resource)
        now = time.time()
        with self._lock:
            known = self._items.get(key)
            if known is not None:
                known.count += 1
                known.last_at = now
                known.reason = reason
            elif len(self._items) < self._limit:
                self._items[key] = Denial(
                    function, request.action, request.resource, reason, 1, now, now
                )

    def as_json(self) -> list[dict[str, Any]]:
        with self._lock:
            items = sorted(self._items.values(), key=lambda d: (d.function, d.action))
            return [d.as_json() for d in items]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


#: The cloud's record (process-global, like moto's state; observability, not journaled).
DENIALS = DenialLog()


# -- the role's policies --------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _parsed(document: str) -> Mapping[str, Any]:
    loaded = json.loads(unquote(document) if document.startswith("%7B") else document)
    return loaded if isinstance(loaded, Mapping) else {}


@functools.lru_cache(maxsize=1)
def aws_managed_documents() -> dict[str, Any]:
    """AWS-managed policies by name (moto's bundled copy; parsing it takes about a second,
    once: call it before taking moto's lock)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    loaded = json.loads(aws_managed_policies_data)
    return {name: body.get("Document", {}) for name, body in loaded.items()}


_AWS_MANAGED = "arn:aws:iam::aws:policy/"


def _managed_document(iam_backend: Any, arn: str) -> Mapping[str, Any] | None:
    if arn.startswith(_AWS_MANAGED):
        document = aws_managed_documents().get(arn.rsplit("/", 1)[-1])
        return document if isinstance(document, Mapping) else None
    policy = (getattr(iam_backend, "managed_policies", None) or {}).get(arn)
    if policy is None:
        return None
    version = next((v for v in policy.versions if getattr(v, "is_default", False)), None)
    raw = getattr(version, "document", None) or getattr(policy, "document", None)
    if not raw:
        return None
    return _parsed(raw if isinstance(raw, str) else json.dumps(raw))


def role_documents(iam_backend: Any, role_arn: str) -> list[tuple[str, Mapping[str, Any]]]:
    """The identity policies of a role in moto's IAM (hold moto's lock): inline, attached
    managed, and the managed ARNs its template named. KeyError when moto holds no such role."""
    role = iam_backend.get_role_by_arn(role_arn)
    documents: list[tuple[str, Mapping[str, Any]]] = []
    for name, document in (role.policies or {}).items():
        text = document if isinstance(document, str) else json.dumps(document)
        documents.append((str(name), _parsed(text)))
    for policy in (getattr(role, "managed_policies", None) or {}).values():
        version = next(
            (v for v in getattr(policy, "versions", []) if getattr(v, "is_default", False)), None
        )
        raw = getattr(version, "document", None) or getattr(policy, "document", None)
        if raw:
            managed = raw if isinstance(raw, str) else json.dumps(raw)
            documents.append((str(policy.name), _parsed(managed)))
    for arn in getattr(role, "template_managed_policy_arns", None) or []:
        document = _managed_document(iam_backend, arn)
        if document is not None:
            documents.append((arn.rsplit("/", 1)[-1], document))
    return documents


def audit(
    function: str,
    requests: Sequence[Request],
    documents: Sequence[tuple[str, Mapping[str, Any]]],
    context: Mapping[str, str],
    log: DenialLog = DENIALS,
) -> list[Decision]:
    """Evaluate ``requests`` for a function's role and record the would-be denials."""
    decisions = []
    for request in requests:
        decision = evaluate(list(documents), request.action, request.resource, context)
        if not decision.allowed:
            log.record(function, request, decision.reason)
        decisions.append(decision)
    return decisions
