"""Fixtures for the engine tests: a bare embedded moto server and a function runner on it, per
test module, so the runtime and async-engine tests run functions without any deployed app."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streamline.local.runtime import FunctionRunner
from streamline.local.runtime.testing import LocalMoto, local_moto


@pytest.fixture(scope="module")
def moto() -> Iterator[LocalMoto]:
    with local_moto() as server:
        yield server


@pytest.fixture(scope="module")
def runner(moto: LocalMoto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionRunner]:
    runner = FunctionRunner(moto.backends, tmp_path_factory.mktemp("state"), moto.endpoint_url)
    yield runner
    runner.shutdown()
