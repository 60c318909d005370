"""Ingest: Kinesis `order-events` -> λ ingest -> DynamoDB `orders` (streamed onward)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from constructs import Construct

from stacks.config import StageConfig
from stacks.constructs import (
    AlarmSpec,
    FunctionSettings,
    MetricGroup,
    PipelineFunction,
    StreamProcessor,
)
from stacks.constructs.table import pipeline_table
from streamline.topology import INGEST

__all__ = ["IngestStack"]


class IngestStack(Stack):
    """The order-event stream, the orders table and the ingest stream processor."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.stream = self._build_stream()
        self.orders_table = self._build_orders_table()
        self.ingest_function = PipelineFunction(
            self,
            "IngestFunction",
            service="ingest",
            handler="ingest.handler.handler",
            settings=FunctionSettings.from_stage(config),
            environment={"ORDERS_TABLE": self.orders_table.table_name},
        )
        self.ingest = StreamProcessor(
            self,
            "Ingest",
            function=self.ingest_function,
            stream=self.stream,
            parallelization_factor=config.ingest_parallelization_factor,
            alarm_thresholds=config.alarms,
        )
        # exactly what OrdersRepository.record does: conditional UpdateItem (ingest never reads)
        self.orders_table.grant(self.ingest_function.function, "dynamodb:UpdateItem")
        # What producers, ops tooling and tests look up (by output key, never by physical name).
        outputs = {
            "OrderEventsStreamName": self.stream.stream_name,
            "OrderEventsStreamArn": self.stream.stream_arn,
            "OrdersTableName": self.orders_table.table_name,
            INGEST.function_output: self.ingest_function.function.function_name,
            INGEST.failure_output: self.ingest.failure_queue.queue_url,
        }
        for key, value in outputs.items():
            CfnOutput(self, key, value=value)

    def _build_stream(self) -> kinesis.Stream:
        return kinesis.Stream(
            self,
            "OrderEvents",
            stream_mode=kinesis.StreamMode.PROVISIONED,
            shard_count=self.config.shard_count,
            retention_period=self.config.stream_retention,
            encryption=kinesis.StreamEncryption.MANAGED,
            removal_policy=self.config.removal_policy,
        )

    def _build_orders_table(self) -> dynamodb.Table:
        return pipeline_table(
            self,
            "Orders",
            partition_key="order_id",
            removal_policy=self.config.removal_policy,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        )

    def alarm_specs(self) -> list[AlarmSpec]:
        return self.ingest.alarm_specs()

    def metric_groups(self) -> list[MetricGroup]:
        return [self.ingest.metric_group()]
