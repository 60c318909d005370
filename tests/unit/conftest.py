"""Shared fixtures: in-process moto, the pipeline's resources, handler loading, event files.

Every handler is imported fresh per test with that function's own environment, the way each
Lambda function runs in its own process, so settings read at import see the right variables.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import sys
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

# Before anything imports boto3 or Powertools: fake credentials, fixed region, no X-Ray daemon.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "unit",
        "POWERTOOLS_METRICS_NAMESPACE": "Streamline",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "STAGE": "test",
        "CHAOS_ENABLED": "false",
        # botocore >= 1.38 resolves DynamoDB Streams calls that name a StreamArn to the
        # account-based "<account>.streams-ddb" host, which in-process moto 5.2 does not route.
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

from moto import mock_aws
from orderflow.dal import reset_clients
from orderflow.settings import load_settings

from .support import (
    HANDLER_ENV_KEYS,
    FakeContext,
    LogCapture,
    Pipeline,
    create_pipeline,
)


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def aws() -> Iterator[None]:
    """In-process moto for every service; Lambda invocations without Docker."""
    with mock_aws(config={"lambda": {"use_docker": False}}):
        reset_clients()
        yield
    reset_clients()


@pytest.fixture
def pipeline(aws: None) -> Pipeline:
    return create_pipeline()


@pytest.fixture
def function_env(pipeline: Pipeline) -> dict[str, dict[str, str]]:
    """Each function's environment, as the stacks set it (see the contract)."""
    q = pipeline.queues
    return {
        "ingest": {
            "ORDERS_TABLE": pipeline.orders_table,
            "FAILURE_QUEUE_URL": q["ingest-failures"],
        },
        "changes": {
            "FULFILMENT_QUEUE_URL": q["fulfilment.fifo"],
            "NOTIFICATIONS_QUEUE_URL": q["notifications"],
            "FAILURE_QUEUE_URL": q["changes-failures"],
        },
        "fulfil": {"EFFECTS_TABLE": pipeline.effects_table, "DLQ_URL": q["fulfilment-dlq.fifo"]},
        "notify": {
            "NOTIFIER_FUNCTION_NAME": pipeline.notifier_function,
            "DLQ_URL": q["notifications-dlq"],
        },
        "notifier": {"EFFECTS_TABLE": pipeline.effects_table},
        "recovery": {
            "RECOVERY_TABLE": pipeline.recovery_table,
            "QUARANTINE_BUCKET": pipeline.bucket,
            "MAX_REPLAY_ATTEMPTS": "3",
        },
    }


@pytest.fixture
def load_function(
    monkeypatch: pytest.MonkeyPatch, function_env: dict[str, dict[str, str]]
) -> Iterator[Callable[..., ModuleType]]:
    """Import ``functions.<name>.handler`` fresh with that function's environment."""

    def load(name: str, **overrides: str) -> ModuleType:
        for key in HANDLER_ENV_KEYS:
            monkeypatch.delenv(key, raising=False)
        env = {"POWERTOOLS_SERVICE_NAME": name, **function_env[name], **overrides}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        load_settings.cache_clear()
        module_name = f"functions.{name}.handler"
        sys.modules.pop(module_name, None)
        return importlib.import_module(module_name)

    yield load
    load_settings.cache_clear()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    from orderflow.observability import logger

    buffer = io.StringIO()
    handler = logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(buffer)
    yield LogCapture(buffer)
    handler.setStream(previous)  # type: ignore[arg-type]
