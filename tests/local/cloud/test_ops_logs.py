"""`streamline logs`: a real function's CloudWatch Logs read back from the local cloud.

One probe function (printing an error-ish line and a Powertools JSON line) is invoked a few
times; every test reads its log group through ``run()`` with a Target for the local cloud.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.runtime.testing import make_zip
from streamline.ops import logs as ops_logs
from streamline.ops.logs import register, run
from streamline.ops.target import Target

HANDLER = """
    import json

    def handler(event, context):
        print(f"ERROR: payment declined for order {event['n']}")
        print(json.dumps({"level": "INFO", "location": "handler:7", "message": "order seen",
                          "service": "probe", "order": event["n"],
                          "timestamp": "2024-01-01 00:00:00,000+0000",
                          "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:x"}))
        print("all good")
        return {"n": event["n"]}
"""
INVOCATIONS = 3
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S{1,8} .+")
ESC = "\033["


@dataclass
class Probe:
    name: str
    role: str
    target: Target
    cloud: LocalCloud


def _create(cloud: LocalCloud, name: str, role: str) -> None:
    cloud.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HANDLER})},
    )


def _invoke(probe: Probe, n: int) -> None:
    response = probe.cloud.client("lambda").invoke(
        FunctionName=probe.name, Payload=f'{{"n": {n}}}'.encode()
    )
    assert "FunctionError" not in response, response["Payload"].read()
    assert probe.cloud.runner is not None
    probe.cloud.runner.flush_logs()


@pytest.fixture(scope="module")
def probe(cloud: LocalCloud) -> Iterator[Probe]:
    name = f"logs-probe-{uuid.uuid4().hex[:8]}"
    role = cloud.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    _create(cloud, name, role)
    target = Target(endpoint_url=cloud.endpoint_url, profile=None, region=None)
    probe = Probe(name, role, target, cloud)
    for n in range(INVOCATIONS):
        _invoke(probe, n)
    # One event from two hours ago, in its own stream: only a long enough --since reaches it.
    logs = cloud.client("logs")
    logs.create_log_stream(logGroupName=f"/aws/lambda/{name}", logStreamName="old/[1]deadbeef")
    logs.put_log_events(
        logGroupName=f"/aws/lambda/{name}",
        logStreamName="old/[1]deadbeef",
        logEvents=[{"timestamp": int((time.time() - 7200) * 1000), "message": "ancient line"}],
    )
    yield probe


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="streamline")
    commands = parser.add_subparsers(dest="command", required=True)
    register(commands, argparse.ArgumentParser)
    return parser.parse_args(["logs", *argv])


def _logs(
    capsys: pytest.CaptureFixture[str], target: Target, *argv: str
) -> tuple[int, list[str], str]:
    code = run(_args(*argv), target)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_register_adds_the_logs_command_with_run_as_its_func() -> None:
    args = _args("ingest", "--follow", "--since", "2h", "--filter", "ERROR", "--limit", "5")
    assert args.func is run
    assert (args.function, args.follow, args.since, args.filter, args.limit) == (
        "ingest",
        True,
        "2h",
        "ERROR",
        5,
    )


def test_lists_start_end_and_report_lines_of_every_invocation(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = _logs(capsys, probe.target, probe.name)
    assert code == 0, err
    assert all(LINE.match(line) for line in lines), lines
    for prefix in ("START RequestId:", "END RequestId:", "REPORT RequestId:"):
        assert sum(f" {prefix}" in line for line in lines) == INVOCATIONS, lines
    assert not any(ESC in line for line in lines)  # capsys is not a terminal: no colour
    assert not any("ancient line" in line for line in lines)  # older than the default 10m


def test_json_lines_show_level_and_message_first_without_repeated_fields(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    _, lines, _ = _logs(capsys, probe.target, probe.name, "--filter", "order seen")
    assert lines, "no JSON lines found"
    for line in lines:
        message = line.split(" ", 2)[2]
        assert message.startswith("INFO order seen {"), line
        assert '"order":' in message and "function_arn" not in message
        assert "2024-01-01" not in message  # Powertools' own timestamp repeats ours


def test_filter_narrows_to_matching_lines(probe: Probe, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = _logs(capsys, probe.target, probe.name, "--filter", "declined")
    assert code == 0
    assert len(lines) == INVOCATIONS
    assert all("ERROR: payment declined" in line for line in lines)


def test_since_reaches_back_only_as_far_as_asked(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    _, recent, _ = _logs(capsys, probe.target, probe.name, "--since", "1h")
    _, all_day, _ = _logs(capsys, probe.target, probe.name, "--since", "1d")
    assert not any("ancient line" in line for line in recent)
    assert all_day[0].endswith(" deadbeef ancient line")  # oldest first, stream short id
    assert len(all_day) == len(recent) + 1


def test_limit_stops_after_n_events(probe: Probe, capsys: pytest.CaptureFixture[str]) -> None:
    _, everything, _ = _logs(capsys, probe.target, probe.name)
    code, lines, _ = _logs(capsys, probe.target, probe.name, "--limit", "2")
    assert code == 0
    assert lines == everything[:2]  # the oldest two, as the unlimited listing starts


def test_colour_marks_errors_and_reports_only_when_asked(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    _, plain, _ = _logs(capsys, probe.target, probe.name, "--color", "never")
    _, coloured, _ = _logs(capsys, probe.target, probe.name, "--color", "always")
    assert not any(ESC in line for line in plain)
    errors = [line for line in coloured if "payment declined" in line]
    reports = [line for line in coloured if "REPORT RequestId:" in line]
    assert errors and all("\033[31mERROR: payment declined" in line for line in errors)
    assert reports and all("\033[36mREPORT RequestId:" in line for line in reports)
    assert not any("\033[31m" in line for line in coloured if "all good" in line)


def test_a_unique_part_of_the_name_finds_the_function(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    part = probe.name.removeprefix("logs-probe-").upper()  # case does not matter
    code, lines, err = _logs(capsys, probe.target, part, "--filter", "declined")
    assert code == 0, err
    assert len(lines) == INVOCATIONS


def test_a_pipeline_name_resolves_through_stack_outputs(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock.patch.object(
        Target, "stack_outputs", return_value={"IngestFunctionName": probe.name}
    ):
        code, lines, err = _logs(capsys, probe.target, "ingest", "--filter", "declined")
    assert code == 0, err
    assert len(lines) == INVOCATIONS


def test_an_ambiguous_part_is_a_one_line_error_naming_the_candidates(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    stem = f"logs-twin-{uuid.uuid4().hex[:6]}"
    for suffix in ("a", "b"):
        _create(probe.cloud, f"{stem}-{suffix}", probe.role)
    code, lines, err = _logs(capsys, probe.target, stem)
    assert code == 2 and lines == []
    assert err.count("\n") == 1
    assert f"{stem}-a" in err and f"{stem}-b" in err and "matches 2 functions" in err


def test_an_unknown_function_is_a_one_line_error(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = _logs(capsys, probe.target, f"no-such-{uuid.uuid4().hex}")
    assert code == 2 and lines == []
    assert err.startswith("streamline: no function matches") and err.count("\n") == 1


@pytest.mark.parametrize("since", ["10", "ten minutes", "5w", "-3m", ""])
def test_a_bad_since_is_a_one_line_error(
    probe: Probe, capsys: pytest.CaptureFixture[str], since: str
) -> None:
    code, lines, err = _logs(capsys, probe.target, probe.name, f"--since={since}")
    assert code == 2 and lines == []
    assert err.startswith("streamline: --since must be") and err.count("\n") == 1


def test_follow_prints_new_invocations_once_each(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    _, before, _ = _logs(capsys, probe.target, probe.name)
    result: list[int] = []
    # Everything so far, then the START, 3 prints, END and REPORT of one more invocation.
    args = _args(probe.name, "--follow", "--interval", "0.05", "--limit", str(len(before) + 6))
    reader = threading.Thread(target=lambda: result.append(run(args, probe.target)))
    reader.start()
    time.sleep(0.3)  # a few polls over the same events: none may print twice
    _invoke(probe, 99)
    reader.join(timeout=10)
    assert not reader.is_alive() and result == [0]
    lines = capsys.readouterr().out.splitlines()
    assert lines[: len(before)] == before
    assert "order 99" in lines[-5] and "REPORT RequestId:" in lines[-1]


def test_ctrl_c_ends_follow_quietly_with_130(
    probe: Probe, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock.patch.object(ops_logs.time, "sleep", side_effect=KeyboardInterrupt):
        code, lines, err = _logs(capsys, probe.target, probe.name, "--follow")
    assert code == 130 and err == ""
    assert sum(" REPORT RequestId:" in line for line in lines) >= INVOCATIONS
