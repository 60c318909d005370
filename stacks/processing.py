"""Processing: orders stream -> λ changes -> SQS tasks -> λ fulfil / λ notify -> λ notifier."""

from __future__ import annotations

import functools
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.config import StageConfig
from stacks.constructs import (
    AlarmSpec,
    FunctionSettings,
    MetricGroup,
    PipelineFunction,
    QueueProcessor,
    StreamProcessor,
)
from stacks.constructs.alarm_specs import METRIC_PERIOD, queue_not_empty
from stacks.constructs.failure_queue import failure_queue
from stacks.constructs.table import pipeline_table
from stacks.nag import suppress
from streamline.topology import CHANGES, FULFIL, NOTIFIER, NOTIFY

__all__ = ["ProcessingStack"]


class ProcessingStack(Stack):
    """The change processor, the two task queues and the asynchronously invoked notifier."""

    # Lambda's async retry budget is 0-2; 2 rides out short outages of the audit bus consumers
    NOTIFIER_RETRY_ATTEMPTS = 2
    # older notifications are stale: send them to notify-failures for the recovery workflow
    NOTIFIER_MAX_EVENT_AGE = Duration.hours(1)

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        orders_table: dynamodb.ITable,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        settings = FunctionSettings.from_stage(config)
        self.effects_table = self._build_effects_table()

        # fulfilment: FIFO per order, exactly-once effect in the effects table
        self.fulfil_function = PipelineFunction(
            self,
            "FulfilFunction",
            service="fulfil",
            handler="fulfil.handler.handler",
            settings=settings,
            environment={"EFFECTS_TABLE": self.effects_table.table_name},
        )
        self.fulfilment = QueueProcessor(
            self,
            "Fulfilment",
            function=self.fulfil_function,
            fifo=True,
            batch_size=10,
            max_concurrency=5,
            max_receive_count=config.max_receive_count,
            alarm_thresholds=config.alarms,
        )
        self._grant_effects(self.fulfil_function)

        # notifications: notify hands each batch of tasks to the notifier asynchronously
        self.audit_bus = events.EventBus(
            self, "AuditBus", event_bus_name=f"streamline-{config.stage}-audit"
        )
        self.notify_failures = self._build_notify_failures()
        self.notifier_function = PipelineFunction(
            self,
            "NotifierFunction",
            service="notifier",
            handler="notifier.handler.handler",
            settings=settings,
            timeout=Duration.seconds(15),
            environment={"EFFECTS_TABLE": self.effects_table.table_name},
        )
        self._grant_effects(self.notifier_function)
        self.notifier_function.function.configure_async_invoke(
            retry_attempts=self.NOTIFIER_RETRY_ATTEMPTS,
            max_event_age=self.NOTIFIER_MAX_EVENT_AGE,
            on_success=destinations.EventBridgeDestination(self.audit_bus),
            on_failure=destinations.SqsDestination(self.notify_failures),
        )
        suppress(
            self.notifier_function.function,
            (
                "Serverless-LambdaDLQ",
                "async failures go to the OnFailure destination notify-failures (a DLQ superset)",
            ),
        )

        self.notify_function = PipelineFunction(
            self,
            "NotifyFunction",
            service="notify",
            handler="notify.handler.handler",
            settings=settings,
            environment={"NOTIFIER_FUNCTION_NAME": self.notifier_function.function.function_name},
        )
        self.notifications = QueueProcessor(
            self,
            "Notifications",
            function=self.notify_function,
            batch_size=25,
            max_batching_window=Duration.seconds(5),
            max_concurrency=10,
            max_receive_count=config.max_receive_count,
            alarm_thresholds=config.alarms,
        )
        # the function ARN only: grant_invoke would also allow every version/alias (":*")
        self.notify_function.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=[self.notifier_function.function.function_arn],
            )
        )

        # changes: the orders table stream becomes tasks on the two queues
        self.changes_function = PipelineFunction(
            self,
            "ChangesFunction",
            service="changes",
            handler="changes.handler.handler",
            settings=settings,
            environment={
                "FULFILMENT_QUEUE_URL": self.fulfilment.queue.queue_url,
                "NOTIFICATIONS_QUEUE_URL": self.notifications.queue.queue_url,
            },
        )
        self.changes = StreamProcessor(
            self,
            "Changes",
            function=self.changes_function,
            table=orders_table,
            alarm_thresholds=config.alarms,
        )
        self.fulfilment.queue.grant_send_messages(self.changes_function.function)
        self.notifications.queue.grant_send_messages(self.changes_function.function)
        # What producers, ops tooling and tests look up (by output key, never by physical name).
        outputs = {
            "EffectsTableName": self.effects_table.table_name,
            str(FULFIL.queue_output): self.fulfilment.queue.queue_url,
            FULFIL.failure_output: self.fulfilment.dead_letter_queue.queue_url,
            str(NOTIFY.queue_output): self.notifications.queue.queue_url,
            NOTIFY.failure_output: self.notifications.dead_letter_queue.queue_url,
            NOTIFIER.failure_output: self.notify_failures.queue_url,
            CHANGES.failure_output: self.changes.failure_queue.queue_url,
            "AuditBusName": self.audit_bus.event_bus_name,
            CHANGES.function_output: self.changes_function.function.function_name,
            FULFIL.function_output: self.fulfil_function.function.function_name,
            NOTIFY.function_output: self.notify_function.function.function_name,
            NOTIFIER.function_output: self.notifier_function.function.function_name,
        }
        for key, value in outputs.items():
            CfnOutput(self, key, value=value)

    def _grant_effects(self, fn: PipelineFunction) -> None:
        # orderflow.dal.effects: one conditional put per effect (exactly-once sink), plus reads
        self.effects_table.grant(fn.function, "dynamodb:GetItem", "dynamodb:PutItem")

    def _build_effects_table(self) -> dynamodb.Table:
        return pipeline_table(
            self,
            "Effects",
            partition_key="effect_id",
            removal_policy=self.config.removal_policy,
        )

    def _build_notify_failures(self) -> sqs.Queue:
        return failure_queue(
            self,
            "NotifyFailures",
            why="this queue is the notifier's OnFailure destination (a DLQ)",
            why_no_redrive="this queue is the notifier's OnFailure destination",
            retention=Duration.days(14),
        )

    # metrics and alarms ---------------------------------------------------------------------
    # A metric an alarm and a dashboard graph both watch is built once.

    @functools.cached_property
    def _notifier_delivery_failures(self) -> cloudwatch.Metric:
        return self.notifier_function.function.metric(
            "DestinationDeliveryFailures", period=METRIC_PERIOD, statistic="Sum"
        )

    def alarm_specs(self) -> list[AlarmSpec]:
        thresholds = self.config.alarms
        return [
            *self.changes.alarm_specs(),
            *self.fulfilment.alarm_specs(),
            *self.notifications.alarm_specs(),
            AlarmSpec(
                name="NotifierDestinationDeliveryFailures",
                metric=self._notifier_delivery_failures,
                threshold=1,
                description="notifier: Lambda could not deliver to audit bus or notify-failures",
            ),
            queue_not_empty(
                "NotifyFailuresNotEmpty",
                self.notify_failures,
                thresholds.dead_letter_messages,
                "notifier: failed async invocations waiting; run the recovery workflow",
            ),
            AlarmSpec(
                name="NotifierErrors",
                metric=self.notifier_function.errors_metric,
                threshold=thresholds.function_errors,
                description="notifier: function errors (retried, then sent to notify-failures)",
            ),
        ]

    def metric_groups(self) -> list[MetricGroup]:
        notifier = self.notifier_function.function
        return [
            self.changes.metric_group(),
            self.fulfilment.metric_group(),
            self.notifications.metric_group(),
            MetricGroup(
                title="Notifier (async, Destinations)",
                invocations=(notifier.metric_invocations(period=METRIC_PERIOD, statistic="Sum"),),
                errors=(self.notifier_function.errors_metric, self._notifier_delivery_failures),
                duration=(notifier.metric_duration(period=METRIC_PERIOD, statistic="p99"),),
                dead_letters=(
                    self.notify_failures.metric_approximate_number_of_messages_visible(
                        period=METRIC_PERIOD, statistic="Maximum", label="notify-failures"
                    ),
                ),
            ),
        ]
