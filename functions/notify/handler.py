"""notify: ``notifications`` -> the notifier (asynchronous, with Destinations), once per batch.

The task is validated here so a bad body is quarantined at once instead of burning the
notifier's async retries. The batch's valid tasks go to the notifier in one invocation
(``orderflow.notifications``: an invocation, its OnSuccess event and its trace are paid per
invocation), each with its order's trace header; a failed invocation fails its records only.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow coldstart.begin() on purpose)
from orderflow import coldstart

coldstart.begin()  # the cyclic GC sits out INIT: see orderflow.coldstart

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from orderflow.batch import Source, current_record_id, partial_batch_handler, sqs_trace_header
from orderflow.dal import NotificationOutbox
from orderflow.events import NotificationTask, build_models, parse_model
from orderflow.observability import linked_traces
from orderflow.settings import NotifySettings, load_settings

__all__ = ["handler", "outbox"]

build_models(NotificationTask)
settings = load_settings(NotifySettings)
outbox = NotificationOutbox(settings.notifier_function_name)


@partial_batch_handler(source=Source.SQS, deferred=outbox)
def handler(record: SQSRecord) -> None:
    """Validate one notification and queue it for this batch's notifier invocation."""
    # AWS links, not continues, an SQS batch's trace: join the order's trace explicitly, and
    # hand the notifier this function's segment in it to continue from.
    upstream = sqs_trace_header(record)
    with linked_traces.hop(upstream) as header:
        task = parse_model(NotificationTask, record.body)
        outbox.add(task, record_id=current_record_id(), trace_header=header or upstream)


coldstart.end()
