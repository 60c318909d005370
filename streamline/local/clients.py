"""boto3 clients for a local endpoint, with the test credentials: one factory for the CLI, the
engines that call the cloud over HTTP and the test harnesses.

Example::

    sqs = make_client("sqs", "http://localhost:4566")
"""

from __future__ import annotations

from typing import Any

from streamline.local.server import REGION

__all__ = ["TEST_CREDENTIALS", "make_client"]

TEST_CREDENTIALS: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}


def make_client(
    service: str,
    endpoint_url: str,
    *,
    read_timeout: float | None = None,
    max_attempts: int | None = None,
) -> Any:
    """A boto3 client for the local endpoint with the test credentials.

    ``read_timeout`` (seconds) bounds a call to a cloud that stopped answering, with one retry
    (status commands use it: a hung cloud is an error in seconds, not minutes).
    ``max_attempts`` overrides the retries (1: none). Each client gets a session of its own:
    boto3's default session is not safe to build clients from on several threads.
    """
    import boto3
    from botocore.config import Config

    if read_timeout is None:
        config = Config(retries={"mode": "standard", "max_attempts": max_attempts or 3})
    else:
        config = Config(
            connect_timeout=min(5.0, read_timeout),
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts or 2},
        )
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=config,
    )
