"""ingest: Kinesis ``order-events`` -> ``orders`` table (conditional write per event).

Parse the event (poison if invalid), honour fault injection when enabled, then record it: the
state it stands for unless the table holds a newer one, and its status in the order's seen set
(``orderflow.logic.record_event``). The item carries this
invocation's X-Ray header, so the order's trace continues past the table's stream.
"""

from __future__ import annotations

# ruff: noqa: E402  (imports follow coldstart.begin() on purpose)
from orderflow import coldstart

coldstart.begin()  # the cyclic GC sits out INIT: see orderflow.coldstart

from datetime import UTC, datetime

from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from orderflow.batch import Source, partial_batch_handler
from orderflow.dal import OrdersRepository
from orderflow.errors import TransientError
from orderflow.events import OrderEvent, OrderState, build_models, parse_event
from orderflow.logic import chaos_active, state_for
from orderflow.observability import linked_traces
from orderflow.settings import IngestSettings, load_settings

__all__ = ["handler"]

build_models(OrderEvent, OrderState)
settings = load_settings(IngestSettings)
orders = OrdersRepository(settings.orders_table)


@partial_batch_handler(source=Source.KINESIS)
def handler(record: KinesisStreamRecord) -> None:
    """Record one order event; a duplicate is a successful no-op."""
    event = parse_event(record.kinesis.data_as_bytes())
    chaos = event.chaos
    if settings.chaos_enabled and chaos and chaos_active(event, datetime.now(UTC)):
        raise TransientError(f"chaos: transient until {chaos.transient_until.isoformat()}")
    orders.record(state_for(event), trace_header=linked_traces.carried_header())


coldstart.end()
