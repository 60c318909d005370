"""Compose the four stacks of one stage, in deployment order, with cdk-nag and tags.

Example:
    >>> app = cdk.App()
    >>> pipeline = build_pipeline(app)   # stage from context "stage" (default dev)
    >>> app.synth()
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Aspects, Stack, Tags
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from stacks.config import StageConfig
from stacks.ingest import IngestStack
from stacks.monitoring import MonitoringStack
from stacks.processing import ProcessingStack
from stacks.recovery import RecoveryStack

__all__ = ["Pipeline", "build_pipeline"]


@dataclass(frozen=True)
class Pipeline:
    config: StageConfig
    ingest: IngestStack
    processing: ProcessingStack
    orchestration: RecoveryStack
    monitoring: MonitoringStack

    @property
    def stacks(self) -> list[Stack]:
        return [self.ingest, self.processing, self.orchestration, self.monitoring]


def build_pipeline(app: App, *, nag: bool | None = None) -> Pipeline:
    """Build every stack for the stage in context; cdk-nag on unless context `nag` is false."""
    config = StageConfig.from_app(app)
    ingest = IngestStack(
        app,
        config.stack_name("ingest"),
        config=config,
        description=f"Streamline {config.stage}: order-event stream, orders table, ingest",
    )
    processing = ProcessingStack(
        app,
        config.stack_name("processing"),
        config=config,
        orders_table=ingest.orders_table,
        description=f"Streamline {config.stage}: changes, fulfilment, notifications, notifier",
    )
    processing.add_stack_dependency(ingest)
    orchestration = RecoveryStack(
        app,
        config.stack_name("orchestration"),
        config=config,
        ingest=ingest,
        processing=processing,
        description=f"Streamline {config.stage}: recovery workflow and quarantine",
    )
    orchestration.add_stack_dependency(processing)
    monitoring = MonitoringStack(
        app,
        config.stack_name("monitoring"),
        config=config,
        alarm_specs=[
            *ingest.alarm_specs(),
            *processing.alarm_specs(),
            *orchestration.alarm_specs(),
        ],
        metric_groups=[
            *ingest.metric_groups(),
            *processing.metric_groups(),
            *orchestration.metric_groups(),
        ],
        description=f"Streamline {config.stage}: ops alerts, alarms and dashboard",
    )
    monitoring.add_stack_dependency(orchestration)
    pipeline = Pipeline(config, ingest, processing, orchestration, monitoring)
    for stack in pipeline.stacks:
        Tags.of(stack).add("project", "streamline")
        Tags.of(stack).add("stage", config.stage)
    if nag if nag is not None else _context_flag(app, "nag", default=True):
        Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
        Aspects.of(app).add(ServerlessChecks(verbose=True))
    return pipeline


def _context_flag(app: App, key: str, *, default: bool) -> bool:
    value = app.node.try_get_context(key)
    if value is None:
        return default
    return str(value).lower() not in ("false", "0", "no", "off")
