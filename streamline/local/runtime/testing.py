"""Helpers for testing the runtime and the async engine against a real (embedded) moto server.

Example::

    with local_moto() as moto:
        lam = moto.client("lambda")
        create_function(lam, "echo", {"app.py": "def handler(e, c):\\n    return e\\n"})
        runner = FunctionRunner(moto.backends, tmp_path, moto.endpoint_url)
"""

from __future__ import annotations

import io
import textwrap
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PRINTER",
    "ROLE_ARN",
    "LocalMoto",
    "create_function",
    "ensure_iam_role",
    "local_moto",
    "make_zip",
]

ROLE_ARN = "arn:aws:iam::123456789012:role/lambda-role"

# A function that prints each event it gets: its delivery shows in its log group.
PRINTER = {
    "app.py": """
    import json
    def handler(event, context):
        print("delivered " + json.dumps(event))
        return {"ok": True}
    """
}


def make_zip(files: dict[str, str]) -> bytes:
    """An in-memory zip of ``{path: source}`` (sources are dedented)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, source in files.items():
            archive.writestr(path, textwrap.dedent(source))
    return buffer.getvalue()


def create_function(
    lambda_client: Any,
    name: str,
    files: dict[str, str],
    *,
    handler: str = "app.handler",
    runtime: str = "python3.12",
    role: str = ROLE_ARN,
    **kwargs: Any,
) -> str:
    """Create a function from source files; returns its ARN."""
    response = lambda_client.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=role,
        Handler=handler,
        Code={"ZipFile": make_zip(files)},
        **kwargs,
    )
    return str(response["FunctionArn"])


@dataclass
class LocalMoto:
    """A running embedded moto server and in-process access to its backends."""

    endpoint_url: str
    backends: Any

    def client(self, service: str) -> Any:
        from streamline.local.clients import make_client

        return make_client(service, self.endpoint_url)


@contextmanager
def local_moto() -> Iterator[LocalMoto]:
    """Start the project's embedded moto server (``server.MotoServer``) on a free port."""
    from streamline.local.server import MotoServer

    server = MotoServer(port=None)
    server.start()
    try:
        ensure_iam_role(server.endpoint_url)
        yield LocalMoto(endpoint_url=server.endpoint_url, backends=server.backends)
    finally:
        server.stop()


def ensure_iam_role(endpoint_url: str) -> None:
    """moto's CreateFunction checks the role exists."""
    import json

    from streamline.local.clients import make_client

    iam = make_client("iam", endpoint_url)
    with suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(
            RoleName="lambda-role",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )
