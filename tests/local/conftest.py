"""Shared fixtures for the local-cloud tests.

``cloud`` is ONE LocalCloud per test session (per xdist worker): moto's state is process-global,
so a process runs one cloud at a time. Tests deploy fixture apps into it and must not assume an
empty cloud (name resources uniquely, or read them from stack outputs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamline.local.cloud import LocalCloud
from streamline.local.contracts import ManualClock
from streamline.local.runtime import FunctionRunner
from streamline.local.runtime.testing import LocalMoto, local_moto
from tests.local.deployed import Deployed

FIXTURE_APPS = Path(__file__).resolve().parent.parent / "fixtures" / "apps"
REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    # moto warns about every CloudFormation type it skips; the reconciler applies those or
    # fails naming them, so the warnings are noise in test reports.
    config.addinivalue_line("filterwarnings", "ignore:Tried to parse:UserWarning")


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep the shared cloud and the tests that start their own moto server in separate workers.

    moto's state is process-global: a test harness with a fake invoker running beside the
    session cloud would have both engines serve the same mappings. With ``--dist loadgroup``
    each group runs in one worker process; `make test` runs the two groups one after the other
    (``-m own_moto``, then ``-m cloud``) so a loaded 2-core machine runs one engine set at a time.
    """
    cloud_fixtures = {"cloud", "deployed", "tiny_outputs"}
    for item in items:
        uses_cloud = bool(cloud_fixtures & set(getattr(item, "fixturenames", ())))
        item.add_marker(pytest.mark.xdist_group("cloud" if uses_cloud else "own-moto"))
        item.add_marker(pytest.mark.cloud if uses_cloud else pytest.mark.own_moto)


# A bare embedded moto server and a function runner on it, per test module: the runtime and
# async-engine tests run functions without the session cloud (they run in the own-moto group).
@pytest.fixture(scope="module")
def moto() -> Iterator[LocalMoto]:
    with local_moto() as server:
        yield server


@pytest.fixture(scope="module")
def runner(moto: LocalMoto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionRunner]:
    runner = FunctionRunner(moto.backends, tmp_path_factory.mktemp("state"), moto.endpoint_url)
    yield runner
    runner.shutdown()
