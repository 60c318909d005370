"""The local cloud's state directory: where it listens, who runs it, and what it must keep.

Layout (default ``./.streamline/local``)::

    endpoint.json     {"endpoint_url", "port", "pid"} of the running cloud
    pid               the pid of the process serving it
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
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["DEFAULT_STATE_DIR", "EndpointInfo", "StaleStateError", "StateDir", "pid_alive"]

DEFAULT_STATE_DIR = Path(".streamline") / "local"


class StaleStateError(RuntimeError):
    """The state dir names a process that no longer runs (the cloud died without cleaning up)."""


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """Where a running local cloud listens."""

    endpoint_url: str
    port: int
    pid: int


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


class StateDir:
    """Paths and small files of one local cloud's state directory."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        # Absolute: function code is unpacked under it and handed to processes with other cwds.
        self.root = (Path(root) if root is not None else Path.cwd() / DEFAULT_STATE_DIR).resolve()

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
        """Create the directory tree (idempotent) and return self."""
        for path in (self.root, self.logs, self.checkpoints, self.functions):
            path.mkdir(parents=True, exist_ok=True)
        return self

    def write_endpoint(self, endpoint_url: str, port: int, pid: int) -> None:
        """Record a running cloud; written atomically so readers never see half a file."""
        self.ensure()
        info = EndpointInfo(endpoint_url, port, pid)
        tmp = self.endpoint_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info), indent=2) + "\n")
        tmp.replace(self.endpoint_file)
        self.pid_file.write_text(f"{pid}\n")

    def read_endpoint(self) -> EndpointInfo | None:
        """The recorded endpoint, or None when there is none (alive or not is not checked)."""
        try:
            data = json.loads(self.endpoint_file.read_text())
            return EndpointInfo(str(data["endpoint_url"]), int(data["port"]), int(data["pid"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def running(self) -> EndpointInfo | None:
        """The live cloud recorded here; None if none; StaleStateError if its process is gone."""
        pid = self.read_pid()
        info = self.read_endpoint()
        if pid is None and info is None:
            return None
        pid = pid if pid is not None else (info.pid if info else None)
        if pid is None or not pid_alive(pid):
            raise StaleStateError(
                f"stale local cloud state in {self.root} (pid {pid} is not running); "
                f"run `streamline local down --state-dir {self.root}` to clean up"
            )
        return info

    def clear(self) -> None:
        """Forget the running cloud (endpoint and pid); checkpoints and logs are kept."""
        for path in (self.endpoint_file, self.pid_file):
            path.unlink(missing_ok=True)
