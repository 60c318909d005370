"""One local cloud for the end-to-end tests, with Streamline's own stacks deployed once.

The cloud persists its state (``persist=True``), so a test can restart it in the middle of a
run; later tests go on with the restarted cloud (``E2E.cloud`` always names the live one).
These tests run in their own pytest session: moto's state is process-global.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streamline.local.cloud import LocalCloud

REPO = Path(__file__).resolve().parents[2]


@dataclass
class E2E:
    """The live cloud, the deployed stage's merged outputs, and how to restart the cloud."""

    state_dir: Path
    cloud: LocalCloud = field(init=False)
    outputs: dict[str, str] = field(default_factory=dict)
    restarts: int = 0

    def start(self, port: int | None = None) -> LocalCloud:
        self.cloud = LocalCloud(port=port, state_dir=self.state_dir, persist=True).start()
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
