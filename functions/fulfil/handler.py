"""fulfil: ``fulfilment.fifo`` -> ``effects`` table ("fulfil#<order_id>", exactly once).

FIFO with ``skip_group_on_error``: after a failure in one order's group, that group's later
messages are returned for retry (keeping per-order order) while other groups continue. Each
task's work is recorded in the order's trace (its AWSTraceHeader): Lambda starts a new trace for
an SQS batch and only links it to the senders' traces.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow coldstart.begin() on purpose)
from orderflow import coldstart

coldstart.begin()  # the cyclic GC sits out INIT: see orderflow.coldstart

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from orderflow.batch import Source, partial_batch_handler, sqs_trace_header
from orderflow.dal import EffectsRepository
from orderflow.events import FulfilmentTask, build_models, parse_model
from orderflow.observability import linked_traces
from orderflow.settings import FulfilSettings, load_settings

__all__ = ["handler"]

build_models(FulfilmentTask)
settings = load_settings(FulfilSettings)
effects = EffectsRepository(settings.effects_table)


@partial_batch_handler(source=Source.SQS_FIFO)
def handler(record: SQSRecord) -> None:
    """Record the fulfilment of one order; a repeated task is a successful no-op."""
    with linked_traces.hop(sqs_trace_header(record)):
        task = parse_model(FulfilmentTask, record.body)
        effects.put_once(
            task.effect_id, order_id=task.order_id, kind=task.kind, event_id=task.event_id
        )


coldstart.end()
