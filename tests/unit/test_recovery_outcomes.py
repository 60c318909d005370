"""Recovery workflow tasks that settle a run: acknowledge (delete exactly the messages whose
records all ended) and summarize, and the settling rules in orderflow.recovery_outcomes."""

from __future__ import annotations

import boto3
from hypothesis import given, settings
from hypothesis import strategies as st
from orderflow.recovery_contract import Outcome
from orderflow.recovery_outcomes import item_outcome, longest_wait

from .support import fail_when, load_event, throttle


def notifications_dlq(pipeline) -> dict:
    return pipeline.source(
        "notifications-dlq",
        "sqs-dlq",
        {"type": "sqs", "queueUrl": pipeline.queues["notifications"]},
    )


def queue_counts(queue_url: str) -> tuple[int, int]:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def outcome(item: dict, result: str) -> dict:
    """One record as the replay and quarantine tasks return it."""
    return {"recordId": item["recordId"], "receiptHandle": item["receiptHandle"], "outcome": result}


def test_given_handled_records_when_acknowledged_then_each_message_is_deleted_once(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    for _ in range(12):
        pipeline.send("notifications-dlq", load_event("notifier_task"))
    dlq = notifications_dlq(pipeline)
    items = []
    for _ in range(2):
        items += recovery.drain({"source": dlq}, context)["items"]
    records = [outcome(item, "replayed") for item in items]

    out = recovery.acknowledge({"source": dlq, "records": records + records[:3]}, context)

    # the same task body twice is one record id (its task id): ids are deduplicated
    assert out == {
        "source": "notifications-dlq",
        "quarantined": [],
        "replayed": list(dict.fromkeys(r["recordId"] for r in records)),
        "failed": [],
        "deleted": 12,
    }
    assert queue_counts(dlq["queueUrl"]) == (0, 0)


def test_given_a_message_with_a_failed_record_when_acknowledged_then_only_it_is_kept(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    for _ in range(2):
        pipeline.send("notifications-dlq", load_event("notifier_task"))
    dlq = notifications_dlq(pipeline)
    first, second = (i["receiptHandle"] for i in recovery.drain({"source": dlq}, context)["items"])
    # a stream failure message expands into several records sharing its receipt handle
    records = [
        {"recordId": "r-1", "receiptHandle": first, "outcome": "replayed"},
        {"recordId": "r-2", "receiptHandle": first, "outcome": "failed"},
        {"recordId": "r-3", "receiptHandle": first, "outcome": "quarantined"},
        {"recordId": "r-4", "receiptHandle": second, "outcome": "quarantined"},
        {"recordId": "r-5", "receiptHandle": second, "outcome": "replayed"},
    ]

    out = recovery.acknowledge({"source": dlq, "records": records}, context)

    assert out == {
        "source": "notifications-dlq",
        "quarantined": ["r-3", "r-4"],
        "replayed": ["r-1", "r-5"],
        "failed": ["r-2"],
        "deleted": 1,
    }
    assert queue_counts(dlq["queueUrl"]) == (0, 1)  # the first message, still in flight


def test_given_no_records_when_acknowledged_then_empty_lists_and_nothing_deleted(
    pipeline, load_function, context, monkeypatch
):
    recovery = load_function("recovery")
    pipeline.send("notifications-dlq", load_event("notifier_task"))
    dlq = notifications_dlq(pipeline)
    fail_when(
        monkeypatch, recovery.FailureQueue, "delete", lambda *a, **k: True, AssertionError("call")
    )

    out = recovery.acknowledge({"source": dlq, "records": []}, context)

    assert out == {
        "source": "notifications-dlq",
        "quarantined": [],
        "replayed": [],
        "failed": [],
        "deleted": 0,
    }
    assert queue_counts(dlq["queueUrl"]) == (1, 0)


def test_given_only_failed_records_when_acknowledged_then_nothing_is_deleted(
    pipeline, load_function, context
):
    recovery = load_function("recovery")
    pipeline.send("notifications-dlq", load_event("notifier_task"))
    dlq = notifications_dlq(pipeline)
    items = recovery.drain({"source": dlq}, context)["items"]

    out = recovery.acknowledge(
        {"source": dlq, "records": [outcome(i, "failed") for i in items]}, context
    )

    assert (out["failed"], out["deleted"]) == ([items[0]["recordId"]], 0)
    assert queue_counts(dlq["queueUrl"]) == (0, 1)


def test_given_a_delete_error_when_acknowledged_then_outcomes_are_kept_with_the_error(
    pipeline, load_function, context, monkeypatch
):
    recovery = load_function("recovery")
    pipeline.send("notifications-dlq", load_event("notifier_task"))
    dlq = notifications_dlq(pipeline)
    items = recovery.drain({"source": dlq}, context)["items"]
    fail_when(
        monkeypatch,
        recovery.FailureQueue,
        "delete",
        lambda *a, **k: True,
        throttle("DeleteMessageBatch"),
    )

    out = recovery.acknowledge(
        {"source": dlq, "records": [outcome(i, "quarantined") for i in items]}, context
    )

    assert out["quarantined"] == [items[0]["recordId"]]
    assert out["deleted"] == 0
    assert out["error"]["Error"] == "ClientError"
    assert "ProvisionedThroughputExceededException" in out["error"]["Cause"]


def test_given_source_results_when_summarized_then_counts_and_quarantined_ids_over_sources(
    load_function, context
):
    recovery = load_function("recovery")
    sources = [
        {
            "source": "a",
            "quarantined": ["a#1"],
            "replayed": ["a#2", "a#3"],
            "failed": [],
            "deleted": 2,
        },
        {
            "source": "b",
            "quarantined": [],
            "replayed": [],
            "failed": [],
            "deleted": 0,
            "error": {"Error": "Lambda.Unknown", "Cause": "boom"},
        },
        {
            "source": "c",
            "quarantined": ["c#1", "c#2"],
            "replayed": [],
            "failed": ["c#3"],
            "deleted": 1,
        },
    ]

    out = recovery.summarize({"sources": sources}, context)

    assert out == {
        "quarantined": 3,
        "replayed": 2,
        "failed": 1,
        "errors": 1,
        "complete": False,  # the workflow fails: a record failed and a source was not drained
        "quarantinedRecords": ["a#1", "c#1", "c#2"],
        "sources": sources,
    }
    assert recovery.summarize({"sources": []}, context) == {
        "quarantined": 0,
        "replayed": 0,
        "failed": 0,
        "errors": 0,
        "complete": True,
        "quarantinedRecords": [],
        "sources": [],
    }


# --- settle_outcomes: which messages may be deleted (pure) -------------------------------


def test_given_an_unknown_or_missing_outcome_when_settled_then_treated_as_failed():
    from orderflow.recovery_outcomes import settle_outcomes

    settled = settle_outcomes(
        [
            {"recordId": "a", "receiptHandle": "m1", "outcome": "replayed"},
            {"recordId": "b", "receiptHandle": "m1", "outcome": "mystery"},
            {"recordId": "c", "receiptHandle": "m2"},
            {"recordId": "d", "receiptHandle": "m3", "outcome": "quarantined"},
        ]
    )

    assert (settled.failed, settled.deletable) == (["b", "c"], ["m3"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["r1", "r2", "r3", "r4"]),
            st.sampled_from(["m1", "m2", "m3"]),
            st.sampled_from(["quarantined", "replayed", "failed"]),
        ),
        max_size=12,
    )
)
def test_a_message_is_deletable_exactly_when_none_of_its_records_failed(rows):
    from orderflow.recovery_outcomes import settle_outcomes

    records = [{"recordId": r, "receiptHandle": m, "outcome": o} for r, m, o in rows]

    settled = settle_outcomes(records)

    expected = {m for _, m, _ in rows} - {m for _, m, o in rows if o == "failed"}
    assert set(settled.deletable) == expected
    assert len(settled.deletable) == len(expected)
    for name in ("quarantined", "replayed", "failed"):
        ids = getattr(settled, name)
        assert ids == list(dict.fromkeys(r for r, _, o in rows if o == name))


def test_an_outcome_keeps_what_acknowledge_needs_and_drops_the_payload():
    item = {
        "recordId": "r-1",
        "classification": "transient",
        "reason": "x",
        "payload": "{...}" * 1000,
        "receiptHandle": "m1",
        "attempt": 2,
        "waitSeconds": 4,
        "continuation": "rest",
    }
    assert item_outcome(item, Outcome.REPLAYED) == {
        "recordId": "r-1",
        "receiptHandle": "m1",
        "outcome": "replayed",
        "continuation": "rest",
    }
    assert item_outcome({"recordId": "r-2"}, Outcome.FAILED)["continuation"] == ""


def test_the_backoff_is_the_longest_any_transient_item_asks_for():
    assert longest_wait([]) == 0
    assert (
        longest_wait(
            [
                {"classification": "transient", "waitSeconds": 4},
                {"classification": "transient", "waitSeconds": 16},
                {"classification": "poison", "waitSeconds": 300},  # quarantined without waiting
                {"classification": "deferred"},  # no waitSeconds: failed without waiting
                {"classification": "transient"},
            ]
        )
        == 16
    )
