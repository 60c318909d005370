"""AWS API calls counted by who made them: each Lambda function, Lambda's SQS poller, or a client.

The local cloud counts every request moto serves (the ``api_call_counting`` patch in
:mod:`streamline.local.patches.core`) and every ReceiveMessage / DeleteMessageBatch its SQS event
source mappings make in-process (:mod:`streamline.local.esm.sqs`). A request's caller is the
Lambda function that made it (known by the access key it signed with: each function's
environments hold credentials of their own, see :mod:`streamline.local.identities`),
``"lambda-esm"`` for the SQS poller (AWS
bills the requests Lambda's SQS poller makes to the queue owner), or ``"client"`` for anything
else (producers, the CLI, tests). Kinesis GetRecords and DynamoDB Streams reads by Lambda are not
billed per request, so the stream pollers are not counted.

Besides the number of calls, each key keeps what AWS meters beyond "one per call": the records
or entries in a batch (``items``), their payload bytes, and the metered ``units`` (Kinesis PUT
payload units of 25 KB per record, SQS requests per 64 KB chunk, DynamoDB write units per 1 KB
of item), plus the time moto spent serving them (``server_ms``, the local stand-in for network
wait). Counts are kept in 10-second buckets for a day, so a window ("the last hour") can be read.

Example::

    from streamline.local.api_calls import API_CALLS, since

    before = API_CALLS.snapshot()
    ...  # produce events, let the pipeline drain
    for (caller, service, operation), calls in since(before).items():
        print(caller, service, operation, calls)
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "API_CALLS",
    "CLIENT",
    "ESM",
    "ApiCallCounter",
    "CallKey",
    "CallTally",
    "caller_of",
    "request_shape",
    "since",
    "sqs_units",
    "tallies_since",
]

#: (caller, service, operation), e.g. ``("streamline-dev-ingest-...", "dynamodb", "PutItem")``.
CallKey = tuple[str, str, str]

CLIENT = "client"
ESM = "lambda-esm"

#: Width of a time bucket, and how long buckets are kept (a window older than this reads empty).
BUCKET_SECONDS = 10
RETAIN_SECONDS = 24 * 3600

KINESIS_PUT_UNIT = 25 * 1024  # a PUT payload unit is each 25 KB chunk of a record
SQS_CHUNK = 64 * 1024  # each 64 KB chunk of a request's payload is billed as one request
DYNAMODB_WRITE_UNIT = 1024  # one write request unit per 1 KB of item


@dataclass(frozen=True, slots=True)
class CallTally:
    """What a set of calls amounted to. ``units`` is what AWS meters (see the module doc)."""

    calls: int = 0
    items: int = 0
    payload_bytes: int = 0
    units: int = 0
    fifo_units: int = 0  # the part of ``units`` made on SQS FIFO queues (priced higher)
    server_ms: float = 0.0

    def __add__(self, other: CallTally) -> CallTally:
        return CallTally(
            self.calls + other.calls,
            self.items + other.items,
            self.payload_bytes + other.payload_bytes,
            self.units + other.units,
            self.fifo_units + other.fifo_units,
            self.server_ms + other.server_ms,
        )

    def __sub__(self, other: CallTally) -> CallTally:
        return CallTally(
            self.calls - other.calls,
            self.items - other.items,
            self.payload_bytes - other.payload_bytes,
            self.units - other.units,
            self.fifo_units - other.fifo_units,
            self.server_ms - other.server_ms,
        )


class ApiCallCounter:
    """A process-global, thread-safe tally of API calls by :data:`CallKey`."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._totals: dict[CallKey, CallTally] = {}
        self._buckets: dict[int, dict[CallKey, CallTally]] = {}

    def record(
        self,
        caller: str,
        service: str,
        operation: str,
        *,
        calls: int = 1,
        items: int | None = None,
        payload_bytes: int = 0,
        units: int | None = None,
        fifo: bool = False,
        server_ms: float = 0.0,
    ) -> None:
        """Add ``calls`` calls (``items`` and ``units`` default to one per call)."""
        metered = calls if units is None else units
        tally = CallTally(
            calls=calls,
            items=calls if items is None else items,
            payload_bytes=payload_bytes,
            units=metered,
            fifo_units=metered if fifo else 0,
            server_ms=server_ms,
        )
        key = (caller, service, operation)
        bucket = int(self._clock()) // BUCKET_SECONDS
        with self._lock:
            self._totals[key] = self._totals.get(key, CallTally()) + tally
            counts = self._buckets.get(bucket)
            if counts is None:
                counts = self._buckets[bucket] = {}
                self._prune(bucket)
            counts[key] = counts.get(key, CallTally()) + tally

    def snapshot(self) -> dict[CallKey, int]:
        """Calls per key since start (or :meth:`reset`)."""
        with self._lock:
            return {key: tally.calls for key, tally in self._totals.items()}

    def tallies(self, since_epoch: float | None = None) -> dict[CallKey, CallTally]:
        """Full tallies per key: since start, or from ``since_epoch`` on (10 s resolution)."""
        with self._lock:
            if since_epoch is None:
                return dict(self._totals)
            first = int(since_epoch) // BUCKET_SECONDS
            summed: dict[CallKey, CallTally] = {}
            for bucket, counts in self._buckets.items():
                if bucket >= first:
                    for key, tally in counts.items():
                        summed[key] = summed.get(key, CallTally()) + tally
            return summed

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()
            self._buckets.clear()

    def as_json(self) -> dict[str, Any]:
        """The buckets as JSON data (what the local cloud's ``/_streamline/api-calls`` serves)."""
        with self._lock:
            rows = [
                {
                    "at": bucket * BUCKET_SECONDS,
                    "caller": key[0],
                    "service": key[1],
                    "operation": key[2],
                    **asdict(tally),
                }
                for bucket, counts in sorted(self._buckets.items())
                for key, tally in counts.items()
            ]
        return {"bucket_seconds": BUCKET_SECONDS, "buckets": rows}

    @staticmethod
    def from_json(
        document: Mapping[str, Any], since_epoch: float | None = None
    ) -> dict[CallKey, CallTally]:
        """Tallies from :meth:`as_json` data, summed over the buckets from ``since_epoch`` on."""
        width = int(document.get("bucket_seconds", BUCKET_SECONDS))
        first = None if since_epoch is None else int(since_epoch) // width * width
        summed: dict[CallKey, CallTally] = {}
        for row in document.get("buckets", []):
            if first is not None and int(row["at"]) < first:
                continue
            key = (str(row["caller"]), str(row["service"]), str(row["operation"]))
            tally = CallTally(
                calls=int(row.get("calls", 0)),
                items=int(row.get("items", 0)),
                payload_bytes=int(row.get("payload_bytes", 0)),
                units=int(row.get("units", 0)),
                fifo_units=int(row.get("fifo_units", 0)),
                server_ms=float(row.get("server_ms", 0.0)),
            )
            summed[key] = summed.get(key, CallTally()) + tally
        return summed

    def _prune(self, newest: int) -> None:
        # Called with the lock held, only when a new bucket opens: cheap and bounded.
        oldest = newest - RETAIN_SECONDS // BUCKET_SECONDS
        for bucket in [b for b in self._buckets if b < oldest]:
            del self._buckets[bucket]


#: The counter the moto patch and the ESM engine write to.
API_CALLS = ApiCallCounter()


def since(snapshot: Mapping[CallKey, int]) -> dict[CallKey, int]:
    """Calls per key made after ``snapshot`` (an earlier :meth:`ApiCallCounter.snapshot`).

    Example::

        >>> before = API_CALLS.snapshot()
        >>> since(before)
        {}
    """
    return {
        key: calls - snapshot.get(key, 0)
        for key, calls in API_CALLS.snapshot().items()
        if calls - snapshot.get(key, 0)
    }


def tallies_since(before: Mapping[CallKey, CallTally]) -> dict[CallKey, CallTally]:
    """Full tallies made after ``before`` (an earlier :meth:`ApiCallCounter.tallies`)."""
    result: dict[CallKey, CallTally] = {}
    for key, tally in API_CALLS.tallies().items():
        delta = tally - before.get(key, CallTally())
        if delta.calls:
            result[key] = delta
    return result


def caller_of(headers: Mapping[str, Any], query: Mapping[str, Any] | None = None) -> str:
    """The function whose credentials signed a request (its name), else ``client``."""
    from streamline.local.identities import IDENTITIES

    return IDENTITIES.caller(headers, query) or CLIENT


def sqs_units(payload_bytes: int) -> int:
    """SQS requests a request of ``payload_bytes`` is billed as (each 64 KB chunk is one)."""
    return max(1, math.ceil(payload_bytes / SQS_CHUNK))


def request_shape(
    service: str, operation: str, body: str | bytes | Mapping[str, Any] | None
) -> dict[str, Any]:
    """``record`` keyword arguments (items, payload_bytes, units, fifo) for one request.

    Only the operations whose metering depends on the request are read (Kinesis puts, SQS
    sends and batches, DynamoDB writes); anything else is one call, one item, one unit. Never
    raises: a body it cannot read counts as one plain call.

    Example::

        >>> request_shape("sqs", "SendMessage", '{"QueueUrl": "q.fifo", "MessageBody": "hi"}')
        {'items': 1, 'payload_bytes': 2, 'units': 1, 'fifo': True}
    """
    reader = _SHAPES.get((service, operation))
    if reader is None or not body:
        return {}
    if isinstance(body, Mapping):
        document: Any = body  # moto's DynamoDB hands over its parsed parameters
    else:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, TypeError):
            return {}
    if not isinstance(document, Mapping):
        return {}
    try:
        return reader(document)
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
        return {}


# -- per-operation readers -------------------------------------------------------------------


def _kinesis_record_bytes(record: Mapping[str, Any]) -> int:
    # A record's size for metering is its data blob plus its partition key.
    data = base64.b64decode(record.get("Data") or "", validate=True)
    return len(data) + len(str(record.get("PartitionKey", "")).encode())


def _kinesis_put_record(document: Mapping[str, Any]) -> dict[str, Any]:
    size = _kinesis_record_bytes(document)
    return {"items": 1, "payload_bytes": size, "units": max(1, math.ceil(size / KINESIS_PUT_UNIT))}


def _kinesis_put_records(document: Mapping[str, Any]) -> dict[str, Any]:
    sizes = [_kinesis_record_bytes(r) for r in document.get("Records", [])]
    units = sum(max(1, math.ceil(s / KINESIS_PUT_UNIT)) for s in sizes)
    return {"items": len(sizes), "payload_bytes": sum(sizes), "units": units}


def _sqs_fifo(document: Mapping[str, Any]) -> bool:
    return str(document.get("QueueUrl", "")).endswith(".fifo")


def _sqs_attributes_bytes(attributes: Mapping[str, Any] | None) -> int:
    size = 0
    for name, value in (attributes or {}).items():
        size += len(name.encode()) + len(str(value.get("DataType", "")).encode())
        size += len(str(value.get("StringValue", "")).encode())
        size += len(str(value.get("BinaryValue", "")))
    return size


def _sqs_message_bytes(message: Mapping[str, Any]) -> int:
    body = len(str(message.get("MessageBody", "")).encode())
    return body + _sqs_attributes_bytes(message.get("MessageAttributes"))


def _sqs_send(document: Mapping[str, Any]) -> dict[str, Any]:
    size = _sqs_message_bytes(document)
    return {
        "items": 1,
        "payload_bytes": size,
        "units": sqs_units(size),
        "fifo": _sqs_fifo(document),
    }


def _sqs_send_batch(document: Mapping[str, Any]) -> dict[str, Any]:
    entries = document.get("Entries", [])
    size = sum(_sqs_message_bytes(e) for e in entries)
    return {
        "items": len(entries),
        "payload_bytes": size,
        "units": sqs_units(size),
        "fifo": _sqs_fifo(document),
    }


def _sqs_entries(document: Mapping[str, Any]) -> dict[str, Any]:
    return {"items": len(document.get("Entries", [])), "fifo": _sqs_fifo(document)}


def _sqs_plain(document: Mapping[str, Any]) -> dict[str, Any]:
    return {"fifo": _sqs_fifo(document)}


def _dynamodb_value_bytes(value: Mapping[str, Any]) -> int:
    """An attribute value's size by DynamoDB's rules (approximately for numbers)."""
    (kind, raw), *_ = value.items()
    if kind == "S":
        return len(str(raw).encode())
    if kind == "N":
        digits = str(raw).lstrip("-").replace(".", "").lstrip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(_binary(raw))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(v).encode()) for v in raw)
    if kind == "NS":
        return sum(_dynamodb_value_bytes({"N": v}) for v in raw)
    if kind == "BS":
        return sum(len(_binary(v)) for v in raw)
    if kind == "L":
        return 3 + sum(1 + _dynamodb_value_bytes(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + _dynamodb_item_bytes({k: v}) for k, v in raw.items())
    return len(json.dumps(raw))


def _binary(raw: Any) -> bytes:
    # Wire JSON carries base64 text; moto's parsed parameters carry the bytes.
    return bytes(raw) if isinstance(raw, bytes | bytearray) else base64.b64decode(raw)


def _dynamodb_item_bytes(item: Mapping[str, Any]) -> int:
    return sum(len(name.encode()) + _dynamodb_value_bytes(value) for name, value in item.items())


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / DYNAMODB_WRITE_UNIT))


def _dynamodb_put(document: Mapping[str, Any]) -> dict[str, Any]:
    size = _dynamodb_item_bytes(document.get("Item", {}))
    return {"items": 1, "payload_bytes": size, "units": _write_units(size)}


def _dynamodb_update(document: Mapping[str, Any]) -> dict[str, Any]:
    # The written item is not in the request; key plus new values is a lower bound.
    size = _dynamodb_item_bytes(document.get("Key", {})) + _dynamodb_item_bytes(
        document.get("ExpressionAttributeValues", {})
    )
    return {"items": 1, "payload_bytes": size, "units": _write_units(size)}


def _dynamodb_batch_write(document: Mapping[str, Any]) -> dict[str, Any]:
    sizes: list[int] = []
    for requests in document.get("RequestItems", {}).values():
        for request in requests:
            put = request.get("PutRequest")
            item = put["Item"] if put else request.get("DeleteRequest", {}).get("Key", {})
            sizes.append(_dynamodb_item_bytes(item))
    return {
        "items": len(sizes),
        "payload_bytes": sum(sizes),
        "units": sum(_write_units(s) for s in sizes),
    }


def _dynamodb_transact_write(document: Mapping[str, Any]) -> dict[str, Any]:
    sizes: list[int] = []
    for entry in document.get("TransactItems", []):
        (_, action), *_ = entry.items()
        sizes.append(_dynamodb_item_bytes(action.get("Item") or action.get("Key") or {}))
    # A transactional write costs two write units per 1 KB.
    return {
        "items": len(sizes),
        "payload_bytes": sum(sizes),
        "units": sum(2 * _write_units(s) for s in sizes),
    }


def _dynamodb_batch_get(document: Mapping[str, Any]) -> dict[str, Any]:
    keys = sum(len(t.get("Keys", [])) for t in document.get("RequestItems", {}).values())
    return {"items": keys, "units": keys}


def _events_put(document: Mapping[str, Any]) -> dict[str, Any]:
    entries = document.get("Entries", [])
    size = sum(len(json.dumps(e).encode()) for e in entries)
    # EventBridge meters each 64 KB chunk of an event as one event.
    units = sum(max(1, math.ceil(len(json.dumps(e).encode()) / SQS_CHUNK)) for e in entries)
    return {"items": len(entries), "payload_bytes": size, "units": units}


_SHAPES: dict[tuple[str, str], Any] = {
    ("kinesis", "PutRecord"): _kinesis_put_record,
    ("kinesis", "PutRecords"): _kinesis_put_records,
    ("sqs", "SendMessage"): _sqs_send,
    ("sqs", "SendMessageBatch"): _sqs_send_batch,
    ("sqs", "DeleteMessageBatch"): _sqs_entries,
    ("sqs", "ChangeMessageVisibilityBatch"): _sqs_entries,
    ("sqs", "ReceiveMessage"): _sqs_plain,
    ("sqs", "DeleteMessage"): _sqs_plain,
    ("sqs", "ChangeMessageVisibility"): _sqs_plain,
    ("dynamodb", "PutItem"): _dynamodb_put,
    ("dynamodb", "UpdateItem"): _dynamodb_update,
    ("dynamodb", "DeleteItem"): _dynamodb_update,
    ("dynamodb", "BatchWriteItem"): _dynamodb_batch_write,
    ("dynamodb", "TransactWriteItems"): _dynamodb_transact_write,
    ("dynamodb", "BatchGetItem"): _dynamodb_batch_get,
    ("events", "PutEvents"): _events_put,
}
