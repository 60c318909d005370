"""Each function's own credentials, and which function a request's access key belongs to.

On AWS an execution environment holds temporary credentials of the function's execution role
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``), and a call is
attributed to whoever signed it: CloudTrail names ``assumed-role/<role>/<function>``. The local
runtime does the same: :data:`IDENTITIES` issues one key pair per (function, role), the runtime
puts it in the function's environment, and the server attributes each request by the access key
in its signature (:func:`access_key_of`) for API-call counting and the IAM audit.

The keys are ours, not moto's: minting them through moto's STS would change IAM and STS state
outside the journal. STS GetCallerIdentity answers for them through a patch
(``sts_caller_identity_of_function_keys``). They live as long as the cloud's process: after a
restart a function's new environments get new keys. Signatures are not verified (only loopback
callers reach the cloud, see :mod:`streamline.local.server`).

Example::

    identity = IDENTITIES.for_function("ingest", "arn:aws:iam::123456789012:role/ingest-role")
    IDENTITIES.by_key(identity.access_key_id).function  # "ingest"
"""

from __future__ import annotations

import re
import secrets
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IDENTITIES", "FunctionIdentity", "IdentityRegistry", "access_key_of"]

_KEY_ALPHABET = string.ascii_uppercase + string.digits
# SigV4 header (Credential=AKID/date/region/service/aws4_request), SigV4 presigned URL
# (X-Amz-Credential=AKID/...), SigV2 presigned URL and legacy header (AWSAccessKeyId / "AWS AKID:").
_SIGV4 = re.compile(r"Credential=([A-Za-z0-9]{16,128})/")
_LEGACY = re.compile(r"^AWS ([A-Za-z0-9]{16,128}):")


@dataclass(frozen=True, slots=True)
class FunctionIdentity:
    """The credentials one function's environments run with, and whose they are."""

    function: str
    role_arn: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)

    @property
    def account(self) -> str:
        return self.role_arn.split(":")[4] if self.role_arn.count(":") >= 5 else ""

    @property
    def assumed_role_arn(self) -> str:
        """``arn:aws:sts::<account>:assumed-role/<role name>/<function>``, as STS names it."""
        role_name = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{self.function}"

    def environment(self) -> dict[str, str]:
        """The variables the Lambda runtime sets for them."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


class IdentityRegistry:
    """One :class:`FunctionIdentity` per (function, role); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_function: dict[tuple[str, str], FunctionIdentity] = {}
        self._by_key: dict[str, FunctionIdentity] = {}

    def for_function(self, function: str, role_arn: str) -> FunctionIdentity:
        with self._lock:
            known = self._by_function.get((function, role_arn))
            if known is not None:
                return known
            while True:  # temporary keys start ASIA, as STS's do
                key = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
                if key not in self._by_key:
                    break
            identity = FunctionIdentity(
                function=function,
                role_arn=role_arn,
                access_key_id=key,
                secret_access_key=secrets.token_urlsafe(30)[:40],
                session_token=secrets.token_urlsafe(96),
            )
            # An older identity of the function (its role was replaced) keeps its key: calls
            # from environments still running with it stay attributed.
            self._by_function[(function, role_arn)] = identity
            self._by_key[key] = identity
            return identity

    def by_key(self, access_key_id: str | None) -> FunctionIdentity | None:
        if not access_key_id:
            return None
        return self._by_key.get(access_key_id)

    def caller(self, headers: Mapping[str, Any], query: Mapping[str, Any] | None) -> str | None:
        """The function a request came from, by its access key; None for anyone else."""
        identity = self.by_key(access_key_of(headers, query))
        return identity.function if identity is not None else None


def access_key_of(headers: Mapping[str, Any], query: Mapping[str, Any] | None = None) -> str | None:
    """The access key a request was signed with: the Authorization header, else a presigned
    URL's ``X-Amz-Credential`` or ``AWSAccessKeyId``. Never raises.

    Example::

        >>> access_key_of({"Authorization": "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLEKEY000001/"
        ...                "20261207/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0"})
        'ASIAEXAMPLEKEY000001'
    """
    authorization = _first(headers.get("Authorization") or headers.get("authorization"))
    if authorization:
        found = _SIGV4.search(authorization) or _LEGACY.match(authorization)
        if found:
            return found.group(1)
    for name in ("X-Amz-Credential", "AWSAccessKeyId"):
        value = _first((query or {}).get(name))
        if value:
            return value.split("/", 1)[0]
    return None


def _first(value: Any) -> str | None:
    """A header or query value, which moto may hold as a list."""
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


#: The cloud's registry (process-global, like moto's state).
IDENTITIES = IdentityRegistry()
