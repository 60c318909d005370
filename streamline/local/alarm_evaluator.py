"""CloudWatch metric alarms for the local cloud: a pure evaluation core and the engine that runs it.

moto stores alarms and metric data but never evaluates an alarm, so on the local cloud an alarm
would sit in its initial state forever. This module closes that gap in two layers:

* a **pure core** (:func:`evaluate`, :func:`aggregate`, :func:`evaluation_range`) that knows
  AWS's rules and nothing about moto: bucket raw samples into periods, compute the statistic,
  apply the M-out-of-N rule and the missing-data treatment, and write the reason the way
  CloudWatch writes it;
* :class:`AlarmEvaluator`, which reads alarms and samples from moto's CloudWatch backend under
  the moto lock, writes each new state back through ``set_alarm_state`` (so DescribeAlarms shows
  it) and, on every state change, publishes AWS's alarm notification to the SNS topics in the
  alarm's actions for the new state.

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

import json
import logging
import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamline.local.contracts import Clock
    from streamline.local.server import Backends

__all__ = [
    "ALARM",
    "INSUFFICIENT_DATA",
    "OK",
    "AlarmDefinition",
    "AlarmEvaluator",
    "Datapoint",
    "Evaluation",
    "Sample",
    "Transition",
    "aggregate",
    "alarm_message",
    "alarm_subject",
    "evaluate",
    "evaluation_range",
]

LOGGER = logging.getLogger(__name__)

OK = "OK"
ALARM = "ALARM"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"

# How CloudWatch words each comparison in a reason ("was greater than or equal to the threshold").
_COMPARISONS: dict[str, str] = {
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "GreaterThanThreshold": "greater than",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
_STATISTICS = ("Sum", "Average", "Minimum", "Maximum", "SampleCount")
_MISSING_MODES = ("missing", "notBreaching", "breaching", "ignore")
# The reason of an alarm nothing has evaluated yet (moto's; our patch starts it in
# INSUFFICIENT_DATA, as AWS does, where moto chose OK).
_UNCHECKED_REASON = "Unchecked: Initial alarm creation"
# Display names CloudWatch uses in notification subjects and the "Region" field.
_REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
}


# --------------------------------------------------------------------------------------------
# The pure core
# --------------------------------------------------------------------------------------------


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
        if self.comparison_operator not in _COMPARISONS:
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
    comparison = _COMPARISONS[definition.comparison_operator]
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


# --------------------------------------------------------------------------------------------
# The engine over moto
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change the evaluator made (for ``streamline alarms``)."""

    alarm_name: str
    alarm_arn: str
    old_state: str
    new_state: str
    reason: str
    timestamp: float
    notified: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Pending:
    """A state change to announce once the backend has recorded it."""

    alarm: dict[str, Any]
    transition: Transition
    actions: tuple[str, ...]


@dataclass
class AlarmEvaluator:
    """Evaluates every metric alarm in moto's CloudWatch backend and fires its actions.

    ``evaluate_once()`` runs one pass (tests call it directly); ``start()`` runs a pass every
    ``interval`` seconds of ``clock`` time on a daemon thread until ``stop()``. With
    ``endpoint_url`` set, notifications go through the SNS API over HTTP (outside the moto
    lock); otherwise they are published in process under the lock, which delivers to SQS
    subscribers at once.

    Example::

        evaluator = AlarmEvaluator(cloud.backends, ManualClock())
        changed = evaluator.evaluate_once()      # [Transition(alarm_name=..., new_state="ALARM")]
    """

    backends: Backends
    clock: Clock
    endpoint_url: str | None = None
    interval: float = 10.0
    history: int = 200
    _transitions: deque[Transition] = field(init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _sns_client: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._transitions = deque(maxlen=self.history)

    def start(self) -> AlarmEvaluator:
        if self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def transitions(self) -> list[Transition]:
        """Recent state changes, oldest first."""
        return list(self._transitions)

    def evaluate_once(self) -> list[Transition]:
        """Evaluate every metric alarm now; return the transitions this pass made."""
        now = self.clock.now()
        pending: list[_Pending] = []
        with self.backends.lock:
            backend = self.backends.cloudwatch()
            for alarm in list(backend.alarms.values()):
                try:
                    change = self._evaluate_alarm(backend, alarm, now)
                except Exception:  # one odd alarm must not stop the others being evaluated
                    LOGGER.exception("evaluating alarm %s failed", getattr(alarm, "name", "?"))
                    continue
                if change is not None:
                    pending.append(change)
            if self.endpoint_url is None:
                return [self._announce(change) for change in pending]
        return [self._announce(change) for change in pending]

    # -- internals ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.evaluate_once()
            except Exception:  # keep evaluating; a failed pass is logged, not fatal
                LOGGER.exception("alarm evaluation pass failed")
            if self.clock.wait(self.interval, self._stop):
                return

    def _evaluate_alarm(self, backend: Any, alarm: Any, now: float) -> _Pending | None:
        if alarm.metric_data_queries or not alarm.metric_name or alarm.rule:
            return None  # metric-math and composite alarms are not evaluated locally
        if alarm.comparison_operator not in _COMPARISONS:
            return None  # anomaly-detection bands need a model CloudWatch trains
        definition = _definition(alarm)
        unchecked = alarm.state_reason == _UNCHECKED_REASON
        # AWS starts an alarm in INSUFFICIENT_DATA (an unpatched moto: OK, "Unchecked").
        old_state = INSUFFICIENT_DATA if unchecked else alarm.state_value
        samples = _samples(backend, definition, now)
        result = evaluate(definition, samples, now=now, current_state=old_state)
        if result.state == old_state:
            if unchecked:  # record AWS's initial state without announcing a change
                backend.set_alarm_state(
                    alarm.name, result.reason, json.dumps(result.reason_data), result.state
                )
            return None
        backend.set_alarm_state(
            alarm.name, result.reason, json.dumps(result.reason_data), result.state
        )
        actions: list[str] = []
        if alarm.actions_enabled:
            actions = {
                ALARM: alarm.alarm_actions,
                OK: alarm.ok_actions,
                INSUFFICIENT_DATA: alarm.insufficient_data_actions,
            }[result.state] or []
        transition = Transition(
            alarm.name, alarm.alarm_arn, old_state, result.state, result.reason, now
        )
        return _Pending(_describe(alarm), transition, tuple(actions))

    def _announce(self, change: _Pending) -> Transition:
        transition = change.transition
        subject = alarm_subject(transition.alarm_name, transition.new_state, self.backends.region)
        message = json.dumps(
            alarm_message(
                change.alarm,
                account_id=self.backends.account_id,
                region=self.backends.region,
                old_state=transition.old_state,
                new_state=transition.new_state,
                reason=transition.reason,
                changed_at=transition.timestamp,
            )
        )
        notified: list[str] = []
        for action in change.actions:
            if ":sns:" not in action:
                LOGGER.info("alarm %s: action %s is not run locally", transition.alarm_name, action)
                continue
            try:
                self._publish(action, subject, message)
                notified.append(action)
            except Exception:  # a deleted topic must not stop the other actions
                LOGGER.exception("alarm %s: publishing to %s failed", transition.alarm_name, action)
        recorded = Transition(
            transition.alarm_name,
            transition.alarm_arn,
            transition.old_state,
            transition.new_state,
            transition.reason,
            transition.timestamp,
            tuple(notified),
        )
        self._transitions.append(recorded)
        return recorded

    def _publish(self, topic_arn: str, subject: str, message: str) -> None:
        if self.endpoint_url is None:
            with self.backends.lock:
                self.backends.sns().publish(message=message, arn=topic_arn, subject=subject)
            return
        if self._sns_client is None:
            from streamline.local.clients import make_client

            self._sns_client = make_client("sns", self.endpoint_url)
        self._sns_client.publish(TopicArn=topic_arn, Subject=subject, Message=message)


def _definition(alarm: Any) -> AlarmDefinition:
    return AlarmDefinition(
        name=alarm.name,
        namespace=alarm.namespace,
        metric_name=alarm.metric_name,
        period=int(alarm.period),
        evaluation_periods=int(alarm.evaluation_periods),
        threshold=float(alarm.threshold),
        comparison_operator=alarm.comparison_operator,
        statistic=None if alarm.extended_statistic else alarm.statistic,
        extended_statistic=alarm.extended_statistic or None,
        dimensions=tuple((d.name, d.value) for d in alarm.dimensions),
        datapoints_to_alarm=int(alarm.datapoints_to_alarm) if alarm.datapoints_to_alarm else None,
        treat_missing_data=alarm.treat_missing_data or "missing",
        unit=alarm.unit,
    )


def _describe(alarm: Any) -> dict[str, Any]:
    """The alarm's fields as DescribeAlarms names them (for the notification body)."""
    described: dict[str, Any] = {
        "AlarmName": alarm.name,
        "AlarmArn": alarm.alarm_arn,
        "AlarmDescription": alarm.description,
        "MetricName": alarm.metric_name,
        "Namespace": alarm.namespace,
        "Unit": alarm.unit,
        "Dimensions": [{"Name": d.name, "Value": d.value} for d in alarm.dimensions],
        "Period": int(alarm.period),
        "EvaluationPeriods": int(alarm.evaluation_periods),
        "DatapointsToAlarm": int(alarm.datapoints_to_alarm) if alarm.datapoints_to_alarm else None,
        "ComparisonOperator": alarm.comparison_operator,
        "Threshold": float(alarm.threshold),
        "TreatMissingData": alarm.treat_missing_data,
        "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions or ()),
        "InsufficientDataActions": list(alarm.insufficient_data_actions),
        "AlarmConfigurationUpdatedTimestamp": _epoch(alarm.configuration_updated_timestamp),
    }
    if alarm.extended_statistic:
        described["ExtendedStatistic"] = alarm.extended_statistic
    else:
        described["Statistic"] = alarm.statistic
    return described


def _epoch(moment: Any) -> float:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:  # moto stores naive UTC datetimes
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    if isinstance(moment, str):
        return _epoch(datetime.fromisoformat(moment.replace("Z", "+00:00")))
    return float(moment)


def _samples(backend: Any, definition: AlarmDefinition, now: float) -> list[Sample]:
    """The samples of the alarm's exact metric (namespace, name, full dimension set, unit)."""
    wanted = set(definition.dimensions)
    # One period of slack before the range: evaluation_range decides which periods count.
    oldest = now - (definition.evaluation_periods + 1) * definition.period
    samples: list[Sample] = []
    for datum in backend.get_all_metrics():
        if datum.namespace != definition.namespace or datum.name != definition.metric_name:
            continue
        if {(d.name, d.value) for d in datum.dimensions} != wanted:
            continue
        if definition.unit and datum.unit != definition.unit:
            continue
        timestamp = _epoch(datum.timestamp)
        if not oldest <= timestamp <= now:
            continue
        if hasattr(datum, "value"):
            samples.append(Sample.of(timestamp, float(datum.value)))
        else:
            samples.append(
                Sample(
                    timestamp,
                    float(datum.sum),
                    float(datum.min),
                    float(datum.max),
                    float(datum.sample_count),
                )
            )
    return samples
