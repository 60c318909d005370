"""notify: ``notifications`` -> asynchronous invoke of notifier (which has Destinations).

The task is validated here so a bad body is quarantined at once instead of burning the
notifier's async retries; the payload is the task JSON exactly as notifier parses it.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow coldstart.begin() on purpose)
from orderflow import coldstart

coldstart.begin()  # the cyclic GC sits out INIT: see orderflow.coldstart

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from orderflow.batch import Source, partial_batch_handler
from orderflow.dal import FunctionInvoker
from orderflow.events import NotificationTask, build_models, parse_model
from orderflow.observability import linked_traces
from orderflow.settings import NotifySettings, load_settings

__all__ = ["handler"]

build_models(NotificationTask)
settings = load_settings(NotifySettings)
invoker = FunctionInvoker()


@partial_batch_handler(source=Source.SQS)
def handler(record: SQSRecord) -> None:
    """Hand one notification to notifier (InvocationType=Event)."""
    # AWS links, not continues, an SQS batch's trace: join the order's trace explicitly.
    with linked_traces.hop(record.attributes.aws_trace_header):
        task = parse_model(NotificationTask, record.body)
        invoker.invoke_async(settings.notifier_function_name, task.model_dump_json().encode())


coldstart.end()
