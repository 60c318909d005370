"""Per-stage settings come from cdk.json context; a wrong stage fails with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aws_cdk import App

from stacks import StageConfig, StageConfigError, build_pipeline

from .support import ROOT, Synth, cdk_context, resources


def test_dev_and_prod_differ_in_shards_memory_retention_and_removal(
    dev: Synth, prod: Synth
) -> None:
    def stream(s: Synth) -> dict:
        (only,) = resources(s.json("ingest"), "AWS::Kinesis::Stream").values()
        return only

    assert stream(dev)["Properties"]["ShardCount"] == 1
    assert stream(prod)["Properties"]["ShardCount"] == 4
    assert stream(dev)["Properties"]["RetentionPeriodHours"] == 24
    assert stream(prod)["Properties"]["RetentionPeriodHours"] == 168
    assert stream(dev)["DeletionPolicy"] == "Delete"
    assert stream(prod)["DeletionPolicy"] == "Retain"

    def memory(s: Synth) -> set[int]:
        return {
            f["Properties"]["MemorySize"]
            for concern in ("ingest", "processing", "orchestration")
            for f in resources(s.json(concern), "AWS::Lambda::Function").values()
        }

    assert memory(dev) == {256}
    assert memory(prod) == {1024}

    def table_policies(s: Synth) -> set[str]:
        return {
            t["DeletionPolicy"]
            for concern in ("ingest", "processing", "orchestration")
            for t in resources(s.json(concern), "AWS::DynamoDB::Table").values()
        }

    assert table_policies(dev) == {"Delete"}
    assert table_policies(prod) == {"Retain"}


def test_chaos_is_on_in_dev_and_off_in_prod(dev: Synth, prod: Synth) -> None:
    for synth, expected in ((dev, "true"), (prod, "false")):
        for function in resources(synth.json("ingest"), "AWS::Lambda::Function").values():
            assert function["Properties"]["Environment"]["Variables"]["CHAOS_ENABLED"] == expected


def test_stacks_are_named_per_stage_and_tagged(prod: Synth) -> None:
    assert [s.stack_name for s in prod.pipeline.stacks] == [
        "streamline-prod-ingest",
        "streamline-prod-processing",
        "streamline-prod-orchestration",
        "streamline-prod-monitoring",
    ]
    prod.template("ingest").has_resource_properties(
        "AWS::DynamoDB::Table",
        {"Tags": [{"Key": "project", "Value": "streamline"}, {"Key": "stage", "Value": "prod"}]},
    )


def test_unknown_stage_is_refused_with_the_known_ones() -> None:
    with pytest.raises(StageConfigError, match=r"unknown stage 'qa': expected one of dev, prod"):
        build_pipeline(App(context=cdk_context(stage="qa")))


def test_invalid_stage_values_are_refused() -> None:
    stages = cdk_context()["stages"]
    broken = {"dev": {**stages["dev"], "removalPolicy": "snapshot"}}
    with pytest.raises(StageConfigError, match="removalPolicy"):
        StageConfig.from_dict("dev", broken)
    broken = {"dev": {**stages["dev"], "shardCount": True}}
    with pytest.raises(StageConfigError, match="shardCount"):
        StageConfig.from_dict("dev", broken)
    broken = {"dev": {**stages["dev"], "logRetentionDays": 8}}
    with pytest.raises(StageConfigError, match="logRetentionDays"):
        StageConfig.from_dict("dev", broken)


def test_app_exits_with_one_line_for_an_unknown_stage() -> None:
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(cdk_context(stage="qa")),
        "CDK_OUTDIR": "/nonexistent",
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("streamline:")]
    assert errors == [
        "streamline: unknown stage 'qa': expected one of dev, prod (cdk.json context 'stages')"
    ]
