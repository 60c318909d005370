"""Test support for the ESM engine: a scripted fake invoker and an in-process moto harness.

The engine's semantics are tested with a :class:`ScriptedInvoker` (no function runtime) against
the platform's moto server (``streamline.local.server.MotoServer``) with every platform patch
applied (``streamline.local.patches.apply_all``: built-in triggers off, mapping validation, SQS hot
paths), so the engine runs exactly as it does inside the local cloud.

moto's state is process-global: mappings, queues and streams outlive a harness. Name resources
uniquely and delete the mappings a test created (every engine serves every mapping it sees).

Example::

    with MotoHarness() as moto:
        invoker = ScriptedInvoker(lambda event, call: {})
        engine = EsmEngine(moto.backends, invoker, tmp_path, SystemClock(), poll_interval=0.05)
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamline.local.contracts import InvokeResult

if TYPE_CHECKING:
    from streamline.local.server import Backends, MotoServer

__all__ = [
    "InvokeCall",
    "MotoHarness",
    "ScriptedInvoker",
    "create_streamed_table",
    "moto_harness",
    "wait_until",
]


class MotoHarness:
    """The platform's :class:`~streamline.local.server.MotoServer` on a free loopback port,
    with every platform patch applied (idempotent; moto stays patched for the process).

    ``patches.apply_all()`` also routes moto's Invoke API to registered invokers; the engine
    under test calls its :class:`ScriptedInvoker` directly and never goes through that path.
    """

    def __init__(self) -> None:
        self._server: MotoServer | None = None

    def __enter__(self) -> MotoHarness:
        from streamline.local import patches
        from streamline.local.server import MotoServer

        patches.apply_all()
        server = MotoServer(port=None)
        server.start()
        self._server = server
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def server(self) -> MotoServer:
        if self._server is None:
            raise RuntimeError("the moto harness is not started")
        return self._server

    @property
    def backends(self) -> Backends:
        return self.server.backends

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def client(self, service: str) -> Any:
        from streamline.local.clients import make_client

        return make_client(service, self.endpoint_url)

    def delete_all_mappings(self) -> None:
        """Delete every event source mapping (moto's state outlives tests and harnesses)."""
        client = self.client("lambda")
        for page in client.get_paginator("list_event_source_mappings").paginate():
            for mapping in page["EventSourceMappings"]:
                client.delete_event_source_mapping(UUID=mapping["UUID"])

    def create_function(self, name: str, timeout: int = 3) -> str:
        """A Python function (never run: tests use a fake invoker); returns its ARN."""
        import io
        import zipfile

        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
        iam = self.client("iam")
        try:
            role = iam.get_role(RoleName="esm-test-role")["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            role = iam.create_role(RoleName="esm-test-role", AssumeRolePolicyDocument="{}")["Role"][
                "Arn"
            ]
        response = self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": buffer.getvalue()},
            Timeout=timeout,
        )
        return str(response["FunctionArn"])


@dataclass
class InvokeCall:
    """One invocation the fake invoker received."""

    function: str
    event: dict[str, Any]
    trace_header: str | None
    started: float
    result: InvokeResult | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self.event.get("Records") or [])


@dataclass
class ScriptedInvoker:
    """A ``contracts.Invoker`` whose behaviour a test scripts.

    ``handler(event, call)`` returns the function's response (JSON-serialised; ``bytes`` are sent
    as-is; an ``InvokeResult`` is returned unchanged) or raises to simulate an unhandled error.
    ``delay`` seconds are slept per call (to observe concurrency). ``overlap=n`` holds each call
    until ``n`` calls have been in flight at once (then never again; at most ``overlap_timeout``
    seconds), so a concurrency test observes concurrency however loaded the machine is.
    """

    handler: Callable[[dict[str, Any], InvokeCall], Any] = field(default=lambda event, call: None)
    delay: float = 0.0
    overlap: int = 0
    overlap_timeout: float = 10.0
    calls: list[InvokeCall] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _overlapped: threading.Event = field(default_factory=threading.Event)

    def invoke(
        self,
        function: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        trace_header: str | None = None,
    ) -> InvokeResult:
        call = InvokeCall(function, json.loads(payload), trace_header, time.time())
        with self._lock:
            self.calls.append(call)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.overlap and self.in_flight >= self.overlap:
                self._overlapped.set()
        try:
            if self.overlap:
                self._overlapped.wait(self.overlap_timeout)
            if self.delay:
                time.sleep(self.delay)
            try:
                value = self.handler(call.event, call)
            except Exception as exc:  # the simulated function raised
                body = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
                call.result = InvokeResult(
                    str(uuid.uuid4()), json.dumps(body).encode(), function_error="Unhandled"
                )
                return call.result
            if isinstance(value, InvokeResult):
                call.result = value
            elif isinstance(value, bytes):
                call.result = InvokeResult(str(uuid.uuid4()), value)
            else:
                call.result = InvokeResult(str(uuid.uuid4()), json.dumps(value).encode())
            return call.result
        finally:
            with self._lock:
                self.in_flight -= 1

    def records(self) -> list[dict[str, Any]]:
        """Every record delivered so far, in delivery order."""
        with self._lock:
            return [record for call in self.calls for record in call.records]

    def bodies(self) -> list[str]:
        return [r["body"] for r in self.records() if "body" in r]

    def kinesis_data(self) -> list[str]:
        return [base64.b64decode(r["kinesis"]["data"]).decode() for r in self.records()]


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy; raise AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def create_streamed_table(ddb: Any, name: str, key: str = "pk") -> dict[str, Any]:
    """An on-demand table keyed by string ``key`` with a NEW_AND_OLD_IMAGES stream."""
    return dict(
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )["TableDescription"]
    )


@contextmanager
def moto_harness() -> Iterator[MotoHarness]:
    with MotoHarness() as harness:
        yield harness
