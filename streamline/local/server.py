"""The embedded moto server: a loopback-only HTTP endpoint plus in-process access to its state.

moto keeps every service's state in process-global "backends". Functions (subprocesses), the CDK
CLI and users reach them over HTTP; the engines reach them directly through :class:`Backends`,
which is much faster. moto's model code has no locking of its own, so one process-wide
re-entrant lock (:data:`MOTO_LOCK`) serialises every access: the WSGI app takes it around each
request, and engines take it around their direct reads and writes.

Example::

    server = MotoServer(port=None)      # pick a free port
    server.start()
    with server.backends.lock:
        queues = list(server.backends.sqs().queues)
    server.stop()
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

__all__ = [
    "ACCOUNT_ID",
    "MOTO_LOCK",
    "REGION",
    "Backends",
    "LockingWsgiApp",
    "MotoServer",
    "PortInUseError",
    "is_unlocked_request",
    "port_is_free",
]

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

# One lock for all of moto's state. Re-entrant because moto calls into other services from
# inside a request (SNS -> SQS, CloudFormation -> every service) and engines nest helpers.
MOTO_LOCK = threading.RLock()

# Requests that run a function must not hold the lock: the function calls moto back over HTTP,
# and that request needs the lock (deadlock otherwise). StartSyncExecution waits for a state
# machine whose Lambda tasks go through the (unlocked) Invoke API and the runner, which reads
# function config under the lock, so it must not hold it either.
_UNLOCKED_PATHS = (
    re.compile(r"^/20\d\d-\d\d-\d\d/functions/[^/]+/invocations/?$"),  # Invoke
    re.compile(r"^/2014-11-13/functions/[^/]+/invoke-async/?$"),  # InvokeAsync
)
_UNLOCKED_TARGETS = frozenset({"AWSStepFunctions.StartSyncExecution"})


def is_unlocked_request(path: str, target: str | None) -> bool:
    """Whether a request with this path and ``X-Amz-Target`` runs without the moto lock."""
    if target in _UNLOCKED_TARGETS:
        return True
    return any(pattern.match(path) for pattern in _UNLOCKED_PATHS)


class LockingWsgiApp:
    """Wraps moto's WSGI app so each request holds :data:`MOTO_LOCK` (except function runs)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], lock: threading.RLock) -> None:
        self._app = app
        self._lock = lock
        # Streamline's own read-only endpoints (e.g. status for `streamline local status`),
        # served beside moto's API because the server is the one address a detached cloud has.
        self.routes: dict[str, Callable[[], Any]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is not None:
            return self._serve_route(route, start_response)
        if is_unlocked_request(environ.get("PATH_INFO", ""), environ.get("HTTP_X_AMZ_TARGET")):
            return self._app(environ, start_response)
        with self._lock:
            # moto's Flask responses are fully built here, so materialising the body inside the
            # lock costs nothing and guarantees no model object is read after release.
            return list(self._app(environ, start_response))

    @staticmethod
    def _serve_route(route: Callable[[], Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            body, status = json.dumps(route(), default=str).encode(), "200 OK"
        except Exception as exc:  # report, never kill the server thread
            body, status = json.dumps({"error": str(exc)}).encode(), "500 Internal Server Error"
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


class PortInUseError(OSError):
    """The requested port is already bound by another process."""


class Backends:
    """In-process accessors for moto's backends of one account and region.

    Hold :attr:`lock` for every read or write of the returned objects, and never while invoking
    a function or sleeping (functions call moto over HTTP, which needs the lock).
    """

    def __init__(self, account_id: str = ACCOUNT_ID, region: str = REGION) -> None:
        self.account_id = account_id
        self.region = region
        self.lock: threading.RLock = MOTO_LOCK

    def _regional(self, service: str) -> Any:
        from moto.backends import get_backend

        return get_backend(service)[self.account_id][self.region]  # type: ignore[call-overload]

    def lambda_(self) -> Any:
        """moto's ``LambdaBackend`` (functions, event-source mappings, EventInvokeConfig)."""
        return self._regional("lambda")

    def sqs(self) -> Any:
        return self._regional("sqs")

    def kinesis(self) -> Any:
        return self._regional("kinesis")

    def dynamodb(self) -> Any:
        return self._regional("dynamodb")

    def dynamodbstreams(self) -> Any:
        return self._regional("dynamodbstreams")

    def s3(self) -> Any:
        # S3 is keyed by partition, not region.
        from moto.s3.models import s3_backends

        return s3_backends[self.account_id]["aws"]

    def sns(self) -> Any:
        return self._regional("sns")

    def events(self) -> Any:
        return self._regional("events")

    def logs(self) -> Any:
        return self._regional("logs")

    def cloudwatch(self) -> Any:
        return self._regional("cloudwatch")

    def stepfunctions(self) -> Any:
        """The executing (ASL interpreter) backend, which CDK-deployed machines land in."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        return stepfunctions_parser_backends[self.account_id][self.region]

    def xray(self) -> Any:
        return self._regional("xray")

    def cloudformation(self) -> Any:
        return self._regional("cloudformation")


class MotoServer:
    """moto's ThreadedMotoServer, bound to 127.0.0.1 only, with the request lock installed.

    ``port=None`` or ``0`` picks a free port. The endpoint uses "localhost" because moto's
    CloudFormation only parses path-style S3 template URLs whose host says "localhost".
    """

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1") -> None:
        self._requested_port = port or 0
        self._host = host
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._previous_moto_port: str | None = None
        self.backends = Backends()
        # Extra JSON endpoints (path -> callable), shared with the WSGI wrapper on start.
        self.routes: dict[str, Callable[[], Any]] = {}

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the moto server is not started")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self) -> None:
        """Bind the port (raising :class:`PortInUseError` if taken) and serve in a thread."""
        # Imported here: importing moto's server pulls in every service (about a second).
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        # werkzeug logs every request at INFO; a busy pipeline would flood the terminal.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = LockingWsgiApp(DomainDispatcherApplication(create_backend_app), MOTO_LOCK)
        app.routes = self.routes
        try:
            # Binding here, on the caller's thread (ThreadedMotoServer binds in its worker
            # thread), lets a busy port surface as an exception the caller can report.
            self._server = make_server(
                self._host,
                self._requested_port,
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE or "in use" in str(exc).lower():
                raise PortInUseError(
                    errno.EADDRINUSE,
                    f"port {self._requested_port} on {self._host} is already in use",
                ) from None
            raise
        # Step Functions' Lambda/SDK integrations and CloudFormation custom-resource callbacks
        # build their URLs from MOTO_PORT, so it must name the real (possibly picked) port.
        self._previous_moto_port = os.environ.get("MOTO_PORT")
        os.environ["MOTO_PORT"] = str(self.port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        started = self._server is not None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        # Give MOTO_PORT back: another server in this process (a test's, or the session cloud
        # a test ran beside) must keep receiving its Step Functions callbacks.
        if not started:
            return
        if self._previous_moto_port is not None:
            os.environ["MOTO_PORT"] = self._previous_moto_port
        else:
            os.environ.pop("MOTO_PORT", None)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` right now (used for early CLI errors)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
