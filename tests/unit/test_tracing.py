"""orderflow.tracing: trace headers, segment documents and linked traces, without AWS."""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from typing import Any

import pytest
from orderflow.dal.xray import DaemonEmitter
from orderflow.errors import PoisonRecordError, TransientError
from orderflow.recovery import classify_payload
from orderflow.tracing import (
    LinkedTraces,
    TraceHeader,
    daemon_datagram,
    parse_daemon_address,
    segment_document,
    split_item_trace,
)

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
OTHER_ROOT = "1-5759e999-00000000000000000000beef"
UPSTREAM = f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
OWN = f"Root={OTHER_ROOT};Parent=1111111111111111;Sampled=1;Lineage=a87bd80c:1"


class FakeEmitter:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    def send(self, document: Mapping[str, Any]) -> None:
        if self.fail:
            raise OSError("daemon gone")
        self.sent.append(dict(document))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


def linked(
    emitter: FakeEmitter | None, own: str | None = OWN, errors: list[str] | None = None
) -> LinkedTraces:
    return LinkedTraces(
        emitter=emitter,
        name="changes",
        clock=Clock(),
        current=lambda: own,
        on_error=(lambda message, exc: errors.append(message)) if errors is not None else None,
    )


# -- headers ------------------------------------------------------------------------------------


def test_given_a_lambda_header_when_parsed_then_fields_round_trip_in_order():
    header = TraceHeader.parse(OWN)

    assert header == TraceHeader(OTHER_ROOT, "1111111111111111", True, (("Lineage", "a87bd80c:1"),))
    assert header is not None and header.render() == OWN


@pytest.mark.parametrize(
    "value",
    [None, "", 42, "Parent=53995c3f42cd8ad8;Sampled=1", "Root=not-a-trace;Sampled=1"],
)
def test_given_no_valid_root_when_parsed_then_there_is_no_header(value):
    assert TraceHeader.parse(value) is None


def test_given_a_bad_parent_or_undecided_sampling_when_parsed_then_those_fields_are_dropped():
    header = TraceHeader.parse(f"Root={ROOT};Parent=xyz;Sampled=?")

    assert header == TraceHeader(ROOT)
    assert header is not None and header.render() == f"Root={ROOT}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:2000", ("127.0.0.1", 2000)),
        ("tcp:127.0.0.1:2000 udp:127.0.0.2:2001", ("127.0.0.2", 2001)),
        ("tcp:127.0.0.1:2000 other", None),
        ("127.0.0.1", None),
        ("", None),
        (None, None),
    ],
)
def test_given_a_daemon_address_when_parsed_then_the_udp_endpoint_is_used(value, expected):
    assert parse_daemon_address(value) == expected


# -- the orders item ----------------------------------------------------------------------------


def test_given_an_item_with_a_trace_header_when_split_then_the_state_is_pure_schema():
    assert split_item_trace({"order_id": "o-1", "trace_header": UPSTREAM}) == (
        {"order_id": "o-1"},
        UPSTREAM,
    )
    assert split_item_trace({"order_id": "o-1"}) == ({"order_id": "o-1"}, None)
    assert split_item_trace({"order_id": "o-1", "trace_header": 7}) == ({"order_id": "o-1"}, None)
    assert split_item_trace(None) == (None, None)


def test_given_a_stream_change_with_a_trace_header_when_recovery_classifies_it_then_it_is_valid():
    image = {
        "order_id": {"S": "o-1"},
        "status": {"S": "PAID"},
        "version": {"N": "2"},
        "last_event_id": {"S": "0b8a1e4e-2f0a-4c4e-9f5e-0d7c1a000111"},
        "amount_cents": {"N": "1250"},
        "customer_id": {"S": "c-1"},
        "updated_at": {"S": "2024-05-01T10:00:00+00:00"},
        "trace_header": {"S": UPSTREAM},
    }
    payload = json.dumps({"eventName": "MODIFY", "dynamodb": {"NewImage": image}})

    assert classify_payload(payload, "lambda").reason == "valid payload"


# -- documents ----------------------------------------------------------------------------------


def test_given_a_failed_hop_when_documented_then_the_segment_hangs_under_its_upstream():
    document = segment_document(
        name="changes",
        trace_id=ROOT,
        segment_id="aaaaaaaaaaaaaaaa",
        parent_id="53995c3f42cd8ad8",
        start=10.0,
        end=9.0,
        fault=True,
        cause=("TransientError", "slow down"),
        records=3,
        invocation_trace_id=OTHER_ROOT,
    )

    assert document["trace_id"] == ROOT and document["parent_id"] == "53995c3f42cd8ad8"
    assert (document["start_time"], document["end_time"]) == (10.0, 10.0)  # never negative
    assert document["origin"] == "AWS::Lambda::Function"
    assert document["fault"] is True and "error" not in document
    assert document["annotations"] == {"records": 3}
    assert document["metadata"]["streamline"]["invocation_trace_id"] == OTHER_ROOT
    (exception,) = document["cause"]["exceptions"]
    assert (exception["type"], exception["message"]) == ("TransientError", "slow down")


def test_given_a_document_when_framed_then_it_is_one_daemon_datagram():
    header, body = daemon_datagram({"name": "changes", "id": "a"}).split(b"\n", 1)

    assert json.loads(header) == {"format": "json", "version": 1}
    assert json.loads(body) == {"name": "changes", "id": "a"}


def test_given_a_daemon_address_when_sent_then_the_daemon_gets_one_datagram_per_document():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(5)
        port = daemon.getsockname()[1]
        emitter = DaemonEmitter.from_environment({"AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}"})
        assert emitter is not None

        emitter.send({"name": "changes", "id": "aaaaaaaaaaaaaaaa"})

        assert daemon.recv(65535) == daemon_datagram({"name": "changes", "id": "aaaaaaaaaaaaaaaa"})
    assert DaemonEmitter.from_environment({}) is None


# -- linked traces ------------------------------------------------------------------------------


def test_given_records_of_one_upstream_segment_when_hopped_then_one_segment_covers_them():
    emitter = FakeEmitter()
    traces = linked(emitter)

    with traces.hop(UPSTREAM) as first:
        pass
    with traces.hop(UPSTREAM) as second:
        pass
    assert traces.flush() == 1

    (document,) = emitter.sent
    assert document["trace_id"] == ROOT
    assert document["parent_id"] == "53995c3f42cd8ad8"
    assert document["name"] == "changes"
    assert document["annotations"] == {"records": 2}
    assert document["start_time"] < document["end_time"]
    assert "error" not in document and "fault" not in document
    # What the records send on continues under this segment, with the invocation's Lineage.
    assert first == second == f"Root={ROOT};Parent={document['id']};Sampled=1;Lineage=a87bd80c:1"
    assert traces.flush() == 0  # a batch's segments are sent once


def test_given_records_of_two_traces_when_hopped_then_each_trace_gets_its_own_segment():
    emitter = FakeEmitter()
    traces = linked(emitter)
    other = f"Root={OTHER_ROOT.replace('beef', 'cafe')};Parent=2222222222222222;Sampled=1"

    for upstream in (UPSTREAM, other, UPSTREAM):
        with traces.hop(upstream):
            pass
    traces.flush()

    assert sorted((d["trace_id"], d["annotations"]["records"]) for d in emitter.sent) == sorted(
        [(ROOT, 2), (TraceHeader.parse(other).root, 1)]  # type: ignore[union-attr]
    )


@pytest.mark.parametrize(
    ("exc", "flag"),
    [(PoisonRecordError("status: bad"), "error"), (TransientError("throttled"), "fault")],
)
def test_given_a_failing_record_when_hopped_then_the_error_propagates_and_marks_the_segment(
    exc, flag
):
    emitter = FakeEmitter()
    traces = linked(emitter)

    with pytest.raises(type(exc)), traces.hop(UPSTREAM):
        raise exc
    with traces.hop(UPSTREAM):
        pass
    traces.flush()

    (document,) = emitter.sent
    assert document[flag] is True
    assert document["annotations"] == {"records": 2}
    assert document["cause"]["exceptions"][0]["type"] == type(exc).__name__


@pytest.mark.parametrize(
    "upstream",
    [
        None,
        "garbage",
        f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=0",  # the producer was not sampled
        f"Root={OTHER_ROOT};Parent=53995c3f42cd8ad8;Sampled=1",  # already this invocation's trace
    ],
)
def test_given_nothing_to_record_when_hopped_then_no_header_and_no_segment(upstream):
    emitter = FakeEmitter()
    traces = linked(emitter)

    with traces.hop(upstream) as header:
        assert header is None
    assert traces.flush() == 0 and emitter.sent == []


def test_given_tracing_disabled_when_used_then_everything_is_a_no_op():
    traces = linked(None)

    with traces.hop(UPSTREAM) as header:
        assert header is None
    assert traces.carried_header() is None
    assert traces.flush() == 0
    assert not traces.enabled


def test_given_a_daemon_failure_when_flushed_then_it_is_reported_never_raised():
    errors: list[str] = []
    traces = linked(FakeEmitter(fail=True), errors=errors)

    with traces.hop(UPSTREAM):
        pass

    assert traces.flush() == 0
    assert errors == ["could not send linked X-Ray segments"]


@pytest.mark.parametrize(
    ("own", "carried"),
    [
        (OWN, f"Root={OTHER_ROOT};Parent=1111111111111111;Sampled=1"),
        (OWN.replace("Sampled=1", "Sampled=0"), None),
        (f"Root={OTHER_ROOT};Sampled=1", None),  # no segment to hang the next hop under
        (None, None),
    ],
)
def test_given_an_invocation_header_when_carried_then_only_a_sampled_root_and_parent(own, carried):
    assert linked(FakeEmitter(), own=own).carried_header() == carried


def test_given_a_new_batch_when_carried_then_the_header_is_read_once_per_batch():
    reads: list[str] = []
    headers = iter([OWN, OWN.replace("Parent=1111111111111111", "Parent=2222222222222222")])

    def current() -> str:
        reads.append("read")
        return next(headers)

    traces = LinkedTraces(emitter=FakeEmitter(), name="ingest", clock=Clock(), current=current)
    first = [traces.carried_header() for _ in range(3)]
    traces.new_batch()  # the next invocation: its own header
    second = traces.carried_header()

    assert len(reads) == 2
    assert first == [f"Root={OTHER_ROOT};Parent=1111111111111111;Sampled=1"] * 3
    assert second == f"Root={OTHER_ROOT};Parent=2222222222222222;Sampled=1"
