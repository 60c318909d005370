"""Planned events (lifecycles, fault rates, determinism), the progress display, and the
``produce`` command's argument and file handling (everything that needs no AWS)."""

from __future__ import annotations

import io
import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from orderflow.errors import PoisonRecordError
from orderflow.events import parse_event

from streamline.cli import main
from streamline.producers import PlannedEvent, generate_events
from streamline.producers.cli import read_events_file
from streamline.producers.generate import LIFECYCLES
from streamline.producers.prepare import InvalidEventError
from streamline.producers.progress import Progress, format_duration

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def by_order(events: list[PlannedEvent]) -> dict[str, list[PlannedEvent]]:
    orders: dict[str, list[PlannedEvent]] = defaultdict(list)
    for event in events:
        orders[event.order_id].append(event)
    return orders


# -- generate_events -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(0, 300),
    poison_rate=st.floats(0, 1),
    transient_rate=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_generated_events_follow_the_lifecycle_and_fault_rules(
    count: int, poison_rate: float, transient_rate: float, seed: int
) -> None:
    events = generate_events(
        count, poison_rate=poison_rate, transient_rate=transient_rate, seed=seed, now=NOW
    )

    assert len(events) == count
    assert len({e.event_id for e in events}) == count
    poison = [e for e in events if e.fault == "poison"]
    assert len(poison) == round(count * poison_rate)
    assert sum(e.fault == "transient" for e in events) <= round(count * transient_rate)
    for order, own in by_order(events).items():
        assert [e.version for e in own] == list(range(1, len(own) + 1)), order
        assert tuple(e.type for e in own) in LIFECYCLES
        assert all(e.fault != "transient" for e in own[:-1])  # only the last event
        if any(e.fault == "poison" for e in own):
            assert len(own) == 1  # alone in a fresh order
    for event in events:
        assert event.payload["event_id"] == event.event_id == str(uuid.UUID(event.event_id))
        assert event.payload["order_id"] == event.order_id
        if event.fault == "poison":
            with pytest.raises(PoisonRecordError):
                parse_event(json.dumps(event.payload))
        else:
            parsed = parse_event(json.dumps(event.payload))
            assert (parsed.version, parsed.type.value) == (event.version, event.type)
            assert (parsed.chaos is not None) == (event.fault == "transient")


def test_transient_events_carry_a_window_from_now_and_hit_the_rate_when_orders_allow() -> None:
    events = generate_events(
        100, transient_rate=0.1, transient_for=timedelta(seconds=3), seed=1, now=NOW
    )

    transient = [e for e in events if e.fault == "transient"]
    assert len(transient) == 10
    until = {parse_event(json.dumps(e.payload)).chaos.transient_until for e in transient}  # type: ignore[union-attr]
    assert until == {NOW + timedelta(seconds=3)}


def test_a_seed_makes_the_plan_reproducible_and_calls_without_one_use_new_orders() -> None:
    first = generate_events(50, poison_rate=0.1, transient_rate=0.1, seed=42, now=NOW)
    assert first == generate_events(50, poison_rate=0.1, transient_rate=0.1, seed=42, now=NOW)
    prefixes = {generate_events(1)[0].order_id.rsplit("-", 1)[0] for _ in range(20)}
    assert len(prefixes) == 20


def test_orders_interleave_and_some_are_cancelled() -> None:
    events = generate_events(400, seed=11, now=NOW)
    orders = by_order(events)
    assert any(own[-1].type == "OrderCancelled" for own in orders.values())
    assert {len(own) for own in orders.values()} == {1, 2, 3, 4}
    assert [e.order_id for e in events] != sorted(e.order_id for e in events)


@pytest.mark.parametrize(
    ("count", "kwargs", "message"),
    [
        (-1, {}, "count must be 0 or more"),
        (5, {"poison_rate": 1.5}, "poison_rate must be between 0 and 1"),
        (5, {"transient_rate": -0.1}, "transient_rate must be between 0 and 1"),
        (5, {"now": datetime(2025, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_plans_are_refused(count: int, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_events(count, **kwargs)  # type: ignore[arg-type]


# -- progress --------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_one_redrawn_bar_at_most_ten_times_a_second() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(1000, label="kinesis", stream=out, tty=True, clock=clock)

    for _ in range(1000):  # 1000 updates over one second
        clock.now += 0.001
        progress.update(1)
    progress.close()

    frames = out.getvalue().split("\r")[1:]
    assert 10 <= len(frames) <= 12  # ten redraws a second, plus the final frame
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1
    assert frames[-1].startswith("kinesis [########################################] 1000/1000")
    assert "100%" in frames[-1] and "1,000/s" in frames[-1]


def test_a_bar_shows_count_rate_and_eta() -> None:
    clock = FakeClock()
    progress = Progress(400, label="sqs", stream=io.StringIO(), tty=True, clock=clock)
    clock.now = 2.0
    progress.done = 100

    line = progress.render(width=80)

    assert line.startswith("sqs [") and "100/400" in line and " 25%" in line
    assert "50/s" in line and "ETA 0:06" in line


def test_without_a_terminal_progress_is_a_plain_line_every_few_seconds() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(100, label="ddb", stream=out, tty=False, clock=clock, plain_interval=5)

    for _ in range(100):
        clock.now += 0.2  # 20 s in all
        progress.update(1)
    progress.close()

    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    assert lines[0].startswith("ddb 25/100") or lines[0].startswith("ddb 26/100")


def test_durations_read_as_clock_time() -> None:
    assert [format_duration(s) for s in (0, 59.6, 61, 3725)] == ["0:00", "1:00", "1:01", "1:02:05"]


# -- the produce command without a target ----------------------------------------------------


def write_lines(path: Path, *lines: str) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def good_line(**changes: object) -> str:
    event = generate_events(1, seed=1, now=NOW)[0].payload
    return json.dumps({**event, **changes})


def test_an_events_file_is_read_and_validated_line_by_line(tmp_path: Path) -> None:
    chaos = {"transient_until": NOW.isoformat()}
    path = write_lines(tmp_path / "e.jsonl", good_line(), "", good_line(chaos=chaos))

    events = read_events_file(path)

    assert [e.fault for e in events] == ["none", "transient"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (good_line(amount_cents=-1), "amount_cents"),
        ('{"event_id": ', "line is not JSON"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_a_bad_line_is_a_one_line_error_naming_the_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = write_lines(tmp_path / "e.jsonl", good_line(), line)

    with pytest.raises(InvalidEventError) as raised:
        read_events_file(path)

    assert str(raised.value).startswith(f"{path}:2: ") and reason in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["produce", "kinesis", "--count", "0"], "--count: must be a whole number"),
        (["produce", "kinesis", "--count", "x"], "--count: must be a whole number"),
        (["produce", "s3", "--count", "5"], "invalid choice: 's3'"),
        (["produce", "kinesis", "--count", "5", "--rate", "0"], "--rate: must be"),
        (["produce", "kinesis", "--count", "5", "--poison-rate", "2"], "between 0 and 1"),
        (["produce", "kinesis"], "give --count N"),
        (["produce", "sqs", "--count", "5", "--transient-rate", "0.1"], "needs kinesis"),
        (["produce", "dynamodb", "--count", "5", "--queue", "fulfilment"], "--queue applies"),
        (["produce", "kinesis", "--file", "x.jsonl", "--seed", "1"], "apply to generated"),
        (["produce", "kinesis", "--file", "/no/such.jsonl"], "cannot read /no/such.jsonl"),
        (["events", "generate", "sns"], "invalid choice: 'sns'"),
        (["events", "generate", "sqs", "--count", "-2"], "--count: must be"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_2(
    argv: list[str], reason: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exited:
        code = main([*argv, "--state-dir", str(tmp_path)] if argv[0] == "produce" else argv)
        raise SystemExit(code)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and reason in err, err


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["produce", "kinesis", "--file"], "recursion limit"),
        (["invoke", "ingest", "--event"], "nested too deeply"),
    ],
)
def test_a_deeply_nested_file_is_one_line_and_exit_2(
    argv: list[str], reason: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 5000 + "]" * 5000 + "}\n")

    code = main([*argv, str(deep), "--state-dir", str(tmp_path)])

    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and reason in err, err


def test_without_a_cloud_produce_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["produce", "kinesis", "--count", "3", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no local cloud is running" in err
