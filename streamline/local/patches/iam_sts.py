"""IAM and STS: policy conditions evaluated as IAM does, function credentials that identify the
function, the report-only IAM audit of what functions call, and template-managed policies kept.

- ``policy_conditions_apply_only_when_true``: moto turned an unmet condition into a DENY, so the
  TLS-only statement CDK puts in every bucket policy denied all writes (S3 bucket policies are
  evaluated here, with the local endpoint's request context).
- ``sts_caller_identity_of_function_keys`` and ``iam_audit_of_function_calls``: a request signed
  with a function's keys is that function's execution role (:mod:`streamline.local.identities`,
  :mod:`streamline.local.iam_audit`); moto's own enforcement stays off.
- ``iam_role_managed_policy_arns_kept``: the audit needs the ManagedPolicyArns moto dropped.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from streamline.local import durability
from streamline.local.patches.registry import (
    install,
    moto_original,
    moto_patch,
    request_header,
    rewrite_method,
)
from streamline.local.server import ACCOUNT_ID, MOTO_LOCK

# The local endpoint is plain HTTP on loopback; it stands in for AWS's TLS endpoints, so a
# request to it is what aws:SecureTransport=true describes.
LOCAL_REQUEST_CONTEXT = {"aws:SecureTransport": "true"}


@moto_patch(
    "moto.iam.access_control:IAMPolicyStatement.is_action_permitted",
    "moto.iam.policy_conditions:CONDITION_OPERATIONS",
    "moto.s3.models:FakeBucket.get_permission",
)
def policy_conditions_apply_only_when_true() -> None:
    """A policy statement whose Condition does not hold does not apply (IAM's rule).

    moto turned any statement with an unmet condition into an explicit DENY, so the TLS-only
    statement CDK adds to every bucket ("Deny s3:* if aws:SecureTransport is false") denied all
    object writes. Bucket policies are now evaluated with the request context of the local
    endpoint (LOCAL_REQUEST_CONTEXT), unmet conditions make a statement neutral, and the
    ``Bool`` operator is evaluated (moto treated operators it lacks as always true).
    """
    from moto.iam import policy_conditions
    from moto.iam.access_control import IAMPolicyStatement

    def bool_equals(expected: list[str] | str, actual: str) -> bool:
        values = expected if isinstance(expected, list) else [expected]
        return str(actual).lower() in {str(v).lower() for v in values}

    operations: dict[str, Any] = policy_conditions.CONDITION_OPERATIONS
    operations["Bool"] = bool_equals
    from moto.s3.models import FakeBucket

    install(
        IAMPolicyStatement,
        "is_action_permitted",
        rewrite_method(
            IAMPolicyStatement,
            "is_action_permitted",
            [
                (
                    "if not self._check_conditions(incoming_condition_values):\n"
                    "            return PermissionResult.DENIED",
                    "if not self._check_conditions(incoming_condition_values):\n"
                    "            return PermissionResult.NEUTRAL",
                )
            ],
        ),
    )

    def get_permission(self: Any, action: str, resource: str) -> Any:
        from moto.iam.access_control import IAMPolicy, PermissionResult

        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = IAMPolicy(self.policy.decode())
        return policy.is_action_permitted(
            action, resource, incoming_condition_values=dict(LOCAL_REQUEST_CONTEXT)
        )

    install(FakeBucket, "get_permission", get_permission)


@moto_patch("moto.sts.models:STSBackend.get_caller_identity")
def sts_caller_identity_of_function_keys() -> None:
    """GetCallerIdentity with a function's keys answers ``assumed-role/<role>/<function>`` and
    the role's id, as STS does for an execution role (moto knew only its own keys and answered
    ``user/moto``). See :mod:`streamline.local.identities`."""
    from moto.sts.models import STSBackend

    from streamline.local.identities import IDENTITIES

    original = moto_original(STSBackend, "get_caller_identity")

    def get_caller_identity(self: Any, access_key_id: str, region: str) -> tuple[str, str, str]:
        identity = IDENTITIES.by_key(access_key_id)
        if identity is None:
            return original(self, access_key_id, region)
        role_id = "AROA" + identity.access_key_id[4:]
        with contextlib.suppress(Exception):
            from moto.iam.models import iam_backends

            role = iam_backends[identity.account]["aws"].get_role_by_arn(identity.role_arn)
            role_id = role.id
        return f"{role_id}:{identity.function}", identity.assumed_role_arn, identity.account

    install(STSBackend, "get_caller_identity", get_caller_identity)


_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/")


@moto_patch("moto.core.authorization:ActionAuthenticatorMixin._authenticate_and_authorize_action")
def iam_audit_of_function_calls() -> None:
    """Each request a function signs is checked against its execution role's policies, report
    only (see :mod:`streamline.local.iam_audit`): moto's own enforcement stays off. Every JSON,
    query and REST service (``call_action``) and S3 pass here, before moto serves them."""
    from moto.core.authorization import ActionAuthenticatorMixin

    original = moto_original(ActionAuthenticatorMixin, "_authenticate_and_authorize_action")

    def _authenticate_and_authorize_action(
        self: Any, iam_request_cls: type, resource: str = "*"
    ) -> None:
        # The audit never fails or delays a request beyond reading the role's policies.
        with contextlib.suppress(Exception):
            _audit_request(self, iam_request_cls, resource)
        original(self, iam_request_cls, resource)

    install(
        ActionAuthenticatorMixin,
        "_authenticate_and_authorize_action",
        _authenticate_and_authorize_action,
    )


def _audit_request(response: Any, iam_request_cls: type, resource: str) -> None:
    from streamline.local import iam_audit
    from streamline.local.identities import IDENTITIES, access_key_of

    if durability.replaying():
        return  # audited when it first ran
    identity = IDENTITIES.by_key(access_key_of(response.headers, response.querystring))
    if identity is None:
        return  # not a function: the CLI, CDK, tests, the engines
    authorization = request_header(response.headers, "Authorization") or ""
    scope = _SCOPE.search(authorization)
    is_s3 = iam_request_cls.__name__ == "S3IAMRequest"
    service = "s3" if is_s3 else (scope.group(2) if scope else response.service_name)
    operation = response.data.get("Action") if is_s3 else response._get_action()
    region = response.region
    account = identity.account or ACCOUNT_ID

    def param(name: str) -> Any:
        try:
            return response._get_param(name)
        except Exception:
            return None

    call = iam_audit.Call(
        service=str(service),
        operation=str(operation),
        params=param,
        region=region,
        account=account,
        path=getattr(response, "path", "") or "",
        target=request_header(response.headers, "X-Amz-Target") or "",
        resource=resource,
    )
    requests = iam_audit.requests_for(call)
    from moto.iam.models import iam_backends

    iam_audit.aws_managed_documents()  # parsed once, outside the lock

    with MOTO_LOCK:
        try:
            documents = iam_audit.role_documents(iam_backends[account]["aws"], identity.role_arn)
        except Exception:
            return  # the role is gone (replaced by a redeploy): nothing to judge by
    context = {
        "aws:SecureTransport": "true",  # AWS's endpoints are TLS; the local one stands in
        "aws:PrincipalArn": identity.role_arn,
        "aws:PrincipalAccount": account,
        "aws:RequestedRegion": region,
    }
    iam_audit.audit(identity.function, requests, documents, context)


@moto_patch(
    "moto.iam.models:Role.create_from_cloudformation_json",
    "moto.iam.models:Role.update_from_cloudformation_json",
)
def iam_role_managed_policy_arns_kept() -> None:
    """A role's template ``ManagedPolicyArns`` (CDK gives every Lambda role
    AWSLambdaBasicExecutionRole) are kept on the role, for the IAM audit to evaluate; moto
    dropped them (and AWS-managed policies exist in moto only as bundled documents)."""
    from moto.iam.models import Role

    create = moto_original(Role, "create_from_cloudformation_json").__func__
    update = moto_original(Role, "update_from_cloudformation_json").__func__

    def keep(role: Any, cloudformation_json: Any) -> Any:
        arns = (cloudformation_json.get("Properties") or {}).get("ManagedPolicyArns") or []
        role.template_managed_policy_arns = [str(a) for a in arns if isinstance(a, str)]
        return role

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
    ) -> Any:
        role = create(cls, resource_name, cloudformation_json, *args, **kwargs)
        return keep(role, cloudformation_json)

    def update_from_cloudformation_json(
        cls: Any, original: Any, new_name: str, cloudformation_json: Any, *args: Any
    ) -> Any:
        role = update(cls, original, new_name, cloudformation_json, *args)
        return keep(role, cloudformation_json)

    install(Role, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json))
    install(Role, "update_from_cloudformation_json", classmethod(update_from_cloudformation_json))
