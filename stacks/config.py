"""Per-stage settings, read from the CDK context (`cdk.json` -> context.stages.<stage>).

Stacks never branch on the stage name: every difference between dev and prod is a value here.

Example:
    >>> app = cdk.App(context={"stage": "prod", "stages": {...}})
    >>> config = StageConfig.from_app(app)
    >>> config.shard_count
    4
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.constructs.alarm_specs import AlarmThresholds

__all__ = ["StageConfig", "StageConfigError"]

_REMOVAL_POLICIES = {"destroy": RemovalPolicy.DESTROY, "retain": RemovalPolicy.RETAIN}
_RETENTION_BY_DAYS = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


class StageConfigError(ValueError):
    """The CDK context does not describe a usable stage."""


@dataclass(frozen=True)
class StageConfig:
    """Everything that differs between stages."""

    stage: str
    shard_count: int
    stream_retention_hours: int
    memory_size: int
    log_retention_days: int
    removal_policy_name: str
    chaos_enabled: bool
    powertools_layer_version: int
    max_receive_count: int
    ingest_parallelization_factor: int
    alarms: AlarmThresholds = field(repr=False)
    #: The pipeline functions' timeout; queue visibility timeouts follow it (6x, AWS's advice).
    function_timeout_seconds: int = 30

    @property
    def removal_policy(self) -> RemovalPolicy:
        return _REMOVAL_POLICIES[self.removal_policy_name]

    @property
    def log_retention(self) -> logs.RetentionDays:
        return _RETENTION_BY_DAYS[self.log_retention_days]

    @property
    def stream_retention(self) -> Duration:
        return Duration.hours(self.stream_retention_hours)

    def stack_name(self, concern: str) -> str:
        return f"streamline-{self.stage}-{concern}"

    @classmethod
    def from_app(cls, scope: Construct) -> StageConfig:
        """Read context `stage` (default "dev") and its entry in context `stages`."""
        stage = scope.node.try_get_context("stage") or "dev"
        stages = scope.node.try_get_context("stages")
        if isinstance(stages, str):
            # `cdk deploy -c stages='{...}'`: a stage defined on the command line (tests do).
            try:
                stages = json.loads(stages)
            except ValueError as exc:
                raise StageConfigError(f"context 'stages' is not JSON: {exc}") from None
        if not isinstance(stages, dict) or not stages:
            raise StageConfigError(
                "CDK context 'stages' is missing: run cdk from the project root (cdk.json)"
            )
        return cls.from_dict(str(stage), stages)

    @classmethod
    def from_dict(cls, stage: str, stages: dict[str, Any]) -> StageConfig:
        if stage not in stages:
            known = ", ".join(sorted(stages))
            raise StageConfigError(
                f"unknown stage {stage!r}: expected one of {known} (cdk.json context 'stages')"
            )
        raw = stages[stage]
        where = f"stages.{stage}"
        removal = raw.get("removalPolicy")
        if removal not in _REMOVAL_POLICIES:
            raise StageConfigError(f"{where}.removalPolicy must be 'destroy' or 'retain'")
        retention_days = _int(raw, "logRetentionDays", where, minimum=1)
        if retention_days not in _RETENTION_BY_DAYS:
            allowed = ", ".join(str(d) for d in sorted(_RETENTION_BY_DAYS))
            raise StageConfigError(f"{where}.logRetentionDays must be one of {allowed}")
        chaos = raw.get("chaosEnabled")
        if not isinstance(chaos, bool):
            raise StageConfigError(f"{where}.chaosEnabled must be true or false")
        alarms = raw.get("alarms")
        if not isinstance(alarms, dict):
            raise StageConfigError(f"{where}.alarms must be an object")
        return cls(
            stage=stage,
            shard_count=_int(raw, "shardCount", where, minimum=1),
            stream_retention_hours=_int(raw, "streamRetentionHours", where, minimum=24),
            memory_size=_int(raw, "memorySize", where, minimum=128),
            log_retention_days=retention_days,
            removal_policy_name=removal,
            chaos_enabled=chaos,
            powertools_layer_version=_int(raw, "powertoolsLayerVersion", where, minimum=1),
            max_receive_count=_int(raw, "maxReceiveCount", where, minimum=1),
            ingest_parallelization_factor=_int(
                raw, "ingestParallelizationFactor", where, minimum=1, maximum=10
            ),
            alarms=_alarms(alarms, f"{where}.alarms"),
            function_timeout_seconds=(
                _int(raw, "functionTimeoutSeconds", where, minimum=3, maximum=900)
                if "functionTimeoutSeconds" in raw
                else 30
            ),
        )


def _alarms(raw: dict[str, Any], where: str) -> AlarmThresholds:
    return AlarmThresholds(
        iterator_age_ms=_int(raw, "iteratorAgeMs", where, minimum=1),
        oldest_message_age_seconds=_int(raw, "oldestMessageAgeSeconds", where, minimum=1),
        function_errors=_int(raw, "functionErrors", where, minimum=1),
        dead_letter_messages=_int(raw, "deadLetterMessages", where, minimum=1),
    )


def _int(
    raw: dict[str, Any], key: str, where: str, *, minimum: int, maximum: int | None = None
) -> int:
    value = raw.get(key)
    # bool is an int subclass: `true` is not a shard count
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise StageConfigError(f"{where}.{key} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise StageConfigError(f"{where}.{key} must be <= {maximum}, got {value!r}")
    return value
