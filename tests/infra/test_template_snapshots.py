"""The synthesized templates match the snapshots in `snapshots/`, key by key.

A refactor of the stacks must not change what `cdk deploy` creates: this test is how a change
shows that (issue 12's "templates unchanged"). A change that is meant to alter the templates
regenerates the snapshots with `STREAMLINE_UPDATE_SNAPSHOTS=1 make test-infra` and the diff of
`tests/infra/snapshots/` is then reviewed with the code.

Two things are normalized because they change without the infrastructure changing: the content
hash of a Lambda asset (any edit to `functions/` changes it) and the order of keys (CDK emits
exports in an order that varies between synths of the same commit).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from .support import CONCERNS, Synth

SNAPSHOTS = Path(__file__).parent / "snapshots"
ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")


def normalized(template: dict[str, Any]) -> str:
    text = json.dumps(template, sort_keys=True, indent=1)
    return ASSET_HASH.sub("<asset-hash>", text) + "\n"


@pytest.mark.parametrize("concern", CONCERNS)
def test_template_matches_snapshot(stage: Synth, concern: str) -> None:
    path = SNAPSHOTS / f"{stage.stage}-{concern}.json"
    actual = normalized(stage.json(concern))
    if os.environ.get("STREAMLINE_UPDATE_SNAPSHOTS") == "1":
        path.write_text(actual)
    assert path.exists(), f"no snapshot {path.name}: run with STREAMLINE_UPDATE_SNAPSHOTS=1"
    expected = path.read_text()
    if actual != expected:
        # a short, readable first difference rather than pytest's whole-string diff
        for number, (got, want) in enumerate(
            zip(actual.splitlines(), expected.splitlines(), strict=False), start=1
        ):
            if got != want:
                pytest.fail(f"{path.name} line {number}: expected {want!r}, synthesized {got!r}")
        pytest.fail(f"{path.name}: length differs ({len(actual)} vs {len(expected)} chars)")
