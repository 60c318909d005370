"""Order events for tests: one factory, valid against the shared schema unless told otherwise."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


def order_event(
    order: str, version: int = 1, kind: str = "OrderCreated", **fields: Any
) -> dict[str, Any]:
    """A JSON-ready OrderEvent; ``fields`` override or add (an invalid value makes poison)."""
    return {
        "event_id": str(uuid.uuid4()),
        "order_id": order,
        "version": version,
        "type": kind,
        "occurred_at": datetime.now(UTC).isoformat(),
        "customer_id": "c-test",
        "amount_cents": 1250,
        **fields,
    }
