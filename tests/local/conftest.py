"""The local cloud's tests, in two folders that never share a pytest process.

- ``engine/``: the engines with scripted invokers on moto servers of their own (or clouds they
  start and kill themselves), and the pure parts of the platform.
- ``cloud/``: apps deployed with the unchanged CDK CLI into ONE LocalCloud per session.

moto's state is process-global: beside the session cloud, an engine test's harness would have
two engine sets serve the same mappings. So `make test` runs each folder in its own session, and
a session that collected both is refused here rather than left to fail in confusing ways.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SEPARATE_SESSIONS = ("engine", "cloud")


def pytest_configure(config: pytest.Config) -> None:
    # moto warns about every CloudFormation type it skips; the reconciler applies those or
    # fails naming them, so the warnings are noise in test reports.
    config.addinivalue_line("filterwarnings", "ignore:Tried to parse:UserWarning")


def pytest_collection_finish(session: pytest.Session) -> None:
    folders = {
        part
        for item in session.items
        if HERE in item.path.parents
        for part in item.path.relative_to(HERE).parts[:1]
        if part in SEPARATE_SESSIONS
    }
    if len(folders) > 1:
        raise pytest.UsageError(
            "tests/local/engine and tests/local/cloud share moto's process-global state: "
            "run them in separate sessions (make test-local)"
        )
