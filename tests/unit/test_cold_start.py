"""Cold start: what importing a batch handler loads, and the garbage collector around it.

Each case imports one handler in a fresh interpreter, as a Lambda INIT does, with tracing on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_NAME": "cold-start",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    "POWERTOOLS_SERVICE_NAME": "cold-start",
    "POWERTOOLS_METRICS_NAMESPACE": "Streamline",
    "STAGE": "test",
    "CHAOS_ENABLED": "false",
    "ORDERS_TABLE": "orders",
    "EFFECTS_TABLE": "effects",
    "FAILURE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/failures",
    "DLQ_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/dlq.fifo",
    "FULFILMENT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/fulfilment.fifo",
    "NOTIFICATIONS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/notifications",
    "NOTIFIER_FUNCTION_NAME": "notifier",
}

PROBE = """
import gc, json, sys
PREFIXES = ("orderflow", "aws_lambda_powertools")
import {module}
print(json.dumps({{
    "gc_enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "modules": sorted(m for m in sys.modules if m.startswith(PREFIXES)),
}}))
"""


def cold_import(module: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_"))}
    env |= LAMBDA_ENV | {"PYTHONPATH": str(FUNCTIONS), "LAMBDA_TASK_ROOT": str(FUNCTIONS)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=FUNCTIONS,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["ingest", "changes", "fulfil", "notify"])
def test_given_a_batch_handler_when_imported_cold_then_it_loads_only_what_it_runs(name):
    probe = cold_import(f"{name}.handler")

    modules = set(probe["modules"])  # type: ignore[arg-type]
    # Powertools' batch types build its parser's pydantic models (~30 ms) when pydantic is
    # already imported at that point: the batch utility must be imported before the schema.
    assert "aws_lambda_powertools.utilities.parser" not in modules
    assert "orderflow.recovery" not in modules
    assert "orderflow.dal.recovery" not in modules
    # The collector sat out INIT and runs again, with INIT's objects frozen.
    assert probe["gc_enabled"] is True
    assert probe["frozen"] > 10_000


def test_given_coldstart_when_begun_twice_and_ended_then_it_acts_once():
    code = """
import gc
from orderflow import coldstart
coldstart.begin(); assert not gc.isenabled()
coldstart.end(); assert gc.isenabled(); frozen = gc.get_freeze_count(); assert frozen > 0
coldstart.begin(); assert gc.isenabled()
coldstart.end(); assert gc.get_freeze_count() == frozen
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=FUNCTIONS,
        env={**os.environ, "PYTHONPATH": str(FUNCTIONS)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "ok", done.stderr
