"""fulfil: SQS FIFO tasks -> effects table, skipping only the failed message group."""

from __future__ import annotations

import json

from orderflow.dal import EffectsRepository

from .support import expected_response, fail_when, load_event, throttle

FIXTURE = "sqs_fifo_fulfilment"
FAILING_TASK = json.loads(load_event(FIXTURE)["Records"][1]["body"])["task_id"]


def inject_failure_in_group_a(monkeypatch, fulfil) -> None:
    # The second message of group o-A hits a throttle: later o-A messages must not run.
    calls = {"n": 0}

    def predicate(self, effect_id, **kwargs):
        if effect_id == "fulfil#o-A":
            calls["n"] += 1
            return calls["n"] == 2
        return False

    fail_when(monkeypatch, EffectsRepository, "put_once", predicate, throttle())


def test_given_a_failure_in_group_a_when_processed_then_later_a_fail_and_group_b_continues(
    pipeline, load_function, context, monkeypatch, logs
):
    fulfil = load_function("fulfil")
    inject_failure_in_group_a(monkeypatch, fulfil)

    response = fulfil.handler(load_event(FIXTURE), context)

    assert response == expected_response(FIXTURE)
    assert pipeline.effect_ids() == ["fulfil#o-A", "fulfil#o-B"]
    messages = [w["message"] for w in logs.warnings()]
    assert messages.count("Record failed; reported for retry") == 1
    assert "Records skipped after an earlier failure in their message group" in messages


def test_given_poison_in_group_b_when_processed_then_it_goes_to_the_fifo_dlq_in_its_group(
    pipeline, load_function, context
):
    fulfil = load_function("fulfil")

    response = fulfil.handler(load_event(FIXTURE), context)

    assert response == {"batchItemFailures": []}
    dead = pipeline.messages("fulfilment-dlq.fifo")
    assert len(dead) == 1
    assert dead[0]["Attributes"]["MessageGroupId"] == "o-B"
    envelope = json.loads(dead[0]["Body"])
    assert envelope["record"]["messageId"] == "b2"
    assert envelope["source"]["kind"] == "SQS_FIFO"
    assert "task_id" in envelope["reason"]


def test_given_the_same_batch_twice_when_processed_then_one_effect_per_order(
    pipeline, load_function, context
):
    fulfil = load_function("fulfil")

    fulfil.handler(load_event(FIXTURE), context)
    fulfil.handler(load_event(FIXTURE), context)

    assert pipeline.effect_ids() == ["fulfil#o-A", "fulfil#o-B"]
