"""The `streamline local` command line: one-line errors and the detached round trip."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamline", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_up_on_a_port_in_use_is_one_line(tmp_path: Path, busy_port: int) -> None:
    result = run("local", "up", "--port", str(busy_port), "--state-dir", str(tmp_path))
    assert_one_line_error(result, f"port {busy_port}")


@pytest.mark.parametrize("command", ["env", "status", "down", "deploy"])
def test_commands_without_a_running_cloud_are_one_line(tmp_path: Path, command: str) -> None:
    result = run("local", command, "--state-dir", str(tmp_path / "none"))
    assert_one_line_error(result, "no local cloud is running")


def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run("local", "up", "--port", "not-a-number"), "not a port number")
    assert_one_line_error(run("local", "sideways"), "invalid choice")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["local", "up", "--port", "70000"], "must be 0-65535"),  # once a traceback
        (["demo", "--port", "70000"], "must be 0-65535"),  # once bound another port, exit 0
        (["demo", "--timeout", "-1"], "more than 0 seconds"),  # once refused after a deploy
        (["local", "up", "--state-dir", "{file}"], "is a file"),  # once a traceback
        (["local", "up", "--state-dir", "/proc/1/x"], "cannot use state dir"),
        (["demo", "--state-dir", "{file}", "--events", "1"], "is a file"),
    ],
)
def test_cheap_checks_fail_first_in_one_line(
    tmp_path: Path, argv: list[str], fragment: str
) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")

    result = run(*[arg.format(file=file) for arg in argv])

    assert_one_line_error(result, fragment)


def test_a_corrupt_snapshot_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "moto-state.pickle").write_bytes(b"not a pickle")

    result = run("local", "up", "--detach", "--port", "0", "--state-dir", str(tmp_path))

    assert_one_line_error(result, "remove it to start empty")
    assert "streamline: streamline:" not in result.stderr


def test_a_pid_file_naming_a_reused_pid_is_stale(tmp_path: Path) -> None:
    """A pid is reused once its process dies: the start time tells the cloud from a stranger."""
    import os

    (tmp_path / "pid").write_text(f"{os.getpid()}\n")  # alive, but not a cloud that started then
    (tmp_path / "endpoint.json").write_text(
        json.dumps(
            {"endpoint_url": "http://localhost:1", "port": 1, "pid": os.getpid(), "started": "1"}
        )
    )

    assert_one_line_error(run("local", "env", "--state-dir", str(tmp_path)), "stale")


def test_stale_pid_is_reported_and_cleaned(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    (tmp_path / "pid").write_text(f"{pid}\n")
    (tmp_path / "endpoint.json").write_text(
        json.dumps({"endpoint_url": "http://localhost:1", "port": 1, "pid": pid})
    )

    assert_one_line_error(run("local", "env", "--state-dir", str(tmp_path)), "stale")
    down = run("local", "down", "--state-dir", str(tmp_path))

    assert down.returncode == 0 and "stale" in down.stderr
    assert not (tmp_path / "pid").exists()


@pytest.mark.slow
def test_detached_up_env_status_down_round_trip(tmp_path: Path) -> None:
    state = str(tmp_path / "state")

    up = run("local", "up", "--detach", "--port", "0", "--state-dir", state)
    try:
        assert up.returncode == 0, up.stderr
        endpoint = json.loads((tmp_path / "state" / "endpoint.json").read_text())
        env = run("local", "env", "--state-dir", state)
        # deploy runs in this CLI process, against the cloud in the detached one
        deployed = run(
            "local",
            "deploy",
            "--app-dir",
            str(REPO / "tests/fixtures/apps/tiny"),
            "--state-dir",
            state,
            timeout=300,
        )
        status = run("local", "status", "--json", "--state-dir", state)
        text = run("local", "status", "--state-dir", state)
        bad_python = run(
            "local",
            "deploy",
            "--app-dir",
            str(REPO / "tests/fixtures/apps/tiny"),
            "--python",
            str(tmp_path / "no-such-python"),
            "--state-dir",
            state,
        )
        again = run("local", "up", "--detach", "--port", "0", "--state-dir", state)
    finally:
        down = run("local", "down", "--state-dir", state)

    assert f"export AWS_ENDPOINT_URL={endpoint['endpoint_url']}" in env.stdout.splitlines()
    assert "export AWS_ACCESS_KEY_ID=test" in env.stdout
    assert deployed.returncode == 0, deployed.stderr
    report = json.loads(status.stdout)
    assert report["endpoint_url"] == endpoint["endpoint_url"]
    assert report["functions"], report  # the tiny app's function is listed
    assert report["would_be_denied"] == []  # the tiny app's grants cover what it calls
    assert "would be denied on AWS (0)" in text.stdout.splitlines()
    assert_one_line_error(bad_python, "not an executable file")
    assert_one_line_error(again, "already running")
    assert down.returncode == 0, down.stderr
    assert not (tmp_path / "state" / "endpoint.json").exists()
    assert_one_line_error(run("local", "status", "--state-dir", state), "no local cloud")
