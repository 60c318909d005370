"""One local cloud for the end-to-end and chaos tests, with Streamline's own stacks deployed once.

The cloud persists its state (``persist=True``), so a test can restart it in the middle of a
run; later tests go on with the restarted cloud (``E2E.cloud`` always names the live one). Its
clock is a ManualClock running at real speed that survives restarts: a test advances it to make
an asynchronous retry minute pass at once. ``tests/e2e`` and ``tests/chaos`` share this one
fixture and run in one pytest session of their own: moto's state is process-global, so a
process holds one cloud. (Here, at the root, because a fixture in each folder would be two.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.contracts import ManualClock

REPO = Path(__file__).resolve().parents[1]


@dataclass
class E2E:
    """The live cloud, the deployed stage's merged outputs, and how to restart the cloud."""

    state_dir: Path
    clock: ManualClock = field(default_factory=ManualClock)
    cloud: LocalCloud = field(init=False)
    outputs: dict[str, str] = field(default_factory=dict)
    restarts: int = 0

    def start(self, port: int | None = None) -> LocalCloud:
        self.cloud = LocalCloud(
            port=port, state_dir=self.state_dir, clock=self.clock, persist=True
        ).start()
        return self.cloud

    def restart(self, _old: Any = None) -> LocalCloud:
        """Stop the cloud (state saved) and start a new one on the same port and state dir."""
        port = self.cloud.port
        self.cloud.stop()
        self.restarts += 1
        return self.start(port)


@pytest.fixture(scope="session")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    box = E2E(tmp_path_factory.mktemp("e2e-cloud"))
    box.start()
    try:
        for outputs in box.cloud.deploy(REPO).values():
            box.outputs.update(outputs)
        yield box
    finally:
        box.cloud.stop()
