"""SIGKILL of the local cloud in the middle of the demo's flow loses nothing.

The cloud runs as a process of its own (`streamline local up --detach`), with Streamline's
stacks deployed into it. Events flow through every path; while they are being processed the
cloud is killed with SIGKILL, `local up` brings it back from its journal, and the run goes on to
the conservation check: every event in the sink exactly once, or quarantined with its reason.
(Once, a kill lost every stack, table and queue; after a graceful restart a kill numbered new
records below the shards' checkpoints and 738 of 2,000 events vanished.)
"""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from streamline.demo.conservation import Effect, check
from streamline.demo.observe import quarantined_records, scan_table
from streamline.demo.run import PATH_SHARES, path_producers, process_and_recover, split_paths
from streamline.local.deploy import deploy
from streamline.local.remote import RemoteCloud
from streamline.producers import generate_events
from tests.detached import down, kill, up

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _produce(cloud: RemoteCloud, outputs: dict[str, str], by_path: dict[str, list[Any]]) -> None:
    producers = path_producers(cloud, outputs)
    for path, events in by_path.items():
        for producer in producers[path]:
            report = producer.send(events)
            assert report.failed == [], report.failed


def test_a_sigkill_in_the_middle_of_the_flow_loses_nothing(tmp_path: Path) -> None:
    state = tmp_path / "cloud"
    first = up(state)
    cloud = RemoteCloud(first.endpoint_url)
    try:
        # The dev stage with 5 s function timeouts: queue visibility follows (35 s, not 185 s),
        # so the batches the killed cloud held in flight come back within the test's patience.
        stages = json.loads((REPO / "cdk.json").read_text())["context"]["stages"]
        crash = {**stages["dev"], "functionTimeoutSeconds": 5}
        context = {"stage": "crash", "stages": json.dumps({"crash": crash})}
        outputs: dict[str, str] = {}
        for stack in deploy(REPO, cloud.endpoint_url, context).values():
            outputs.update(stack)
        planned = generate_events(
            240,
            poison_rate=0.02,
            transient_rate=0.05,
            transient_for=timedelta(seconds=2),
            seed=20261207,
        )
        by_path = split_paths(planned, PATH_SHARES, random.Random(20261207))
        produced_at = time.time()
        _produce(cloud, outputs, by_path)

        # Kill it while the pipeline is busy: some effects in the sink, records still flowing.
        effects_table = outputs["EffectsTableName"]
        deadline = time.monotonic() + 180
        while len(scan_table(cloud, effects_table)) < 20:
            assert time.monotonic() < deadline, "no effects appeared"
            time.sleep(0.2)
        assert cloud.busy(), "killed mid-flight, not after the work was done"
        kill(first.pid)

        cloud = RemoteCloud(up(state, first.port).endpoint_url)
        tally = process_and_recover(
            cloud,
            outputs,
            timeout=600,
            recover_from=produced_at + 3,
            out=lambda line: None,
        )

        effects = [
            Effect(str(i["effect_id"]), str(i.get("event_id", "")))
            for i in scan_table(cloud, effects_table)
        ]
        verdict = check(by_path, effects, quarantined_records(cloud, outputs))
        assert verdict.ok, verdict.problems()
        assert verdict.delivered + verdict.quarantined == len(planned)
        assert tally.failed == [] or all("ABORTED" in f for f in tally.failed)
    finally:
        down(state)
