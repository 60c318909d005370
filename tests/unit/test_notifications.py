"""The notifier's payload (orderflow.notifications): notify's batches and single tasks."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orderflow.errors import PoisonRecordError
from orderflow.notifications import (
    MAX_BATCH_BYTES,
    MAX_BATCH_NOTIFICATIONS,
    Notification,
    encode_batches,
    is_batch,
    read_notifications,
)

from .support import load_event

TASK = json.dumps(load_event("notifier_task"))
HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"


def test_a_batch_round_trips_tasks_and_trace_headers_in_order() -> None:
    entries = [(TASK, HEADER), (TASK.replace("o-1", "o-2"), None)]

    [(payload, count)] = encode_batches(entries)

    assert count == 2
    document = json.loads(payload)
    assert is_batch(document)
    assert read_notifications(document) == [
        Notification(json.loads(TASK), HEADER),
        Notification(json.loads(TASK.replace("o-1", "o-2")), None),
    ]


def test_anything_that_is_not_a_batch_is_one_task_as_it_came() -> None:
    for payload in (load_event("notifier_task"), [], "text", None, {"kind": "notify"}):
        assert read_notifications(payload) == [Notification(payload)]


def test_batches_split_at_the_count_and_the_byte_limit() -> None:
    assert [n for _, n in encode_batches([(TASK, HEADER)] * 250)] == [100, 100, 50]
    big = json.dumps({"text": "x" * 70_000})  # three fit in 240 KiB, four do not
    sized = encode_batches([(big, None)] * 9)
    assert [n for _, n in sized] == [3, 3, 3]
    assert all(len(payload) <= MAX_BATCH_BYTES for payload, _ in sized)
    assert encode_batches([]) == []


def test_a_trace_header_that_is_not_one_is_dropped_not_refused() -> None:
    batch = {
        "kind": "notify-batch",
        "notifications": [{"task": {}, "traceHeader": "x" * 600}, {"task": {}, "traceHeader": 7}],
    }
    assert [n.trace_header for n in read_notifications(batch)] == [None, None]


@pytest.mark.parametrize(
    "batch",
    [
        {"kind": "notify-batch"},
        {"kind": "notify-batch", "notifications": None},
        {"kind": "notify-batch", "notifications": [None]},
        {"kind": "notify-batch", "notifications": [{}] * (MAX_BATCH_NOTIFICATIONS + 1)},
        {"kind": "notify-batch", "notifications": [{"task": 1}], "tasks": []},
    ],
)
def test_a_malformed_batch_is_poison_with_a_reason(batch: dict) -> None:
    with pytest.raises(PoisonRecordError, match="notification batch invalid"):
        read_notifications(batch)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.text(max_size=8), st.text(max_size=40), max_size=4),
            st.none() | st.text(min_size=1, max_size=80),
        ),
        max_size=230,
    )
)
def test_every_entry_comes_back_once_in_order(entries: list[tuple[dict, str | None]]) -> None:
    encoded = encode_batches((json.dumps(task), header) for task, header in entries)
    back = [n for payload, _ in encoded for n in read_notifications(json.loads(payload))]
    assert [(n.task, n.trace_header) for n in back] == entries
    assert sum(count for _, count in encoded) == len(entries)
