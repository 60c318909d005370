"""The synth-time guard: processors refuse handlers that cannot report partial batch failures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aws_cdk import App, Duration, RemovalPolicy, Stack
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_logs as logs

from stacks.constructs import (
    FunctionSettings,
    PipelineFunction,
    QueueProcessor,
    StreamProcessor,
    require_partial_batch_handler,
)

WithoutDecorator = """
def handler(event, context):
    return None
"""
OtherDecorator = """
from orderflow.batch import Source
from somewhere import partial_batch_handler


@partial_batch_handler(source=Source.SQS)
def handler(record):
    return None
"""
Aliased = """
import orderflow.batch as batch
from orderflow.batch import Source as S


@batch.partial_batch_handler(source=S.KINESIS)
def handler(record):
    return None
"""
Rebound = """
from orderflow.batch import Source, partial_batch_handler


@partial_batch_handler(source=Source.SQS)
def handler(record):
    return None

handler = print
"""


def _file(handler_dir: Callable[..., Path], body: str | None = None, source: str = "SQS") -> Path:
    return handler_dir("fn", body, source=source) / "fn" / "handler.py"


def test_accepts_a_decorated_handler_for_its_source(handler_dir: Callable[..., Path]) -> None:
    path = _file(handler_dir, source="SQS_FIFO")
    assert require_partial_batch_handler(path, "handler", {"SQS_FIFO"}) == "SQS_FIFO"


def test_accepts_module_and_enum_aliases(handler_dir: Callable[..., Path]) -> None:
    path = _file(handler_dir, Aliased)
    assert require_partial_batch_handler(path, "handler", {"KINESIS"}) == "KINESIS"


def test_refuses_a_handler_without_the_decorator(handler_dir: Callable[..., Path]) -> None:
    path = _file(handler_dir, WithoutDecorator)
    with pytest.raises(ValueError, match=r"fn/handler.py:handler: is not a partial batch handler"):
        require_partial_batch_handler(path, "handler", {"SQS"})


def test_refuses_a_same_named_decorator_from_elsewhere(handler_dir: Callable[..., Path]) -> None:
    path = _file(handler_dir, OtherDecorator)
    with pytest.raises(ValueError, match="missing @partial_batch_handler"):
        require_partial_batch_handler(path, "handler", {"SQS"})


def test_refuses_a_handler_declared_for_another_source(handler_dir: Callable[..., Path]) -> None:
    path = _file(handler_dir, source="SQS")
    with pytest.raises(
        ValueError, match=r"wired to a Source.KINESIS event source but declares Source.SQS"
    ):
        require_partial_batch_handler(path, "handler", {"KINESIS"})


def test_refuses_a_missing_file_symbol_or_rebound_name(handler_dir: Callable[..., Path]) -> None:
    path = _file(handler_dir)
    with pytest.raises(ValueError, match="no top-level function named 'process'"):
        require_partial_batch_handler(path, "process", {"SQS"})
    with pytest.raises(ValueError, match="handler file does not exist"):
        require_partial_batch_handler(path.with_name("missing.py"), "handler", {"SQS"})
    rebound = _file(handler_dir, Rebound)
    with pytest.raises(ValueError, match="no top-level function named 'handler'"):
        require_partial_batch_handler(rebound, "handler", {"SQS"})


# the constructs call the guard ---------------------------------------------------------------


def _function(stack: Stack, code_dir: Path, timeout: int = 30) -> PipelineFunction:
    settings = FunctionSettings(
        stage="test",
        memory_size=256,
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=RemovalPolicy.DESTROY,
        chaos_enabled=False,
        powertools_layer_version=1,
        code_dir=code_dir,
    )
    return PipelineFunction(
        stack,
        "Fn",
        service="fn",
        handler="fn.handler.handler",
        settings=settings,
        timeout=Duration.seconds(timeout),
    )


def test_queue_processor_refuses_a_handler_without_partial_batch_responses(
    handler_dir: Callable[..., Path],
) -> None:
    code_dir = handler_dir("fn", WithoutDecorator)
    stack = Stack(App(), "Guard")
    with pytest.raises(ValueError, match="is not a partial batch handler"):
        QueueProcessor(stack, "Tasks", function=_function(stack, code_dir))


def test_queue_processor_refuses_a_standard_queue_handler_on_a_fifo_queue(
    handler_dir: Callable[..., Path],
) -> None:
    code_dir = handler_dir("fn", source="SQS")
    stack = Stack(App(), "Guard")
    with pytest.raises(ValueError, match=r"Source\.SQS_FIFO event source but declares Source\.SQS"):
        QueueProcessor(stack, "Tasks", function=_function(stack, code_dir), fifo=True)


def test_stream_processor_refuses_a_queue_handler(handler_dir: Callable[..., Path]) -> None:
    code_dir = handler_dir("fn", source="SQS")
    stack = Stack(App(), "Guard")
    stream = kinesis.Stream(stack, "Stream")
    with pytest.raises(ValueError, match=r"Source\.KINESIS event source but declares Source\.SQS"):
        StreamProcessor(stack, "Ingest", function=_function(stack, code_dir), stream=stream)


# the constructs' own limits -------------------------------------------------------------------


def test_queue_processor_refuses_a_visibility_timeout_below_the_rule(
    handler_dir: Callable[..., Path],
) -> None:
    code_dir = handler_dir("fn", source="SQS")
    stack = Stack(App(), "Limits")
    function = _function(stack, code_dir, timeout=30)
    with pytest.raises(ValueError, match=r"below 6 x function timeout \+ batching window = 185"):
        QueueProcessor(
            stack,
            "Tasks",
            function=function,
            max_batching_window=Duration.seconds(5),
            batch_size=20,
            visibility_timeout=Duration.seconds(184),
        )
    accepted = QueueProcessor(
        stack,
        "Accepted",
        function=function,
        max_batching_window=Duration.seconds(5),
        batch_size=20,
        visibility_timeout=Duration.seconds(185),
    )
    assert accepted.visibility_timeout.to_seconds() == 185


def test_queue_processor_refuses_a_batching_window_on_fifo(
    handler_dir: Callable[..., Path],
) -> None:
    code_dir = handler_dir("fn", source="SQS_FIFO")
    stack = Stack(App(), "Limits")
    with pytest.raises(ValueError, match="batching window on FIFO"):
        QueueProcessor(
            stack,
            "Tasks",
            function=_function(stack, code_dir),
            fifo=True,
            max_batching_window=Duration.seconds(1),
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retry_attempts": -1}, "never -1"),
        ({"max_record_age": Duration.days(8)}, "never -1 / infinite"),
        ({"parallelization_factor": 11}, "parallelization factor"),
    ],
)
def test_stream_processor_refuses_unbounded_settings(
    handler_dir: Callable[..., Path], kwargs: dict, message: str
) -> None:
    code_dir = handler_dir("fn", source="KINESIS")
    stack = Stack(App(), "Limits")
    stream = kinesis.Stream(stack, "Stream")
    with pytest.raises(ValueError, match=message):
        StreamProcessor(
            stack, "Ingest", function=_function(stack, code_dir), stream=stream, **kwargs
        )
