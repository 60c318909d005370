"""Data access layer: the only code in ``orderflow`` that touches boto3.

Example::

    from orderflow.dal import EffectsRepository

    EffectsRepository("effects").put_once("fulfil#o-1", order_id="o-1", kind="fulfil", event_id=eid)

The names below are loaded from their submodule on first access (PEP 562), so a function
imports only the adapters it uses (ingest never loads the recovery adapters, for example).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orderflow.dal.clients import client, reset_clients
    from orderflow.dal.effects import EffectsRepository
    from orderflow.dal.invoker import FunctionInvoker, InvocationResult, NotificationOutbox
    from orderflow.dal.orders import OrdersRepository, state_to_item
    from orderflow.dal.queues import PoisonSink, TaskOutbox, is_fifo, send_message
    from orderflow.dal.recovery import (
        FailureQueue,
        IncompleteRangeRead,
        QuarantineStore,
        RecoveryLedger,
        StreamReader,
        StreamRecord,
        kinesis_put,
    )
    from orderflow.dal.xray import DaemonEmitter

# name -> submodule that defines it
_SUBMODULE = {
    "DaemonEmitter": "xray",
    "client": "clients",
    "reset_clients": "clients",
    "EffectsRepository": "effects",
    "FunctionInvoker": "invoker",
    "InvocationResult": "invoker",
    "NotificationOutbox": "invoker",
    "OrdersRepository": "orders",
    "state_to_item": "orders",
    "PoisonSink": "queues",
    "TaskOutbox": "queues",
    "is_fifo": "queues",
    "send_message": "queues",
    "FailureQueue": "recovery",
    "IncompleteRangeRead": "recovery",
    "QuarantineStore": "recovery",
    "RecoveryLedger": "recovery",
    "StreamReader": "recovery",
    "StreamRecord": "recovery",
    "kinesis_put": "recovery",
}

__all__ = [
    "DaemonEmitter",
    "EffectsRepository",
    "FailureQueue",
    "FunctionInvoker",
    "IncompleteRangeRead",
    "InvocationResult",
    "NotificationOutbox",
    "OrdersRepository",
    "PoisonSink",
    "QuarantineStore",
    "RecoveryLedger",
    "StreamReader",
    "StreamRecord",
    "TaskOutbox",
    "client",
    "is_fifo",
    "kinesis_put",
    "reset_clients",
    "send_message",
    "state_to_item",
]


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
