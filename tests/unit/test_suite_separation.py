"""tests/local/engine and tests/local/cloud never share a pytest process (moto's state is
process-global): a session that collects both is refused with one line; each alone collects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _collect(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", *paths],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_session_with_both_folders_is_refused() -> None:
    both = _collect("tests/local")
    assert both.returncode != 0
    assert "run them in separate sessions" in both.stdout + both.stderr


def test_each_folder_alone_collects() -> None:
    for folder in ("tests/local/engine", "tests/local/cloud"):
        alone = _collect(folder)
        assert alone.returncode == 0, alone.stdout[-2000:] + alone.stderr[-2000:]
        assert " collected" in alone.stdout or "tests collected" in alone.stdout
