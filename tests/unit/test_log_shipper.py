"""The log shipper's flush is a barrier: once it returns, every emitted line is in the backend.

``LocalCloud.wait_idle`` relies on it, so a test that reads a log group after waiting for idle
never races the background writer (it did: FilterLogEvents found no log group under load).
"""

from __future__ import annotations

import threading
from typing import Any

from streamline.local.runtime.logs import LogShipper


class _SlowLogs:
    """A logs backend whose first write blocks until the test releases it."""

    def __init__(self) -> None:
        self.groups: dict[str, Any] = {}
        self.written: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def ensure_log_group(self, group: str) -> None:
        self.entered.set()
        assert self.release.wait(30), "the test never released the write"
        self.groups.setdefault(group, type("G", (), {"streams": {}})())

    def create_log_stream(self, group: str, stream: str) -> None:
        self.groups[group].streams[stream] = True

    def put_log_events(self, group: str, stream: str, events: list[dict[str, Any]]) -> None:
        self.written.extend(e["message"] for e in events)


class _Backends:
    def __init__(self, logs: _SlowLogs) -> None:
        self.lock = threading.RLock()
        self._logs = logs

    def logs(self) -> _SlowLogs:
        return self._logs


def test_flush_waits_for_a_write_the_background_thread_already_took() -> None:
    # Given a line the background thread has taken and is still writing
    logs = _SlowLogs()
    shipper = LogShipper(_Backends(logs), flush_interval=0.01)
    try:
        shipper.emit("/aws/lambda/f", "s", [(1, "START RequestId: r")])
        assert logs.entered.wait(30)

        # When a caller flushes
        done = threading.Event()
        flusher = threading.Thread(target=lambda: (shipper.flush(), done.set()))
        flusher.start()

        # Then the flush has not returned while the line is unwritten ...
        assert not done.wait(0.2)
        assert logs.written == []
        # ... and returns once it is written
        logs.release.set()
        assert done.wait(30)
        assert logs.written == ["START RequestId: r"]
        flusher.join()
    finally:
        logs.release.set()
        shipper.close()
