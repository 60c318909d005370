"""A local cloud as a process of its own (`streamline local up --detach`), for tests that must
kill it (SIGKILL) at a moment of their choosing and start it again from its state directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from streamline.local.state import StateDir


@dataclass(frozen=True)
class Detached:
    endpoint_url: str
    port: int
    pid: int


def local_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`streamline local ARGS` in a subprocess, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "streamline", "local", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def up(state: Path, port: int = 0) -> Detached:
    """Start a detached cloud on ``port`` (0: any free one) and wait for its endpoint."""
    done = local_cli("up", "--detach", "--port", str(port), "--state-dir", str(state))
    assert done.returncode == 0, done.stderr + done.stdout
    info = StateDir(state).read_endpoint()
    assert info is not None
    return Detached(info.endpoint_url, info.port, info.pid)


def down(state: Path) -> None:
    local_cli("down", "--state-dir", str(state), timeout=120)


def kill(pid: int) -> None:
    """SIGKILL the cloud and wait until the process is gone."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} did not die")
