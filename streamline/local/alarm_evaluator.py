"""The local cloud's alarm engine: evaluates moto's metric alarms and fires their actions.

moto stores alarms and metric data but never evaluates an alarm, so on the local cloud an alarm
would sit in its initial state forever. :class:`AlarmEvaluator` closes that gap: it reads alarms
and samples from moto's CloudWatch backend under the moto lock, applies the rules of
:mod:`streamline.local.alarm_rules` (pure, no moto), writes each new state back through
``set_alarm_state`` (so DescribeAlarms shows it) and, on every state change, publishes AWS's
alarm notification to the SNS topics in the alarm's actions for the new state.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamline.local.alarm_rules import (
    ALARM,
    COMPARISONS,
    INSUFFICIENT_DATA,
    OK,
    AlarmDefinition,
    Sample,
    alarm_message,
    alarm_subject,
    evaluate,
)

if TYPE_CHECKING:
    from streamline.local.contracts import Clock
    from streamline.local.server import Backends

__all__ = ["AlarmEvaluator", "Transition"]

LOGGER = logging.getLogger(__name__)

# The reason of an alarm nothing has evaluated yet (moto's; our patch starts it in
# INSUFFICIENT_DATA, as AWS does, where moto chose OK).
_UNCHECKED_REASON = "Unchecked: Initial alarm creation"


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
        if alarm.comparison_operator not in COMPARISONS:
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
