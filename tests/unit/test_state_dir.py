"""The local cloud's state dir is absolute, whatever the caller passed (function code is there)."""

from __future__ import annotations

import os
from pathlib import Path

from streamline.local.state import StateDir


def test_a_relative_state_dir_becomes_absolute(tmp_path: Path) -> None:
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert StateDir(".streamline/local").root == tmp_path.resolve() / ".streamline" / "local"
        assert StateDir().root.is_absolute()
    finally:
        os.chdir(previous)
