"""Reusable L3 constructs that carry Streamline's production defaults."""

from stacks.constructs.alarm_specs import AlarmSpec, AlarmThresholds, MetricGroup, build_alarms
from stacks.constructs.function import FUNCTIONS_DIR, FunctionSettings, PipelineFunction
from stacks.constructs.guard import require_partial_batch_handler, resolve_handler
from stacks.constructs.queue_processor import QueueProcessor
from stacks.constructs.stream_processor import StreamProcessor

__all__ = [
    "FUNCTIONS_DIR",
    "AlarmSpec",
    "AlarmThresholds",
    "FunctionSettings",
    "MetricGroup",
    "PipelineFunction",
    "QueueProcessor",
    "StreamProcessor",
    "build_alarms",
    "require_partial_batch_handler",
    "resolve_handler",
]
