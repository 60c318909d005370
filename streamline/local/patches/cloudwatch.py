"""CloudWatch: alarms from CloudFormation, alarm history, alarm states and percentiles as on AWS.

moto skipped ``AWS::CloudWatch::Alarm`` in templates (so a dashboard's alarm widget failed the
stack), lacked DescribeAlarmHistory, started alarms in OK and reset them on update, and answered
percentile statistics with a 500 or no values. The alarm evaluator, dashboards and ``streamline
status`` rely on all of these.
"""

from __future__ import annotations

import json
from typing import Any

from streamline.local.alarm_rules import percentile
from streamline.local.patches.registry import install, moto_original, moto_patch


@moto_patch(
    "moto.cloudwatch.models:CloudWatchBackend.put_metric_alarm",
    "moto.cloudformation.parsing:get_model_list",
    "moto.cloudformation.parsing:get_model_map",
)
def cloudwatch_alarm_cloudformation() -> None:  # noqa: C901 - a model class defined in a patch
    """CloudFormation creates AWS::CloudWatch::Alarm (moto skipped it with a warning).

    A skipped alarm broke every template that refers to one: a dashboard's alarm widget takes
    ``Fn::GetAtt Alarm.Arn``, and moto failed the whole stack ("references undefined
    resource"). The model below creates the alarm through moto's own CloudWatch backend, so its
    name and ARN resolve like any other resource's. Metric-math alarms keep their queries.
    """
    from moto.cloudformation import parsing
    from moto.cloudwatch.models import (
        CloudWatchBackend,
        Dimension,
        Metric,
        MetricDataQuery,
        MetricStat,
        cloudwatch_backends,
    )
    from moto.core.common_models import CloudFormationModel

    def queries(metrics: list[dict[str, Any]] | None) -> list[Any] | None:
        if not metrics:
            return None
        out = []
        for query in metrics:
            stat = query.get("MetricStat")
            metric_stat = None
            if stat:
                metric = stat["Metric"]
                metric_stat = MetricStat(
                    metric=Metric(
                        metric_name=metric.get("MetricName"),
                        namespace=metric.get("Namespace"),
                        dimensions=[
                            Dimension(name=d["Name"], value=d["Value"])
                            for d in metric.get("Dimensions", [])
                        ],
                    ),
                    period=stat.get("Period"),
                    stat=stat.get("Stat"),
                    unit=stat.get("Unit"),
                )
            # moto annotates these as str but stores whatever the API sent (None included)
            fields: dict[str, Any] = {
                "query_id": query.get("Id"),
                "label": query.get("Label"),
                "period": query.get("Period"),
                "return_data": query.get("ReturnData"),
                "expression": query.get("Expression"),
                "metric_stat": metric_stat,
            }
            out.append(MetricDataQuery(**fields))
        return out

    class CloudFormationAlarm(CloudFormationModel):
        """The CloudFormation face of a moto CloudWatch alarm (registered by subclassing)."""

        def __init__(self, alarm: Any) -> None:
            self.alarm = alarm

        @property
        def physical_resource_id(self) -> str:
            return str(self.alarm.name)

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name == "Arn":
                return str(self.alarm.alarm_arn)
            raise KeyError(attribute_name)

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> CloudFormationAlarm:
            p = cloudformation_json["Properties"]
            backend: CloudWatchBackend = cloudwatch_backends[account_id][region_name]
            alarm = backend.put_metric_alarm(
                name=p.get("AlarmName") or resource_name,
                namespace=p.get("Namespace"),
                metric_name=p.get("MetricName"),
                metric_data_queries=queries(p.get("Metrics")),
                comparison_operator=p["ComparisonOperator"],
                evaluation_periods=int(p["EvaluationPeriods"]),
                datapoints_to_alarm=(
                    int(p["DatapointsToAlarm"]) if p.get("DatapointsToAlarm") else None
                ),
                period=int(p["Period"]) if p.get("Period") else None,  # type: ignore[arg-type]
                threshold=float(p["Threshold"]) if "Threshold" in p else None,  # type: ignore[arg-type]
                statistic=p.get("Statistic"),
                extended_statistic=p.get("ExtendedStatistic"),
                description=p.get("AlarmDescription"),
                dimensions=p.get("Dimensions", []),
                alarm_actions=p.get("AlarmActions", []),
                ok_actions=p.get("OKActions", []),
                insufficient_data_actions=p.get("InsufficientDataActions", []),
                unit=p.get("Unit"),
                actions_enabled=p.get("ActionsEnabled", True),
                treat_missing_data=p.get("TreatMissingData"),
                tags=p.get("Tags", []),
            )
            return cls(alarm)

        @classmethod
        def update_from_cloudformation_json(
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> CloudFormationAlarm:
            return cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )

        @classmethod
        def delete_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])

    # A module-level name, so a saved cloud state (``persistence``) can pickle the stacks'
    # references to these resources.
    CloudFormationAlarm.__qualname__ = "CloudFormationAlarm"
    globals()["CloudFormationAlarm"] = CloudFormationAlarm

    # moto caches its model list; drop the cache so the new subclass is found.
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    if hasattr(parsing, "get_name_type_map"):
        parsing.get_name_type_map.cache_clear()


@moto_patch("moto.cloudwatch.responses:CloudWatchResponse.describe_alarms")
def cloudwatch_describe_alarm_history() -> None:
    """DescribeAlarmHistory answers with each alarm's state transitions (moto lacked the API).

    moto keeps, per alarm, the state it had before each update; pairing each entry with the one
    after it (or the current state) gives AWS's StateUpdate items, newest first.
    """
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult

    def describe_alarm_history(self: Any) -> Any:
        name = self._get_param("AlarmName")
        kind = self._get_param("HistoryItemType")
        limit = int(self._get_param("MaxRecords") or 100)
        alarms = self.cloudwatch_backend.describe_alarms()
        items: list[dict[str, Any]] = []
        for alarm in alarms:
            if name and alarm.name != name:
                continue
            snapshots = [h for h in alarm.history if h[0] == "StateUpdate"]
            for index, (_, _, _, old_state, _) in enumerate(snapshots):
                if index + 1 < len(snapshots):
                    _, reason, _, new_state, at = snapshots[index + 1]
                else:
                    reason, new_state = alarm.state_reason, alarm.state_value
                    at = alarm.state_updated_timestamp
                items.append(
                    {
                        "AlarmName": alarm.name,
                        "AlarmType": "MetricAlarm",
                        "Timestamp": at,
                        "HistoryItemType": "StateUpdate",
                        "HistorySummary": f"Alarm updated from {old_state} to {new_state}",
                        "HistoryData": json.dumps(
                            {
                                "version": "1.0",
                                "oldState": {"stateValue": old_state},
                                "newState": {"stateValue": new_state, "stateReason": reason},
                            }
                        ),
                    }
                )
        if kind and kind != "StateUpdate":
            items = []
        items.sort(key=lambda item: item["Timestamp"], reverse=True)
        return ActionResult({"AlarmHistoryItems": items[:limit]})

    CloudWatchResponse.describe_alarm_history = describe_alarm_history  # type: ignore[attr-defined]


@moto_patch("moto.cloudwatch.models:CloudWatchBackend.put_metric_alarm")
def cloudwatch_alarms_start_insufficient_data() -> None:
    """A new alarm starts in INSUFFICIENT_DATA, as on AWS (moto: OK); updating an alarm keeps
    its state and history (moto replaced it with a new alarm in OK)."""
    from moto.cloudwatch.models import CloudWatchBackend

    put = moto_original(CloudWatchBackend, "put_metric_alarm")

    def put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        previous = self.alarms.get(name)
        alarm = put(self, name, *args, **kwargs)
        if previous is None:
            alarm.state_value = "INSUFFICIENT_DATA"
        else:
            for attr in (
                "state_value",
                "state_reason",
                "state_reason_data",
                "state_updated_timestamp",
                "history",
            ):
                setattr(alarm, attr, getattr(previous, attr))
        return alarm

    install(CloudWatchBackend, "put_metric_alarm", put_metric_alarm)


def _percentile_or_none(values: list[float], statistic: str) -> float | None:
    try:
        return percentile(values, statistic)
    except ValueError:
        return None


@moto_patch(
    "moto.cloudwatch.models:Statistics.get_statistics_for_type",
    "moto.cloudwatch.responses:CloudWatchResponse.get_metric_statistics",
)
def cloudwatch_percentiles() -> None:
    """GetMetricStatistics answers ExtendedStatistics (p99, p99.9, ...) and GetMetricData a
    ``pNN`` Stat (moto answered the first with a 500 and the second with no values), so
    percentile widgets and alarms work locally. Percentiles need raw values, as on AWS: data
    sent as a StatisticSet has none."""
    from moto.cloudwatch.models import Statistics
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult

    by_type = moto_original(Statistics, "get_statistics_for_type")

    def raw_values(self: Any) -> list[float]:
        # PutMetricData's Values/Counts arrive here as single values; a StatisticSet has none.
        return [float(v) for v in self.metric_single_values_list]

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        if isinstance(stat, str) and stat.startswith("p"):
            return _percentile_or_none(raw_values(self), stat)
        return by_type(self, stat)

    def extended_statistics(self: Any) -> dict[str, float] | None:
        wanted = [s for s in self.stats if isinstance(s, str) and s.startswith("p")]
        if not wanted:
            return None
        values = raw_values(self)
        found = {s: _percentile_or_none(values, s) for s in wanted}
        return {s: v for s, v in found.items() if v is not None} or None

    install(Statistics, "get_statistics_for_type", get_statistics_for_type)
    Statistics.extended_statistics = property(extended_statistics)  # type: ignore[attr-defined]

    def get_metric_statistics(self: Any) -> Any:
        from moto.cloudwatch.exceptions import InvalidParameterCombination, InvalidParameterValue

        statistics = self._get_param("Statistics", [])
        extended = self._get_param("ExtendedStatistics", [])
        if not statistics and not extended:
            raise InvalidParameterCombination(
                "Must specify either Statistics or ExtendedStatistics"
            )
        for name in extended:
            if _percentile_or_none([0.0], name) is None:
                raise InvalidParameterValue(
                    f"The value {name} for parameter ExtendedStatistics is not supported."
                )
        datapoints = self.cloudwatch_backend.get_metric_statistics(
            self._get_param("Namespace"),
            self._get_param("MetricName"),
            self._get_param("StartTime"),
            self._get_param("EndTime"),
            self._get_int_param("Period"),
            [*statistics, *extended],
            unit=self._get_param("Unit"),
            dimensions=self._get_param("Dimensions", []),
        )
        return ActionResult({"Label": self._get_param("MetricName"), "Datapoints": datapoints})

    install(CloudWatchResponse, "get_metric_statistics", get_metric_statistics)
