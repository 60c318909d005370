"""Monitoring: the `ops-alerts` topic, every alarm, and one dashboard per stage.

Deployed last: it only reads the other stacks' metrics and alarm specs, so all cross-stack
references point into it and none point out of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.config import StageConfig
from stacks.constructs import AlarmSpec, MetricGroup, build_alarms

__all__ = ["MonitoringStack"]

_ROW_HEIGHT = 6


class MonitoringStack(Stack):
    """Alarms with an SNS action and the `streamline-<stage>` dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        alarm_specs: Sequence[AlarmSpec],
        metric_groups: Sequence[MetricGroup],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.topic = sns.Topic(
            self,
            "OpsAlerts",
            display_name=f"Streamline {config.stage} ops alerts",
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        self.alarms = build_alarms(self, alarm_specs, self.topic)
        self.dashboard = self._build_dashboard(metric_groups)
        CfnOutput(self, "OpsAlertsTopicArn", value=self.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name)

    def _build_dashboard(self, groups: Sequence[MetricGroup]) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"streamline-{self.config.stage}"
        )
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=(
                    f"# Streamline {self.config.stage}\n"
                    "Per processor: throughput (invocations and records processed; on the right, "
                    "what its source took in and handed on), errors and "
                    "partial failures (RecordsFailed, RecordsPoisoned), p99 duration, lag "
                    "(iterator age / queue depth and oldest message), dead letters. "
                    "Dead letters are drained by the `recovery` workflow."
                ),
                width=12,
                height=_ROW_HEIGHT,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms), width=12, height=_ROW_HEIGHT
            ),
        )
        for group in groups:
            dashboard.add_widgets(*self._row(group))
        return dashboard

    @staticmethod
    def _row(group: MetricGroup) -> list[cloudwatch.IWidget]:
        def graph(
            title: str, left: Sequence[cloudwatch.IMetric], **kwargs: Any
        ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=f"{group.title}: {title}",
                left=list(left),
                width=5,
                height=_ROW_HEIGHT,
                **kwargs,
            )

        widgets: list[cloudwatch.IWidget] = [
            graph("throughput", [*group.invocations, *group.records], right=list(group.source))
        ]
        if group.errors or group.record_failures:
            widgets.append(
                graph("errors and partial failures", [*group.errors, *group.record_failures])
            )
        widgets.append(graph("duration", group.duration))
        if group.iterator_age:
            widgets.append(graph("iterator age (ms)", group.iterator_age))
        elif group.queue_depth or group.oldest_message_age:
            widgets.append(
                graph(
                    "queue depth / oldest message (s)",
                    group.queue_depth,
                    right=list(group.oldest_message_age),
                )
            )
        if group.dead_letters:
            widgets.append(
                cloudwatch.SingleValueWidget(
                    title=f"{group.title}: dead letters",
                    metrics=list(group.dead_letters),
                    width=4,
                    height=_ROW_HEIGHT,
                )
            )
        return widgets
