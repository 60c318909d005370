"""`streamline alarms` against the local cloud: states, filters, transitions, one-line errors."""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any

import pytest

from streamline.local.cloud import LocalCloud
from streamline.ops.alarm_states import run
from streamline.ops.target import Target


def _args(**overrides: Any) -> argparse.Namespace:
    base = {"state": None, "prefix": "", "history": 10, "json": True}
    return argparse.Namespace(**{**base, **overrides})


def _alarm(cloud: LocalCloud, name: str) -> None:
    cloud.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )


def test_alarms_lists_states_worst_first_with_transitions(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"ops-{uuid.uuid4().hex[:6]}-"
    _alarm(cloud, prefix + "quiet")
    _alarm(cloud, prefix + "firing")
    cloud.client("cloudwatch").set_alarm_state(
        AlarmName=prefix + "firing", StateValue="ALARM", StateReason="threshold crossed"
    )
    target = Target(endpoint_url=cloud.endpoint_url, profile=None, region=None)

    assert run(_args(prefix=prefix), target) == 0
    report = json.loads(capsys.readouterr().out)

    assert [a["name"] for a in report["alarms"]] == [prefix + "firing", prefix + "quiet"]
    assert report["alarms"][0]["state"] == "ALARM"
    assert any(
        t["name"] == prefix + "firing" and t["summary"].endswith("to ALARM")
        for t in report["transitions"]
    )

    assert run(_args(prefix=prefix, state="ALARM"), target) == 0
    only = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in only["alarms"]] == [prefix + "firing"]


def test_alarms_without_a_cloud_or_with_bad_history_is_one_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(_args(history=-1, state_dir=str(tmp_path))) == 2
    assert run(_args(state_dir=str(tmp_path), profile=None, region=None)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no local cloud is running" in err[1]
