"""notify: SQS notifications -> one async invoke of notifier per batch; notifier: each effect
once, named errors, a batch or one task."""

from __future__ import annotations

import json

import pytest
from orderflow.dal import FunctionInvoker
from orderflow.errors import PoisonRecordError, TransientError

from .support import expected_response, fail_when, load_event, throttle

FIXTURE = "sqs_notifications"


def _spy_invokes(monkeypatch) -> list[tuple[str, dict]]:
    invoked: list[tuple[str, dict]] = []
    original = FunctionInvoker.invoke_async

    def spy(self, function_name, payload):
        invoked.append((function_name, json.loads(payload)))
        return original(self, function_name, payload)

    monkeypatch.setattr(FunctionInvoker, "invoke_async", spy)
    return invoked


def test_given_good_and_poison_tasks_when_notified_then_one_invoke_for_the_batch(
    pipeline, load_function, context, monkeypatch
):
    notify = load_function("notify")
    invoked = _spy_invokes(monkeypatch)

    response = notify.handler(load_event(FIXTURE), context)

    assert response == expected_response(FIXTURE)
    [(name, batch)] = invoked
    assert name == "notifier" and batch["kind"] == "notify-batch"
    tasks = [entry["task"] for entry in batch["notifications"]]
    assert [task["order_id"] for task in tasks] == ["o-1", "o-2", "o-3"]  # batch order
    records = {r["messageId"]: json.loads(r["body"]) for r in load_event(FIXTURE)["Records"]}
    assert tasks == [records["n1"], records["n2"], records["n4"]]  # each task as it came
    dead = [json.loads(m["Body"]) for m in pipeline.messages("notifications-dlq")]
    assert [envelope["record"]["messageId"] for envelope in dead] == ["n3"]
    assert dead[0]["reason"].startswith("NotificationTask invalid")


def test_given_the_invoke_fails_when_notified_then_exactly_its_records_are_retried(
    pipeline, load_function, context, monkeypatch
):
    notify = load_function("notify")
    fail_when(monkeypatch, FunctionInvoker, "invoke_async", lambda *a: True, throttle("Invoke"))

    response = notify.handler(load_event(FIXTURE), context)

    # the poison record is settled (quarantined), the valid ones come back
    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in ("n1", "n2", "n4")]}
    assert len(pipeline.messages("notifications-dlq")) == 1
    assert len(notify.outbox) == 0  # nothing left over for the next batch


def test_given_more_than_a_batch_when_flushed_then_a_failed_invoke_fails_only_its_records():
    from orderflow.dal import NotificationOutbox
    from orderflow.events import NotificationTask

    calls: list[int] = []

    class Invoker:
        def invoke_async(self, name: str, payload: bytes) -> int:
            calls.append(len(json.loads(payload)["notifications"]))
            if len(calls) == 2:
                raise RuntimeError("throttled")
            return 202

    outbox = NotificationOutbox("notifier", invoker=Invoker())  # type: ignore[arg-type]
    task = NotificationTask.model_validate(load_event("notifier_task"))
    for number in range(150):
        outbox.add(task, record_id=f"r{number}", trace_header=None)
    outbox.discard("r0")

    failed = outbox.flush()

    assert calls == [100, 49]
    assert failed == {f"r{number}" for number in range(101, 150)}
    assert len(outbox) == 0


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


def _batch(*tasks: dict, header: str | None = None) -> dict:
    entries = [{"task": task, **({"traceHeader": header} if header else {})} for task in tasks]
    return {"kind": "notify-batch", "notifications": entries}


def _task(order_id: str, status: str = "PAID") -> dict:
    return {**load_event("notifier_task"), "order_id": order_id, "status": status}


def test_given_a_batch_when_notifier_runs_twice_then_each_effect_once(
    pipeline, load_function, context
):
    notifier = load_function("notifier")
    batch = _batch(_task("o-1"), _task("o-2"), _task("o-1"))

    first = notifier.handler(batch, context)
    second = notifier.handler(batch, context)

    assert [(e["effect_id"], e["created"]) for e in first["effects"]] == [
        ("notify#o-1#PAID", True),
        ("notify#o-2#PAID", True),
        ("notify#o-1#PAID", False),  # the same notification twice in a batch: one effect
    ]
    assert not any(e["created"] for e in second["effects"])
    assert pipeline.effect_ids() == ["notify#o-1#PAID", "notify#o-2#PAID"]


def test_given_a_batch_with_a_poison_task_when_notifier_runs_then_the_rest_go_and_it_fails(
    pipeline, load_function, context
):
    notifier = load_function("notifier")
    batch = _batch(_task("o-1"), _task("o-2", status="LOST"), _task("o-3"))

    with pytest.raises(PoisonRecordError, match=r"1 of 3 failed; .*status"):
        notifier.handler(batch, context)

    assert pipeline.effect_ids() == ["notify#o-1#PAID", "notify#o-3#PAID"]


def test_given_a_batch_with_a_transient_failure_when_notifier_runs_then_transient_wins(
    pipeline, load_function, context, monkeypatch
):
    notifier = load_function("notifier")
    fail_when(
        monkeypatch,
        notifier.effects,
        "put_once",
        lambda effect_id, **k: effect_id == "notify#o-3#PAID",
        throttle(),
    )
    batch = _batch(_task("o-1", status="LOST"), _task("o-2"), _task("o-3"))

    # a retry may still succeed: the error recovery reads says transient, not poison
    with pytest.raises(TransientError, match="2 of 3 failed"):
        notifier.handler(batch, context)

    assert pipeline.effect_ids() == ["notify#o-2#PAID"]


@pytest.mark.parametrize(
    "payload",
    [
        {"kind": "notify-batch"},
        {"kind": "notify-batch", "notifications": []},
        {"kind": "notify-batch", "notifications": "o-1"},
        {"kind": "notify-batch", "notifications": [{"traceHeader": "Root=1"}]},
        {"kind": "notify-batch", "notifications": [{"task": {}}], "extra": 1},
        {"kind": "notify-batch", "notifications": [{"task": {}}] * 101},
    ],
)
def test_given_a_malformed_batch_when_notifier_runs_then_poison_and_nothing_done(
    pipeline, load_function, context, payload
):
    notifier = load_function("notifier")

    with pytest.raises(PoisonRecordError, match="notification batch invalid"):
        notifier.handler(payload, context)

    assert pipeline.effect_ids() == []


# -- tracing: each notification in its own order's trace -----------------------------------------

ROOT_A = "1-5759e988-bd862e3fe1be46a994272793"
ROOT_B = "1-5759e999-00000000000000000000beef"
OWN = "Root=1-5759e9aa-0000000000000000000000aa;Parent=1111111111111111;Sampled=1"


class _Emitter:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, document) -> None:
        self.sent.append(dict(document))


def _traced(module, monkeypatch, name: str) -> _Emitter:
    import orderflow.batch
    from orderflow.tracing import LinkedTraces

    emitter = _Emitter()
    traces = LinkedTraces(emitter=emitter, name=name, clock=lambda: 100.0, current=lambda: OWN)
    # the handler's hops and the batch entry point's flush must see the same instance
    for holder in (module, orderflow.batch):
        monkeypatch.setattr(holder, "linked_traces", traces)
    return emitter


def test_given_a_traced_batch_when_notifier_runs_then_each_notification_joins_its_orders_trace(
    pipeline, load_function, context, monkeypatch
):
    notifier = load_function("notifier")
    emitter = _traced(notifier, monkeypatch, "notifier")
    batch = _batch(_task("o-1"))
    batch["notifications"] += [
        {
            "task": _task("o-2", status="LOST"),
            "traceHeader": f"Root={ROOT_B};Parent=bbbbbbbbbbbbbbbb;Sampled=1",
        }
    ]
    batch["notifications"][0]["traceHeader"] = f"Root={ROOT_A};Parent=aaaaaaaaaaaaaaaa;Sampled=1"

    with pytest.raises(PoisonRecordError):
        notifier.handler(batch, context)

    by_trace = {doc["trace_id"]: doc for doc in emitter.sent}
    assert set(by_trace) == {ROOT_A, ROOT_B}  # one segment in each order's trace
    assert by_trace[ROOT_A]["parent_id"] == "aaaaaaaaaaaaaaaa"
    assert "error" not in by_trace[ROOT_A]
    assert by_trace[ROOT_B]["error"] is True  # the poison notification, marked where it belongs


def test_given_traced_records_when_notified_then_each_carries_notifys_segment_in_its_trace(
    pipeline, load_function, context, monkeypatch
):
    notify = load_function("notify")
    emitter = _traced(notify, monkeypatch, "notify")
    invoked = _spy_invokes(monkeypatch)
    event = load_event(FIXTURE)
    event["Records"] = [r for r in event["Records"] if r["messageId"] in ("n1", "n2")]
    roots = [ROOT_A, ROOT_B]
    for record, root in zip(event["Records"], roots, strict=True):
        record["attributes"]["AWSTraceHeader"] = f"Root={root};Parent=cccccccccccccccc;Sampled=1"

    assert notify.handler(event, context) == {"batchItemFailures": []}

    [(_, batch)] = invoked
    headers = [entry["traceHeader"] for entry in batch["notifications"]]
    segments = {doc["trace_id"]: doc["id"] for doc in emitter.sent}
    # the notifier continues under notify's own segment in each order's trace
    assert headers == [f"Root={root};Parent={segments[root]};Sampled=1" for root in roots]
