"""The README's layout section matches the tree: every path it starts a line with exists, and
every module of the folders a newcomer reads first is named in it (a file added or renamed
there without the README fails here)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Folders whose every module the layout names.
LISTED = ["stacks", "stacks/constructs", "streamline/ops", "streamline/cost", "streamline/demo"]


def _layout() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout\n", 1)[1]
    return section.split("```\n", 2)[1]


def test_every_path_the_layout_starts_a_line_with_exists() -> None:
    paths = [line.split()[0] for line in _layout().splitlines() if line and line[0] != " "]
    assert len(paths) > 15
    missing = [p for p in paths if not (REPO / p.rstrip("/")).exists()]
    assert not missing


def test_every_module_of_the_listed_folders_is_named() -> None:
    named = set(re.findall(r"[a-z_]+", _layout()))
    unnamed = [
        f"{folder}/{module.name}"
        for folder in LISTED
        for module in sorted((REPO / folder).iterdir())
        if module.suffix == ".py" and module.stem != "__init__" and module.stem not in named
    ]
    assert not unnamed
