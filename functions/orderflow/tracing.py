"""One order, one X-Ray trace: carry the trace across the hops that drop it, record work in it.

What AWS carries (X-Ray and Lambda developer guides):

- Lambda ``Invoke``, sync or async, continues the caller's trace.
- Kinesis and DynamoDB Streams event sources carry no trace context at all: each batch
  invocation starts a new trace, and a stream record has nowhere to put a header.
- SQS keeps the producer's header in the ``AWSTraceHeader`` system attribute, but a Lambda SQS
  event source starts a new trace per batch and *links* it to the producers' traces (X-Ray
  trace linking), because one batch may hold messages of many traces.

So the path ingest -> orders stream -> changes -> SQS -> fulfil is three traces unless the code
carries the order's trace itself, which is what this module does:

1. ingest writes its invocation's header on the order item (:data:`ITEM_ATTRIBUTE`, through
   :meth:`LinkedTraces.carried_header`); the stream image hands it to changes.
2. A consumer opens a :meth:`LinkedTraces.hop` per record with the upstream header (the stream
   image's, or the message's ``AWSTraceHeader``). Records of one upstream segment share one
   segment of *this* function in the *upstream* trace, whose parent is the upstream segment;
   the hop yields that segment's header, which changes passes on as the tasks' AWSTraceHeader.
3. At the end of the batch :meth:`LinkedTraces.flush` sends each segment to the X-Ray daemon
   as one UDP datagram (what Powertools' Tracer does for its own segments): no API call per
   record and no latency. A hop into the trace the invocation already belongs to (a platform
   that continues the trace, as the local cloud's SQS event source does) records nothing.

Tracing failures are logged, never raised: a record never fails because of its trace.

Example::

    linked = LinkedTraces(emitter, name="changes")
    for record in batch:
        with linked.hop(record_header) as header:     # None when not traced
            outbox.add(task, record_id=record_id, trace_header=header)
    linked.flush()
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, overload

from orderflow.errors import ErrorKind, classify, describe

__all__ = [
    "ITEM_ATTRIBUTE",
    "Emitter",
    "LinkedTraces",
    "TraceHeader",
    "daemon_datagram",
    "new_segment_id",
    "parse_daemon_address",
    "segment_document",
    "split_item_trace",
]

#: The orders item attribute holding the trace header of the ingest invocation that wrote it.
#: Storage only: it is never part of the OrderState schema (see :func:`split_item_trace`).
ITEM_ATTRIBUTE = "trace_header"

#: The X-Ray daemon protocol: a JSON header line, a newline, then one segment document.
_DAEMON_HEADER = b'{"format": "json", "version": 1}\n'

_ROOT = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")
_SEGMENT_ID = re.compile(r"[0-9a-f]{16}")


def new_segment_id() -> str:
    """A random 64-bit segment id, 16 lowercase hex digits as X-Ray requires."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """An X-Ray trace header (``Root=1-...;Parent=...;Sampled=1``), parsed.

    ``extra`` keeps the other fields in order (Lambda adds ``Lineage`` for its recursive-loop
    detection).

    Example::

        >>> TraceHeader.parse("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1").sampled
        True
    """

    root: str
    parent: str | None = None
    sampled: bool | None = None
    extra: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: object) -> TraceHeader | None:
        """The header in ``value``, or None when it is not a header with a valid ``Root``."""
        if not isinstance(value, str) or not value:
            return None
        fields: dict[str, str] = {}
        for part in value.split(";"):
            key, sep, item = part.strip().partition("=")
            if sep and key:
                fields[key] = item
        root = fields.pop("Root", "")
        if not _ROOT.fullmatch(root):
            return None
        parent = fields.pop("Parent", None)
        sampled = {"1": True, "0": False}.get(fields.pop("Sampled", ""))
        return cls(
            root=root,
            parent=parent if parent and _SEGMENT_ID.fullmatch(parent) else None,
            sampled=sampled,
            extra=tuple(fields.items()),
        )

    def render(self) -> str:
        parts = [f"Root={self.root}"]
        if self.parent:
            parts.append(f"Parent={self.parent}")
        if self.sampled is not None:
            parts.append(f"Sampled={int(self.sampled)}")
        parts.extend(f"{key}={value}" for key, value in self.extra)
        return ";".join(parts)


@overload
def split_item_trace(image: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]: ...
@overload
def split_item_trace(image: None) -> tuple[None, None]: ...
@overload
def split_item_trace(
    image: Mapping[str, Any] | None,
) -> tuple[Mapping[str, Any] | None, str | None]: ...
def split_item_trace(
    image: Mapping[str, Any] | None,
) -> tuple[Mapping[str, Any] | None, str | None]:
    """``(the order item without the trace attribute, that attribute's header)``.

    The item (a deserialised table item or stream image) stays the OrderState schema's business;
    the header rides beside it. Example::

        >>> split_item_trace({"order_id": "o-1", "trace_header": "Root=1-..."})
        ({'order_id': 'o-1'}, 'Root=1-...')
    """
    if image is None or ITEM_ATTRIBUTE not in image:
        return image, None
    business = {key: value for key, value in image.items() if key != ITEM_ATTRIBUTE}
    header = image[ITEM_ATTRIBUTE]
    return business, header if isinstance(header, str) else None


def segment_document(
    *,
    name: str,
    trace_id: str,
    segment_id: str,
    parent_id: str | None,
    start: float,
    end: float,
    error: bool = False,
    fault: bool = False,
    cause: tuple[str, str] | None = None,
    records: int = 0,
    invocation_trace_id: str | None = None,
) -> dict[str, Any]:
    """An X-Ray segment document for one function's work on one upstream segment's records.

    The origin is the Lambda function's, so the service map draws the hop as an edge into the
    same function node the Lambda service reports.
    """
    document: dict[str, Any] = {
        "name": name,
        "id": segment_id,
        "trace_id": trace_id,
        "start_time": start,
        "end_time": max(start, end),
        "origin": "AWS::Lambda::Function",
        "annotations": {"records": records},
    }
    if parent_id:
        document["parent_id"] = parent_id
    if invocation_trace_id:
        # The invocation's own trace: from the order's tree to the batch it was part of.
        document["metadata"] = {"streamline": {"invocation_trace_id": invocation_trace_id}}
    if error:
        document["error"] = True
    if fault:
        document["fault"] = True
    if cause:
        kind, message = cause
        document["cause"] = {
            "exceptions": [{"id": new_segment_id(), "type": kind, "message": message}]
        }
    return document


def daemon_datagram(document: Mapping[str, Any]) -> bytes:
    """The UDP datagram the X-Ray daemon takes for one segment document."""
    return _DAEMON_HEADER + json.dumps(document, separators=(",", ":")).encode()


def parse_daemon_address(value: str | None) -> tuple[str, int] | None:
    """The daemon's UDP ``(host, port)`` from ``AWS_XRAY_DAEMON_ADDRESS``.

    Accepts ``127.0.0.1:2000`` and ``tcp:127.0.0.1:2000 udp:127.0.0.2:2001`` (the SDK's two
    notations); None when unset or malformed.
    """
    if not value:
        return None
    candidates = value.split()
    if len(candidates) > 1:
        udp = [c.removeprefix("udp:") for c in candidates if c.startswith("udp:")]
        if not udp:
            return None
        candidates = udp
    host, sep, port = candidates[0].rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host, int(port)


class Emitter(Protocol):
    """Sends one segment document to the X-Ray daemon (``orderflow.dal.xray`` in Lambda)."""

    def send(self, document: Mapping[str, Any]) -> None: ...


@dataclass(slots=True)
class _Hop:
    """One upstream segment's records in this batch: becomes one segment document."""

    upstream: TraceHeader
    segment_id: str
    header: str
    start: float
    end: float
    records: int = 0
    error: bool = False
    fault: bool = False
    cause: tuple[str, str] | None = None


class _Untraced:
    """The hop scope when there is nothing to record: yields None, costs one call."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> Literal[False]:
        return False


_UNTRACED = _Untraced()


class _HopScope:
    """The hop scope of one record: times it and marks its segment if it raises."""

    __slots__ = ("_hop", "_owner", "_started")

    def __init__(self, owner: LinkedTraces, hop: _Hop) -> None:
        self._owner = owner
        self._hop = hop
        self._started = 0.0

    def __enter__(self) -> str:
        self._started = self._owner.clock()
        return self._hop.header

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:
        self._owner._close(self._hop, self._started, exc)
        return False  # the record's outcome is never ours to change


@dataclass(slots=True)
class LinkedTraces:
    """Records this function's work in the traces its records came from (see the module doc).

    Disabled (every method a no-op) without an emitter: tracing off, or no daemon address.
    Not thread-safe: a Lambda environment runs one invocation at a time.
    """

    emitter: Emitter | None
    name: str | None = None
    clock: Callable[[], float] = time.time
    current: Callable[[], str | None] = lambda: os.environ.get("_X_AMZN_TRACE_ID") or None
    on_error: Callable[[str, BaseException], None] | None = None
    _hops: dict[tuple[str, str | None], _Hop] = field(default_factory=dict)
    # Per batch, by the raw upstream header: its hop, or None for "nothing to record". Records
    # of one batch mostly share a few headers, so each is parsed once.
    _seen: dict[str, _Hop | None] = field(default_factory=dict)
    # The carried header of the batch under way: (header,) once computed, None before. Read
    # once per batch (new_batch forgets it): the environment read per record was about a
    # tenth of ingest's per-record CPU.
    _carried: tuple[str | None] | None = None

    @property
    def enabled(self) -> bool:
        return self.emitter is not None

    def carried_header(self) -> str | None:
        """The header to store where trace context cannot travel (the order item).

        This invocation's ``Root`` and ``Parent`` (its function segment), when it is sampled;
        None when tracing is off or the invocation is not sampled.
        """
        if self.emitter is None:
            return None
        if self._carried is None:
            header = TraceHeader.parse(self.current())
            carried = None
            if header is not None and header.sampled and header.parent:
                carried = TraceHeader(header.root, header.parent, True).render()
            self._carried = (carried,)
        return self._carried[0]

    def new_batch(self) -> None:
        """Forget the last batch's invocation: its trace header is read again when needed."""
        self._carried = None

    def hop(self, upstream: str | None) -> AbstractContextManager[str | None]:
        """Run one record's work as part of ``upstream``'s trace: ``with linked.hop(h) as out``.

        ``out`` is the header for what this record sends on (this function's segment in the
        upstream trace), or None when there is nothing to record: tracing off, no or unsampled
        upstream header, or an upstream trace this invocation already belongs to. An exception
        from the body marks the segment (error for poison, fault otherwise) and propagates.
        """
        if self.emitter is None or not upstream:
            return _UNTRACED
        hop = self._seen[upstream] if upstream in self._seen else self._open(upstream)
        return _UNTRACED if hop is None else _HopScope(self, hop)

    def flush(self) -> int:
        """Send this batch's segments, one datagram per upstream segment; how many were sent."""
        hops, self._hops = self._hops, {}
        self._seen = {}
        if not hops or self.emitter is None:
            return 0
        sent = 0
        try:
            name = self.name or _function_name()
            own = TraceHeader.parse(self.current())
            for hop in hops.values():
                self.emitter.send(
                    segment_document(
                        name=name,
                        trace_id=hop.upstream.root,
                        segment_id=hop.segment_id,
                        parent_id=hop.upstream.parent,
                        start=hop.start,
                        end=hop.end,
                        error=hop.error,
                        fault=hop.fault,
                        cause=hop.cause,
                        records=hop.records,
                        invocation_trace_id=own.root if own else None,
                    )
                )
                sent += 1
        except Exception as exc:
            self._report("could not send linked X-Ray segments", exc)
        return sent

    def _open(self, upstream: str) -> _Hop | None:
        hop: _Hop | None = None
        try:
            header = TraceHeader.parse(upstream)
            own = TraceHeader.parse(self.current())
            # Nothing to record for an unsampled producer, or for a trace the platform
            # continued into this invocation: our own segment is in it already.
            if (
                header is not None
                and header.sampled is not False
                and (own is None or own.root != header.root)
            ):
                hop = self._hop_for(header, own)
        except Exception as exc:
            self._report("could not open a linked X-Ray segment", exc)
        self._seen[upstream] = hop
        return hop

    def _hop_for(self, header: TraceHeader, own: TraceHeader | None) -> _Hop:
        key = (header.root, header.parent)
        hop = self._hops.get(key)
        if hop is None:
            segment_id = new_segment_id()
            # Keep this invocation's other fields (Lineage): Lambda's recursive-loop detection
            # reads them from the header we hand to SQS.
            outgoing = TraceHeader(header.root, segment_id, True, own.extra if own else ())
            now = self.clock()
            hop = _Hop(header, segment_id, outgoing.render(), start=now, end=now)
            self._hops[key] = hop
        return hop

    def _close(self, hop: _Hop, started: float, exc: BaseException | None) -> None:
        try:
            hop.start = min(hop.start, started)
            hop.end = max(hop.end, self.clock())
            hop.records += 1
            if isinstance(exc, Exception):
                # X-Ray: error is the caller's fault (a poison record), fault is ours.
                if classify(exc) is ErrorKind.POISON:
                    hop.error = True
                else:
                    hop.fault = True
                hop.cause = hop.cause or (type(exc).__name__, describe(exc))
        except Exception as failure:
            self._report("could not close a linked X-Ray segment", failure)

    def _report(self, message: str, exc: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(message, exc)


def _function_name() -> str:
    return (
        os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        or os.environ.get("POWERTOOLS_SERVICE_NAME")
        or "streamline"
    )
