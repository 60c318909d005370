"""The write-ahead journal's file format: order, torn tails, segments and trimming."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamline.local.durability import is_read_only
from streamline.local.journal import Journal, JournalError


def test_entries_come_back_in_order_after_a_given_seq(tmp_path: Path) -> None:
    journal = Journal(tmp_path, sync="never")
    journal.open(after=0)
    for n in range(5):
        journal.append("http", float(n), {"n": n})
    journal.close()

    entries = list(Journal(tmp_path).read(after=2))

    assert [(e.seq, e.data["n"]) for e in entries] == [(3, 2), (4, 3), (5, 4)]


def _one_segment(folder: Path, *data: str) -> Path:
    """A journal of ``data`` (one entry each) written and closed; its only segment."""
    journal = Journal(folder, sync="never")
    journal.open(after=0)
    for n, item in enumerate(data, 1):
        journal.append("http", float(n), item)
    journal.close()
    (segment,) = journal.segments()
    return segment


def test_a_torn_last_frame_ends_the_journal_there(tmp_path: Path) -> None:
    # Given a crash in the middle of writing the last frame
    segment = _one_segment(tmp_path, "first", "second")
    segment.write_bytes(segment.read_bytes()[:-3])

    # Then what was whole is read, and nothing after it
    assert [e.data for e in Journal(tmp_path).read(after=0)] == ["first"]


def test_a_corrupt_frame_is_not_taken_for_data(tmp_path: Path) -> None:
    segment = _one_segment(tmp_path, "kept", "flipped")
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))

    assert [e.data for e in Journal(tmp_path).read(after=0)] == ["kept"]


def test_rotation_starts_a_segment_and_trimming_drops_only_covered_ones(tmp_path: Path) -> None:
    journal = Journal(tmp_path, sync="never")
    journal.open(after=0)
    journal.append("call", 1.0, "a")
    journal.append("call", 2.0, "b")
    covered = journal.rotate()  # a snapshot covers 1..2
    journal.append("call", 3.0, "c")

    assert covered == 2 and len(journal.segments()) == 2
    assert journal.drop_through(covered) == 1
    assert [e.data for e in journal.read(after=0)] == ["c"]
    assert journal.last_seq() == 3
    journal.close()


def test_a_journal_that_is_not_open_refuses_to_take_a_change(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="not open"):
        Journal(tmp_path).append("http", 0.0, {})


def test_an_unpicklable_change_is_a_clear_error(tmp_path: Path) -> None:
    journal = Journal(tmp_path, sync="never")
    journal.open(after=0)
    with pytest.raises(JournalError, match="cannot journal"):
        journal.append("call", 0.0, lambda: None)
    journal.close()


@pytest.mark.parametrize(
    ("method", "target", "body", "read_only"),
    [
        ("POST", "DynamoDB_20120810.GetItem", b"{}", True),
        ("POST", "DynamoDB_20120810.PutItem", b"{}", False),
        ("POST", "Kinesis_20131202.GetRecords", b"{}", True),
        ("POST", "AmazonSQS.ReceiveMessage", b"{}", False),  # receipts and counts change
        ("POST", "AmazonSQS.ListQueues", b"{}", True),
        ("POST", None, b"Action=DescribeStacks&Version=2010-05-15", True),
        ("POST", None, b"Action=CreateStack&Version=2010-05-15", False),
        ("GET", None, b"", True),
        ("PUT", None, b"bytes of an object", False),
        ("POST", "AWSStepFunctions.StartExecution", b"{}", False),
    ],
)
def test_only_requests_that_can_change_nothing_skip_the_journal(
    method: str, target: str | None, body: bytes, read_only: bool
) -> None:
    assert is_read_only(method, "/", "", target, body) is read_only


def test_reopening_after_a_torn_first_frame_keeps_what_comes_next(tmp_path: Path) -> None:
    """A crash while writing a segment's first entry leaves a tear where the next entries go."""
    journal = Journal(tmp_path, sync="never")
    journal.open(after=0)
    journal.append("http", 1.0, "whole")
    journal.rotate()
    journal.append("http", 2.0, "torn")
    journal.close()
    second = journal.segments()[-1]
    second.write_bytes(second.read_bytes()[:-2])

    again = Journal(tmp_path, sync="never")
    again.open(after=1)  # what restore found readable
    again.append("http", 3.0, "after the crash")
    again.close()

    assert [e.data for e in Journal(tmp_path).read(after=0)] == ["whole", "after the crash"]
