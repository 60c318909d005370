"""Test support for the ESM engine: a scripted fake invoker and an in-process moto harness.

The engine's semantics are tested with a :class:`ScriptedInvoker` (no function runtime) against a
real moto server, so tests only depend on moto and this package. When ``streamline.local.server``
provides the platform's ``Backends`` the engine works the same against it.

Example::

    with MotoHarness() as moto:
        invoker = ScriptedInvoker(lambda event, call: {})
        engine = EsmEngine(moto.backends, invoker, tmp_path, SystemClock(), poll_interval=0.05)
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from streamline.local.contracts import InvokeResult

__all__ = [
    "InProcessBackends",
    "InvokeCall",
    "MotoHarness",
    "ScriptedInvoker",
    "disable_builtin_triggers",
    "install_validation",
    "wait_until",
]

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class InProcessBackends:
    """A stand-in for ``streamline.local.server.Backends`` (same attributes and accessors)."""

    def __init__(self, account_id: str = ACCOUNT_ID, region: str = REGION) -> None:
        self.account_id = account_id
        self.region = region
        self.lock = threading.RLock()

    def lambda_(self) -> Any:
        from moto.awslambda.models import lambda_backends

        return lambda_backends[self.account_id][self.region]

    def sqs(self) -> Any:
        from moto.sqs.models import sqs_backends

        return sqs_backends[self.account_id][self.region]

    def kinesis(self) -> Any:
        from moto.kinesis.models import kinesis_backends

        return kinesis_backends[self.account_id][self.region]

    def dynamodb(self) -> Any:
        from moto.dynamodb.models import dynamodb_backends

        return dynamodb_backends[self.account_id][self.region]

    def dynamodbstreams(self) -> Any:
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        return dynamodbstreams_backends[self.account_id][self.region]

    def sns(self) -> Any:
        from moto.sns.models import sns_backends

        return sns_backends[self.account_id][self.region]

    def s3(self) -> Any:
        from moto.s3.models import s3_backends

        return s3_backends[self.account_id]["aws"]


def disable_builtin_triggers() -> None:
    """moto's synchronous SQS/Kinesis/DynamoDB triggers off (the platform patch does the same).

    Every read of ``lambda_event_source_mappings`` returns a fresh empty dict, so moto never
    invokes functions itself and never clears DynamoDB stream items.
    """
    from moto.dynamodb.models.table import Table
    from moto.kinesis.models import Stream
    from moto.sqs.models import Queue

    sink = property(lambda self: {}, lambda self, value: None)
    for cls in (Queue, Stream, Table):
        cls.lambda_event_source_mappings = sink  # type: ignore[assignment]


def install_validation() -> None:
    """Test-only stand-in for the platform patch: wrap moto's create/update with esm.validation."""
    from moto.awslambda.models import LambdaBackend

    from streamline.local.esm.validation import wrap_create, wrap_update

    if not getattr(
        LambdaBackend.create_event_source_mapping, "__streamline_esm_validation__", False
    ):
        LambdaBackend.create_event_source_mapping = wrap_create(  # type: ignore[method-assign]
            LambdaBackend.create_event_source_mapping
        )
    if not getattr(
        LambdaBackend.update_event_source_mapping, "__streamline_esm_validation__", False
    ):
        LambdaBackend.update_event_source_mapping = wrap_update(  # type: ignore[method-assign]
            LambdaBackend.update_event_source_mapping
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoHarness:
    """A ThreadedMotoServer on a free loopback port whose requests hold ``backends.lock``.

    Holding the lock per request is what the platform's server does; it keeps moto's unlocked
    model code (SQS delete rebuilds the message list) safe against the engine's threads.
    """

    def __init__(self) -> None:
        self.backends: Any = InProcessBackends()
        self.port = _free_port()
        self.endpoint_url = f"http://localhost:{self.port}"
        self._server: Any = None

    def __enter__(self) -> MotoHarness:
        disable_builtin_triggers()
        install_validation()
        server_cls: Any = None
        try:
            # Prefer the platform's server (same lock, same Backends) once it exists.
            from streamline.local.server import MotoServer

            server_cls = MotoServer
        except ImportError:
            server_cls = None
        if server_cls is not None:
            server = server_cls(self.port)
            server.start()
            self.backends = server.backends
            self._server = server
            return self
        self._server = self._fallback_server()
        self._server.start()
        return self

    def _fallback_server(self) -> Any:
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        lock = self.backends.lock

        class _LockedServer(ThreadedMotoServer):
            def _server_entry(self) -> None:
                app = DomainDispatcherApplication(create_backend_app)

                def locked(environ: Any, start_response: Any) -> Any:
                    with lock:
                        return list(app(environ, start_response))

                self._server = make_server(
                    self._ip_address, self._port, locked, True, request_handler=MotoRequestHandler
                )
                self._server_ready_event.set()
                self._server.serve_forever()

        return _LockedServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def reset(self) -> None:
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).read()

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
        except Exception:
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
    ``delay`` seconds are slept per call (to observe concurrency).
    """

    handler: Callable[[dict[str, Any], InvokeCall], Any] = field(default=lambda event, call: None)
    delay: float = 0.0
    calls: list[InvokeCall] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        try:
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


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy; raise AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@contextmanager
def moto_harness() -> Iterator[MotoHarness]:
    with MotoHarness() as harness:
        yield harness
