"""partial_batch_handler(deferred=...): work records defer to the end of the batch.

A fake outbox stands in for ``orderflow.dal.TaskOutbox``; the events are the unit fixtures (the
record function ignores their bodies and works from record ids alone).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from orderflow.batch import BatchHandler, Source, current_record_id, partial_batch_handler
from orderflow.errors import PoisonRecordError, TransientError

from .support import FakeContext, load_event

STREAM = "dynamodb_order_changes"  # sequence numbers 100000000000000000001..6
FIFO = "sqs_fifo_fulfilment"  # a1 a2 (o-A), b1 (o-B), a3 (o-A), b2 b3 (o-B)


def seq(n: int) -> str:
    return f"10000000000000000000{n}"


class FakeOutbox:
    """Deferred work keyed by record id; ``fail`` ids come back failed, ``crash`` raises."""

    def __init__(self, fail: Iterable[str] = (), crash: bool = False) -> None:
        self.fail = set(fail)
        self.crash = crash
        self.pending: dict[str, list[str]] = {}
        self.discarded: list[str] = []
        self.done: list[str] = []

    def defer(self, work: str) -> None:
        self.pending.setdefault(current_record_id(), []).append(work)

    def discard(self, record_id: str) -> None:
        self.discarded.append(record_id)
        self.pending.pop(record_id, None)

    def flush(self) -> set[str]:
        pending, self.pending = self.pending, {}
        if self.crash:
            raise ConnectionError("queue unreachable")
        for record_id, works in pending.items():
            if record_id not in self.fail:
                self.done.extend(works)
        return set(self.fail)  # may name records it never saw: the handler must ignore those


class FakeSink:
    def __init__(self) -> None:
        self.envelopes: list[dict[str, Any]] = []

    def send(
        self, envelope: Any, *, group_id: str | None = None, dedup_id: str | None = None
    ) -> str:
        self.envelopes.append(dict(envelope))
        return "m-1"


def stream_handler(
    outbox: FakeOutbox | None,
    *,
    transient: Iterable[str] = (),
    poison: Iterable[str] = (),
    source: Source = Source.DYNAMODB_STREAMS,
) -> BatchHandler[Any]:
    """Defers one piece of work per record, then raises for the chosen record ids."""
    transient, poison = set(transient), set(poison)

    @partial_batch_handler(source=source, sink=FakeSink(), deferred=outbox)
    def handler(record: Any) -> None:
        record_id = current_record_id()
        if outbox is not None:
            outbox.defer(f"work-of-{record_id}")
        if record_id in transient:
            raise TransientError("throttled")
        if record_id in poison:
            raise PoisonRecordError("bad field")

    return handler


def failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_given_deferred_work_failing_for_two_records_when_flushed_then_they_become_item_failures():
    outbox = FakeOutbox(fail={seq(2), seq(5)})

    result = stream_handler(outbox).process(load_event(STREAM))

    assert failures(result.response) == [seq(2), seq(5)]
    assert (result.processed, result.failed, result.poisoned) == (4, 2, 0)
    assert result.deferred_failed == 2
    assert outbox.done == [f"work-of-{seq(n)}" for n in (1, 3, 4, 6)]


class SizedOutbox(FakeOutbox):
    """Like TaskOutbox and NotificationOutbox: sized, so falsy while nothing is pending."""

    def __len__(self) -> int:
        return sum(len(works) for works in self.pending.values())


def test_given_an_empty_sized_outbox_when_the_first_records_work_fails_then_it_is_retried():
    # Regression: an outbox empty before the first record was taken for "no deferred work",
    # so that record's id was never kept and its failed work was acknowledged: lost.
    outbox = SizedOutbox(fail={seq(1)})

    result = stream_handler(outbox).process(load_event(STREAM))

    assert failures(result.response) == [seq(1)]
    assert result.deferred_failed == 1


def test_given_records_that_raise_when_processed_then_their_deferred_work_is_discarded():
    outbox = FakeOutbox()

    result = stream_handler(outbox, poison={seq(2)}, transient={seq(4)}).process(load_event(STREAM))

    assert outbox.discarded == [seq(2), seq(4)]
    assert f"work-of-{seq(2)}" not in outbox.done
    assert f"work-of-{seq(4)}" not in outbox.done
    assert failures(result.response) == [seq(4)]
    assert (result.processed, result.failed, result.poisoned) == (4, 1, 1)


def test_given_poison_after_a_failed_record_on_a_stream_then_it_is_redelivered_not_sent():
    # The mapping redelivers everything from the failed record on: an envelope sent now would
    # be sent again with the redelivery.
    sink = FakeSink()
    outbox = FakeOutbox()

    @partial_batch_handler(source=Source.DYNAMODB_STREAMS, sink=sink, deferred=outbox)
    def handler(record: Any) -> None:
        if current_record_id() == seq(3):
            raise TransientError("throttled")
        if current_record_id() == seq(5):
            raise PoisonRecordError("bad field")

    result = handler.process(load_event(STREAM))

    assert failures(result.response) == [seq(3), seq(5)]
    assert sink.envelopes == []
    assert (result.processed, result.failed, result.poisoned) == (4, 2, 0)


def test_given_deferred_work_failing_for_a_record_that_already_failed_then_it_is_listed_once():
    outbox = FakeOutbox(fail={seq(3), seq(6)})

    result = stream_handler(outbox, transient={seq(3)}).process(load_event(STREAM))

    assert failures(result.response) == [seq(3), seq(6)]
    assert (result.processed, result.failed) == (4, 2)


def test_given_a_flush_that_raises_when_processed_then_every_completed_record_fails():
    outbox = FakeOutbox(crash=True)

    result = stream_handler(outbox, poison={seq(2)}, transient={seq(5)}).process(load_event(STREAM))

    # Never acknowledged without its work: all but the poisoned one (its envelope is its copy).
    assert sorted(failures(result.response)) == [seq(n) for n in (1, 3, 4, 5, 6)]
    assert (result.processed, result.failed, result.poisoned) == (0, 5, 1)


def test_given_an_unknown_id_from_the_flush_when_processed_then_it_is_not_reported():
    outbox = FakeOutbox(fail={"not-in-this-batch"})

    result = stream_handler(outbox).process(load_event(STREAM))

    assert failures(result.response) == []
    assert (result.processed, result.failed) == (6, 0)


def test_given_a_fifo_source_when_a_records_work_fails_then_the_later_records_of_its_group_fail():
    outbox = FakeOutbox(fail={"a2"})

    result = stream_handler(outbox, source=Source.SQS_FIFO).process(load_event(FIFO))

    # a3 follows a2 in group o-A: acknowledging it would let it overtake a2's retry.
    assert failures(result.response) == ["a2", "a3"]
    assert (result.processed, result.failed) == (4, 2)


def test_given_no_deferred_work_when_processed_then_the_outcome_is_unchanged():
    result = stream_handler(None, poison={seq(2)}, transient={seq(5)}).process(load_event(STREAM))

    assert failures(result.response) == [seq(5)]
    assert (result.processed, result.failed, result.poisoned, result.deferred_failed) == (
        4,
        1,
        1,
        0,
    )


class Crash(BaseException):
    """Escapes the batch processor, as a failure of the processor itself would."""


def test_given_a_batch_that_crashes_when_processed_then_no_deferred_work_is_left_behind():
    outbox = FakeOutbox()

    @partial_batch_handler(source=Source.DYNAMODB_STREAMS, deferred=outbox)
    def handler(record: Any) -> None:
        outbox.defer("work")
        if current_record_id() == seq(3):
            raise Crash

    with pytest.raises(Crash):
        handler.process(load_event(STREAM))

    assert outbox.pending == {}
    assert outbox.done == []


def test_given_the_lambda_entry_when_deferred_work_fails_then_no_group_skip_is_logged(logs):
    outbox = FakeOutbox(fail={seq(2)})

    response = stream_handler(outbox)(load_event(STREAM), FakeContext())

    assert failures(response) == [seq(2)]
    assert not [w for w in logs.warnings() if w["message"].startswith("Records skipped")]


def test_given_no_record_running_when_the_record_id_is_asked_then_it_raises():
    with pytest.raises(RuntimeError, match="outside a batch record"):
        current_record_id()
