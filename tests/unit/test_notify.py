"""notify: SQS notifications -> async invoke of notifier; notifier: effect once, named errors."""

from __future__ import annotations

import json

import pytest
from orderflow.dal import FunctionInvoker
from orderflow.errors import PoisonRecordError, TransientError

from .support import expected_response, fail_when, load_event, throttle

FIXTURE = "sqs_notifications"


def test_given_good_poison_and_transient_tasks_when_notified_then_exact_failures_and_invokes(
    pipeline, load_function, context, monkeypatch
):
    notify = load_function("notify")
    invoked: list[tuple[str, dict]] = []
    original = FunctionInvoker.invoke_async

    def spy(self, function_name, payload):
        invoked.append((function_name, json.loads(payload)))
        return original(self, function_name, payload)

    monkeypatch.setattr(FunctionInvoker, "invoke_async", spy)
    fail_when(
        monkeypatch,
        FunctionInvoker,
        "invoke_async",
        lambda self, name, payload: b'"o-2"' in payload,
        throttle("Invoke"),
    )

    response = notify.handler(load_event(FIXTURE), context)

    assert response == expected_response(FIXTURE)
    assert [(name, task["order_id"]) for name, task in invoked] == [
        ("notifier", "o-1"),
        ("notifier", "o-3"),
    ]
    dead = [json.loads(m["Body"]) for m in pipeline.messages("notifications-dlq")]
    assert [envelope["record"]["messageId"] for envelope in dead] == ["n3"]
    assert dead[0]["reason"].startswith("NotificationTask invalid")


def test_given_a_task_when_notifier_runs_twice_then_one_effect(pipeline, load_function, context):
    notifier = load_function("notifier")
    task = load_event("notifier_task")

    first = notifier.handler(task, context)
    second = notifier.handler(task, context)

    assert first == expected_response("notifier_task")
    assert second == {**first, "created": False}
    assert pipeline.effect_ids() == ["notify#o-1#PAID"]


def test_given_a_bad_task_when_notifier_runs_then_poison_error_for_the_destination(
    pipeline, load_function, context
):
    notifier = load_function("notifier")

    with pytest.raises(PoisonRecordError, match="status"):
        notifier.handler({**load_event("notifier_task"), "status": "LOST"}, context)


def test_given_a_throttled_table_when_notifier_runs_then_transient_error(
    pipeline, load_function, context, monkeypatch
):
    notifier = load_function("notifier")
    fail_when(monkeypatch, notifier.effects, "put_once", lambda *a, **k: True, throttle())

    with pytest.raises(TransientError, match="ProvisionedThroughputExceeded"):
        notifier.handler(load_event("notifier_task"), context)
