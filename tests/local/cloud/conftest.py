"""Fixtures for the deployed-app tests.

``cloud`` is ONE LocalCloud per test session: moto's state is process-global, so a process runs
one cloud at a time. Tests deploy fixture apps into it and must not assume an empty cloud (name
resources uniquely, or read them from stack outputs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.contracts import ManualClock
from tests.local.cloud.deployed import FIXTURE_APPS, Deployed

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """A started LocalCloud on a free port with its state dir under pytest's tmp dir.

    Its clock is a ManualClock running at real speed: tests ``advance`` it to make a retry
    minute or a record's age pass at once instead of waiting for it.
    """
    # Alarm tests drive evaluation themselves (evaluate_once); the cloud's own periodic pass
    # is pushed far out so it cannot race them on the shared alarms.
    with LocalCloud(
        port=None,
        state_dir=tmp_path_factory.mktemp("local-cloud"),
        clock=ManualClock(),
        alarm_interval=24 * 3600.0,
    ) as local:
        yield local


@pytest.fixture(scope="session")
def tiny_outputs(cloud: LocalCloud) -> dict[str, str]:
    """The tiny fixture app (one of each reconciled resource type), deployed once."""
    return cloud.deploy(FIXTURE_APPS / "tiny")["streamline-tiny"]


@pytest.fixture(scope="session")
def deployed(cloud: LocalCloud) -> Deployed:
    """The conformance fixture app (not ours), deployed once with the unchanged CDK CLI."""
    return Deployed(cloud=cloud, outputs=cloud.deploy(FIXTURE_APPS / "conformance")["conformance"])


@pytest.fixture(scope="session")
def pipeline(cloud: LocalCloud) -> dict[str, str]:
    """Every stack output of the deployed dev stage, merged (keys are unique across stacks)."""
    merged: dict[str, str] = {}
    for outputs in cloud.deploy(REPO).values():
        merged.update(outputs)
    return merged
