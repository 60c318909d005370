"""A local cloud running in another process (``streamline local up --detach``), seen from here.

What the demo's drivers need of a cloud (``client``, ``busy``, ``wait_idle``, the engines'
``status``), answered over the cloud's status endpoint instead of in-process objects, so a
test can drive a cloud it can SIGKILL.

Example::

    remote = RemoteCloud.find(".streamline/local")
    remote.client("sqs").list_queues()
    remote.wait_idle(timeout=60)
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from streamline.local.cloud import make_client, wait_quiet
from streamline.local.contracts import SystemClock
from streamline.local.state import StateDir

__all__ = ["RemoteCloud"]


class _Engine:
    """``status()`` of one engine, read from the cloud's status endpoint."""

    def __init__(self, cloud: RemoteCloud, key: str) -> None:
        self._cloud = cloud
        self._key = key

    def status(self) -> Any:
        return self._cloud.status()[self._key]


class RemoteCloud:
    """A detached local cloud at ``endpoint_url``."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self.clock = SystemClock()
        self.esm = _Engine(self, "mappings")
        self.async_engine = _Engine(self, "async")

    @classmethod
    def find(cls, state_dir: str | Path) -> RemoteCloud:
        """The cloud a state dir names (raises when none runs there)."""
        info = StateDir(state_dir).running()
        if info is None:
            raise RuntimeError(f"no local cloud is running in {state_dir}")
        return cls(info.endpoint_url)

    def client(self, service: str) -> Any:
        return make_client(service, self.endpoint_url)

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint_url}/_streamline/status", timeout=30) as r:
            return dict(json.loads(r.read()))

    def busy(self) -> list[str]:
        return list(self.status()["busy"])

    def wait_idle(self, timeout: float = 60.0, poll: float = 0.2) -> None:
        """Until no mapping and no async event has work, twice in a row (as LocalCloud's)."""
        wait_quiet(self.busy, timeout, poll)
