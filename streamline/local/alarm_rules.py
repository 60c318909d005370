"""CloudWatch's metric-alarm rules, pure: a definition, its samples and a time give a state.

This module knows AWS's rules and nothing about moto (:mod:`streamline.local.alarm_evaluator`
runs them over moto's CloudWatch backend): bucket raw samples into periods
(:func:`aggregate`), pick the periods an evaluation looks at (:func:`evaluation_range`),
compute the statistic or percentile, apply the M-out-of-N rule and the missing-data treatment
(:func:`evaluate`), and write the reason, the ``StateReasonData`` and the SNS notification
(:func:`alarm_subject`, :func:`alarm_message`) the way CloudWatch writes them.

The rules follow the CloudWatch User Guide ("Evaluating an alarm" and "Configuring how
CloudWatch alarms treat missing data"):

* the evaluation range is the last ``EvaluationPeriods`` periods; a period with no sample is
  *missing*;
* ``breaching`` / ``notBreaching`` fill missing periods, then the alarm is ALARM when at least
  ``DatapointsToAlarm`` (M) of the N periods breach, otherwise OK;
* ``missing`` (the default): with no datapoint in the range the alarm goes INSUFFICIENT_DATA;
  otherwise only the present datapoints count, and when fewer than M are present the alarm is
  ALARM only if every present datapoint breaches;
* ``ignore``: the alarm keeps its state when fewer than M datapoints are present, otherwise the
  present datapoints decide as with ``missing``.

Example::

    definition = AlarmDefinition(
        name="dlq-depth", namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
        statistic="Maximum", period=60, evaluation_periods=1, threshold=1.0,
        comparison_operator="GreaterThanOrEqualToThreshold",
    )
    result = evaluate(definition, [(now - 5, 3.0)], now=now, current_state="OK")
    result.state    # "ALARM"
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "ALARM",
    "COMPARISONS",
    "INSUFFICIENT_DATA",
    "OK",
    "AlarmDefinition",
    "Datapoint",
    "Evaluation",
    "Sample",
    "aggregate",
    "alarm_message",
    "alarm_subject",
    "evaluate",
    "evaluation_range",
    "percentile",
]


OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"

# How CloudWatch words each comparison in a reason ("was greater than or equal to the threshold").
COMPARISONS: dict[str, str] = {
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "GreaterThanThreshold": "greater than",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
_STATISTICS = ("Sum", "Average", "Minimum", "Maximum", "SampleCount")
_MISSING_MODES = ("missing", "notBreaching", "breaching", "ignore")
# Display names CloudWatch uses in notification subjects and the "Region" field.
_REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
}


@dataclass(frozen=True, slots=True)
class AlarmDefinition:
    """The parts of a metric alarm (PutMetricAlarm's fields) that decide its state.

    Exactly one of ``statistic`` (Sum, Average, Minimum, Maximum, SampleCount) and
    ``extended_statistic`` (a percentile such as ``p99`` or ``p99.9``) is set.
    """

    name: str
    namespace: str
    metric_name: str
    period: int
    evaluation_periods: int
    threshold: float
    comparison_operator: str
    statistic: str | None = None
    extended_statistic: str | None = None
    dimensions: tuple[tuple[str, str], ...] = ()
    datapoints_to_alarm: int | None = None
    treat_missing_data: str = "missing"
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.comparison_operator not in COMPARISONS:
            raise ValueError(f"unsupported ComparisonOperator {self.comparison_operator!r}")
        if (self.statistic is None) == (self.extended_statistic is None):
            raise ValueError("set exactly one of Statistic and ExtendedStatistic")
        if self.statistic is not None and self.statistic not in _STATISTICS:
            raise ValueError(f"unsupported Statistic {self.statistic!r}")
        if self.extended_statistic is not None:
            _percentile_rank(self.extended_statistic)  # validates
        if self.treat_missing_data not in _MISSING_MODES:
            raise ValueError(f"unsupported TreatMissingData {self.treat_missing_data!r}")
        if self.period <= 0 or self.evaluation_periods <= 0:
            raise ValueError("Period and EvaluationPeriods must be positive")

    @property
    def required(self) -> int:
        """M: breaching datapoints needed for ALARM (DatapointsToAlarm, default N)."""
        return self.datapoints_to_alarm or self.evaluation_periods

    @property
    def stat_name(self) -> str:
        return self.statistic or self.extended_statistic or ""

    @classmethod
    def from_api(cls, alarm: Mapping[str, Any]) -> AlarmDefinition:
        """Build one from a DescribeAlarms ``MetricAlarms`` entry (or PutMetricAlarm params)."""
        return cls(
            name=alarm["AlarmName"],
            namespace=alarm["Namespace"],
            metric_name=alarm["MetricName"],
            period=int(alarm["Period"]),
            evaluation_periods=int(alarm["EvaluationPeriods"]),
            threshold=float(alarm["Threshold"]),
            comparison_operator=alarm["ComparisonOperator"],
            statistic=alarm.get("Statistic"),
            extended_statistic=alarm.get("ExtendedStatistic"),
            dimensions=tuple((d["Name"], d["Value"]) for d in alarm.get("Dimensions", ())),
            datapoints_to_alarm=alarm.get("DatapointsToAlarm"),
            treat_missing_data=alarm.get("TreatMissingData") or "missing",
            unit=alarm.get("Unit"),
        )


@dataclass(frozen=True, slots=True)
class Sample:
    """One stored metric value: a raw value (``values=(v,)``) or a StatisticSet without values."""

    timestamp: float
    sum: float
    minimum: float
    maximum: float
    count: float
    values: tuple[float, ...] = ()

    @classmethod
    def of(cls, timestamp: float, value: float) -> Sample:
        return cls(timestamp, value, value, value, 1.0, (value,))


@dataclass(frozen=True, slots=True)
class Datapoint:
    """One period's statistic: ``timestamp`` is the period's start (epoch seconds)."""

    timestamp: float
    value: float
    sample_count: float


@dataclass(frozen=True, slots=True)
class Evaluation:
    """An alarm's evaluated state, CloudWatch's reason text and its ``StateReasonData``.

    ``datapoints`` holds one entry per period of the range, newest first, ``None`` if missing.
    """

    state: str
    reason: str
    reason_data: dict[str, Any]
    datapoints: tuple[Datapoint | None, ...]


def evaluation_range(
    definition: AlarmDefinition, samples: Iterable[Sample | tuple[float, float]], now: float
) -> list[float]:
    """The start times of the N periods an evaluation at ``now`` looks at, newest first.

    Periods are aligned to multiples of ``Period`` since the epoch, as CloudWatch aligns them.
    The period in progress counts only once it has a sample: counting an empty period that has
    barely begun as *missing* would flip ``breaching`` alarms on every period boundary.
    """
    period = definition.period
    current = float(math.floor(now / period) * period)
    has_current = any(current <= _sample(s).timestamp <= now for s in samples)
    newest = current if has_current else current - period
    return [newest - i * period for i in range(definition.evaluation_periods)]


def aggregate(
    samples: Iterable[Sample | tuple[float, float]],
    period: int,
    statistic: str,
) -> dict[float, Datapoint]:
    """Bucket samples into periods and compute ``statistic`` (or pNN) for each non-empty one."""
    buckets: dict[float, list[Sample]] = {}
    for raw in samples:
        sample = _sample(raw)
        bucket = float(math.floor(sample.timestamp / period) * period)
        buckets.setdefault(bucket, []).append(sample)
    result: dict[float, Datapoint] = {}
    for start, members in buckets.items():
        value = _statistic(members, statistic)
        if value is not None:
            count = sum(m.count for m in members)
            result[start] = Datapoint(start, value, count)
    return result


def evaluate(
    definition: AlarmDefinition,
    samples: Iterable[Sample | tuple[float, float]],
    *,
    now: float,
    current_state: str = INSUFFICIENT_DATA,
) -> Evaluation:
    """The alarm's state at ``now`` from the samples of its metric, with CloudWatch's reason.

    ``samples`` may be ``(timestamp, value)`` pairs or :class:`Sample` objects; those outside the
    evaluation range are ignored. ``current_state`` is kept when the rules say so (``ignore``)
    and names the transition in the reason ("OK -> ALARM").
    """
    samples = list(samples)
    starts = evaluation_range(definition, samples, now)
    in_range = [
        s
        for s in map(_sample, samples)
        if starts[-1] <= s.timestamp < starts[0] + definition.period and s.timestamp <= now
    ]
    by_start = aggregate(in_range, definition.period, definition.stat_name)
    datapoints = tuple(by_start.get(start) for start in starts)
    present = [dp for dp in datapoints if dp is not None]
    breaching = [dp for dp in present if _breaches(definition, dp.value)]
    calm = [dp for dp in present if not _breaches(definition, dp.value)]
    missing = len(datapoints) - len(present)
    mode = definition.treat_missing_data
    n, m = definition.evaluation_periods, definition.required

    if mode in ("breaching", "notBreaching"):
        filled = len(breaching) + (missing if mode == "breaching" else 0)
        state = ALARM if filled >= m else OK
    elif not present:
        state = current_state if mode == "ignore" else INSUFFICIENT_DATA
    elif len(present) < m and mode == "ignore":
        state = current_state
    else:
        # Only the present datapoints count; fewer than M present alarm only if all breach.
        state = ALARM if len(breaching) >= min(m, len(present)) else OK

    reason = _reason(definition, state, current_state, present, breaching, calm, missing, n, m)
    data = _reason_data(definition, now, starts, datapoints)
    return Evaluation(state, reason, data, datapoints)


def _sample(raw: Sample | tuple[float, float]) -> Sample:
    return raw if isinstance(raw, Sample) else Sample.of(float(raw[0]), float(raw[1]))


def _percentile_rank(extended: str) -> float:
    if not extended.startswith("p"):
        raise ValueError(f"unsupported ExtendedStatistic {extended!r}")
    try:
        rank = float(extended[1:])
    except ValueError:
        raise ValueError(f"unsupported ExtendedStatistic {extended!r}") from None
    if not 0.0 <= rank <= 100.0:
        raise ValueError(f"unsupported ExtendedStatistic {extended!r}")
    return rank


def _statistic(samples: Sequence[Sample], statistic: str) -> float | None:
    count = sum(s.count for s in samples)
    if not samples or count <= 0:
        return None
    if statistic == "Sum":
        return sum(s.sum for s in samples)
    if statistic == "Average":
        return sum(s.sum for s in samples) / count
    if statistic == "Minimum":
        return min(s.minimum for s in samples)
    if statistic == "Maximum":
        return max(s.maximum for s in samples)
    if statistic == "SampleCount":
        return count
    # A percentile needs the raw values; a StatisticSet carries none, as in CloudWatch.
    return percentile([v for s in samples for v in s.values], statistic)


def percentile(values: Sequence[float], statistic: str) -> float | None:
    """CloudWatch's ``pNN`` of raw values, None when there are none; ValueError when
    ``statistic`` is no percentile."""
    rank = _percentile_rank(statistic)
    if not values:
        return None
    ordered = sorted(values)
    # Nearest rank: the smallest value with at least rank% of the values at or below it.
    return ordered[max(0, math.ceil(rank / 100.0 * len(ordered)) - 1)]


def _breaches(definition: AlarmDefinition, value: float) -> bool:
    threshold = definition.threshold
    match definition.comparison_operator:
        case "GreaterThanOrEqualToThreshold":
            return value >= threshold
        case "GreaterThanThreshold":
            return value > threshold
        case "LessThanThreshold":
            return value < threshold
        case _:
            return value <= threshold


def _number(value: float) -> str:
    return repr(float(value))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _listing(points: Sequence[Datapoint]) -> str:
    stamps = (
        f"{_number(dp.value)} ({datetime.fromtimestamp(dp.timestamp, UTC):%d/%m/%y %H:%M:%S})"
        for dp in points
    )
    return "[" + ", ".join(stamps) + "]"


def _reason(
    definition: AlarmDefinition,
    state: str,
    current: str,
    present: Sequence[Datapoint],
    breaching: Sequence[Datapoint],
    calm: Sequence[Datapoint],
    missing: int,
    n: int,
    m: int,
) -> str:
    mode = definition.treat_missing_data
    treated = {"breaching": "Breaching", "notBreaching": "NonBreaching"}.get(mode)
    if state == INSUFFICIENT_DATA:
        verb = "was" if missing == 1 else "were"
        return f"Insufficient Data: {_plural(missing, 'datapoint')} {verb} unknown."
    if not present:
        if treated is None:  # ignore with no data: the state is kept
            return f"Unchecked: no datapoints were received for {_plural(missing, 'period')}."
        verb = "was" if missing == 1 else "were"
        return (
            f"Threshold Crossed: no datapoints were received for {_plural(missing, 'period')} "
            f"and {_plural(missing, 'missing datapoint')} {verb} treated as [{treated}]."
        )
    comparison = COMPARISONS[definition.comparison_operator]
    if state == ALARM:
        matching, relation = breaching, comparison
        minimum = m
    else:
        matching, relation = calm, f"not {comparison}"
        # ALARM needs M breaching datapoints of N, so OK is certain once N - M + 1 do not breach.
        minimum = n - m + 1
    verb = "was" if len(matching) == 1 else "were"
    text = (
        f"Threshold Crossed: {len(matching)} out of the last {len(present)} datapoints"
        f" {_listing(matching)} {verb} {relation} the threshold ({_number(definition.threshold)})"
    )
    if missing and treated is not None:
        was = "was" if missing == 1 else "were"
        text += f" and {_plural(missing, 'missing datapoint')} {was} treated as [{treated}]"
    return f"{text} (minimum {_plural(minimum, 'datapoint')} for {current} -> {state} transition)."


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _reason_data(
    definition: AlarmDefinition,
    now: float,
    starts: Sequence[float],
    datapoints: Sequence[Datapoint | None],
) -> dict[str, Any]:
    present = [dp for dp in datapoints if dp is not None]
    return {
        "version": "1.0",
        "queryDate": _iso(now),
        "startDate": _iso(starts[-1]),
        "statistic": definition.stat_name,
        "period": definition.period,
        "recentDatapoints": [dp.value for dp in reversed(present)],
        "threshold": definition.threshold,
        "evaluatedDatapoints": [
            {"timestamp": _iso(dp.timestamp), "sampleCount": dp.sample_count, "value": dp.value}
            for dp in present
        ],
    }


# --------------------------------------------------------------------------------------------
# Notifications
# --------------------------------------------------------------------------------------------


def _region_name(region: str) -> str:
    return _REGION_NAMES.get(region, region)


def alarm_subject(alarm_name: str, state: str, region: str) -> str:
    """The SNS Subject CloudWatch sends: ``ALARM: "name" in US East (N. Virginia)``.

    SNS subjects are limited to 100 characters, so CloudWatch truncates long ones.
    """
    return f'{state}: "{alarm_name}" in {_region_name(region)}'[:100]


def alarm_message(
    alarm: Mapping[str, Any],
    *,
    account_id: str,
    region: str,
    old_state: str,
    new_state: str,
    reason: str,
    changed_at: float,
) -> dict[str, Any]:
    """CloudWatch's alarm notification body (the SNS ``Message``) for a DescribeAlarms entry."""
    trigger: dict[str, Any] = {
        "MetricName": alarm.get("MetricName"),
        "Namespace": alarm.get("Namespace"),
    }
    if alarm.get("ExtendedStatistic"):
        trigger["StatisticType"] = "ExtendedStatistic"
        trigger["ExtendedStatistic"] = alarm["ExtendedStatistic"]
    else:
        trigger["StatisticType"] = "Statistic"
        trigger["Statistic"] = str(alarm.get("Statistic", "")).upper()
    trigger.update(
        {
            "Unit": alarm.get("Unit"),
            "Dimensions": [
                {"value": d["Value"], "name": d["Name"]} for d in alarm.get("Dimensions", ())
            ],
            "Period": alarm.get("Period"),
            "EvaluationPeriods": alarm.get("EvaluationPeriods"),
            "DatapointsToAlarm": alarm.get("DatapointsToAlarm") or alarm.get("EvaluationPeriods"),
            "ComparisonOperator": alarm.get("ComparisonOperator"),
            "Threshold": alarm.get("Threshold"),
            "TreatMissingData": alarm.get("TreatMissingData") or "missing",
            "EvaluateLowSampleCountPercentile": alarm.get("EvaluateLowSampleCountPercentile") or "",
        }
    )
    updated = alarm.get("AlarmConfigurationUpdatedTimestamp")
    return {
        "AlarmName": alarm["AlarmName"],
        "AlarmDescription": alarm.get("AlarmDescription"),
        "AWSAccountId": account_id,
        "AlarmConfigurationUpdatedTimestamp": _iso(updated) if updated is not None else None,
        "NewStateValue": new_state,
        "NewStateReason": reason,
        "StateChangeTime": _iso(changed_at),
        "Region": _region_name(region),
        "AlarmArn": alarm.get("AlarmArn"),
        "OldStateValue": old_state,
        "OKActions": list(alarm.get("OKActions", ())),
        "AlarmActions": list(alarm.get("AlarmActions", ())),
        "InsufficientDataActions": list(alarm.get("InsufficientDataActions", ())),
        "Trigger": trigger,
    }
