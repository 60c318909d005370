"""The local cloud's state directory: where it listens, who runs it, and what it must keep.

Layout (default ``./.streamline/local``)::

    endpoint.json     {"endpoint_url", "port", "pid"} of the running cloud
    pid               the pid of the process serving it
    moto-state.pickle the last snapshot of moto's state (``durability``)
    journal/          every change since that snapshot, replayed on start
    logs/             the server log of a detached cloud, function logs
    checkpoints/      durable ESM checkpoints (<mapping uuid>/<shard id>.json)
    functions/        unpacked function code, keyed by code hash

Example::

    state = StateDir(".streamline/local").ensure()
    state.write_endpoint("http://localhost:4566", 4566, os.getpid())
    info = state.running()          # None when nothing runs; raises StaleStateError on a dead pid
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "DEFAULT_STATE_DIR",
    "EndpointInfo",
    "StaleStateError",
    "StateDir",
    "StateDirError",
    "parse_port",
    "pid_alive",
]

DEFAULT_STATE_DIR = Path(".streamline") / "local"
_LOCAL_ENDPOINT = re.compile(r"http://(localhost|127\.0\.0\.1|\[::1\]):[0-9]{1,5}")


class StateDirError(RuntimeError):
    """The state dir cannot be used (a file, not writable, a system path): one line."""


def parse_port(text: str) -> int:
    """A ``--port`` value: 0 (any free port) to 65535; anything else is refused, never replaced.

    Raises:
        ValueError: with the one-line reason (argparse shows it as the argument's error).
    """
    if not re.fullmatch(r"[0-9]{1,5}", text.strip()):
        raise ValueError(f"not a port number: {text[:40]!r}")
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"must be 0-65535, got {port}")
    return port


class StaleStateError(RuntimeError):
    """The state dir names a process that no longer runs (the cloud died without cleaning up)."""


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """Where a running local cloud listens."""

    endpoint_url: str
    port: int
    pid: int
    #: The process's start time (``process_start``): tells a reused pid from the cloud's.
    started: str | None = None


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux ``/proc``; None elsewhere or when it is gone).

    A pid is reused after its process dies: a pid file alone can name a stranger.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the parenthesised command name, which may hold spaces.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def is_cloud_process(pid: int) -> bool:
    """Whether process ``pid`` runs Streamline (its command line says so; True where /proc
    is not there to ask). A pid file must never get a stranger signalled."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False
    return b"streamline" in cmdline


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending anything)."""
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


class StateDir:
    """Paths and small files of one local cloud's state directory."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        if root is not None and not str(root).strip():
            raise StateDirError("the state dir must not be empty")
        # Absolute: function code is unpacked under it and handed to processes with other cwds.
        try:
            base = Path(root) if root is not None else Path.cwd() / DEFAULT_STATE_DIR
            self.root = base.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
            raise StateDirError(f"cannot use state dir {str(root)[:200]}: {exc}") from None

    @property
    def endpoint_file(self) -> Path:
        return self.root / "endpoint.json"

    @property
    def pid_file(self) -> Path:
        return self.root / "pid"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def functions(self) -> Path:
        return self.root / "functions"

    def ensure(self) -> StateDir:
        """Create the directory tree (idempotent) and return self.

        Raises:
            StateDirError: it is a file, cannot be created or written (a one-line reason).
        """
        try:
            if self.root.exists() and not self.root.is_dir():
                raise StateDirError(f"state dir {self.root} is a file, not a directory")
            for path in (self.root, self.logs, self.checkpoints, self.functions):
                path.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".writable"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise StateDirError(
                f"cannot use state dir {str(self.root)[:200]}: {exc.strerror or exc}"
            ) from None
        return self

    def write_endpoint(self, endpoint_url: str, port: int, pid: int) -> None:
        """Record a running cloud; written atomically so readers never see half a file."""
        self.ensure()
        info = EndpointInfo(endpoint_url, port, pid, process_start(pid))
        tmp = self.endpoint_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2) + "\n")
        tmp.replace(self.endpoint_file)
        self.pid_file.write_text(f"{pid}\n")

    def read_endpoint(self) -> EndpointInfo | None:
        """The recorded endpoint, or None when there is none (alive or not is not checked)."""
        try:
            data = json.loads(self.endpoint_file.read_text())
            started = data.get("started")
            info = EndpointInfo(
                str(data["endpoint_url"]),
                int(data["port"]),
                int(data["pid"]),
                str(started) if started is not None else None,
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, a directory, not JSON, not ours: no endpoint recorded
        if not _LOCAL_ENDPOINT.fullmatch(info.endpoint_url) or not 0 < info.port < 65536:
            return None
        return info

    def read_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if 0 < pid < 2**31 else None

    def running(self) -> EndpointInfo | None:
        """The live cloud recorded here; None if none; StaleStateError if its process is gone."""
        pid = self.read_pid()
        info = self.read_endpoint()
        if pid is None and info is None:
            return None
        pid = pid if pid is not None else (info.pid if info else None)
        reused = pid is not None and (
            (info is not None and info.pid != pid)  # two files that disagree: trust neither
            or (
                info is not None
                and info.started is not None
                and process_start(pid) not in (None, info.started)
            )
            # No start time to compare (an old or hand-written file): only if it runs Streamline.
            or ((info is None or info.started is None) and not is_cloud_process(pid))
        )
        if pid is None or not pid_alive(pid) or reused:
            raise StaleStateError(
                f"stale local cloud state in {self.root} (pid {pid} is not running); "
                f"run `streamline local down --state-dir {self.root}` to clean up"
            )
        return info

    def forget_saved_state(self) -> None:
        """Start empty next time: drop the snapshot, the journal and the shard checkpoints."""
        import shutil

        for name in ("moto-state.pickle", "async-events.pickle"):
            self.root.joinpath(name).unlink(missing_ok=True)
        for folder in (self.root / "journal", self.checkpoints):
            shutil.rmtree(folder, ignore_errors=True)

    def clear(self) -> None:
        """Forget the running cloud (endpoint and pid); checkpoints and logs are kept."""
        for path in (self.endpoint_file, self.pid_file):
            path.unlink(missing_ok=True)
