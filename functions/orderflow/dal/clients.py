"""boto3 clients, created once per execution environment and reused by every invocation.

Creating a client costs milliseconds of CPU (endpoint resolution, service model loading), so
they are built lazily on first use and cached for the life of the environment: a function
only pays for the services it actually calls.

Example::

    >>> client("sqs").send_message(QueueUrl=url, MessageBody="{}")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

__all__ = ["client", "reset_clients"]

# Bounded timeouts and retries: a stalled call must fail the record (transient) well inside the
# function timeout instead of timing out the whole batch.
_CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "max_attempts": 3},
)


@functools.cache
def client(service_name: str) -> Any:
    """The shared boto3 client for ``service_name`` (typed ``Any`` to keep stubs optional)."""
    return boto3.session.Session().client(service_name, config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients (tests switch endpoints/credentials between cases)."""
    client.cache_clear()
