"""Data access layer: the only code in ``orderflow`` that touches boto3.

Example::

    from orderflow.dal import EffectsRepository

    EffectsRepository("effects").put_once("fulfil#o-1", order_id="o-1", kind="fulfil", event_id=eid)
"""

from __future__ import annotations

from orderflow.dal.clients import client, reset_clients
from orderflow.dal.effects import EffectsRepository
from orderflow.dal.invoker import FunctionInvoker, InvocationResult
from orderflow.dal.orders import OrdersRepository, state_to_item
from orderflow.dal.queues import PoisonSink, TaskQueue, is_fifo, send_message
from orderflow.dal.recovery import (
    FailureQueue,
    QuarantineStore,
    RecoveryLedger,
    StreamReader,
    StreamRecord,
    kinesis_put,
)

__all__ = [
    "EffectsRepository",
    "FailureQueue",
    "FunctionInvoker",
    "InvocationResult",
    "OrdersRepository",
    "PoisonSink",
    "QuarantineStore",
    "RecoveryLedger",
    "StreamReader",
    "StreamRecord",
    "TaskQueue",
    "client",
    "is_fifo",
    "kinesis_put",
    "reset_clients",
    "send_message",
    "state_to_item",
]
