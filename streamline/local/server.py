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
import io
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

    from streamline.local.durability import Durability
    from streamline.local.keepalive import LiveConnections

__all__ = [
    "ACCOUNT_ID",
    "MOTO_LOCK",
    "REGION",
    "AccessPolicy",
    "Backends",
    "LockingWsgiApp",
    "MotoServer",
    "PortInUseError",
    "is_unlocked_request",
    "moto_app",
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


_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


@dataclass
class AccessPolicy:
    """Whom a local server answers: its owner on this machine, not any web page they visit.

    - ``Host`` must name this machine's loopback with the server's port (``localhost``,
      ``*.localhost`` for S3's virtual-hosted buckets, ``127.0.0.1``, ``[::1]``). A foreign
      Host is what DNS rebinding sends: refused.
    - A request with an ``Origin`` (only browsers send one; AWS SDKs never do) is refused unless
      that origin is allowed (``--allow-origin``); then, and only then, CORS headers answer it.

    Example::

        policy = AccessPolicy(port=4566, allowed_origins=frozenset({"http://localhost:8501"}))
        policy.refusal({"HTTP_HOST": "evil.example"})   # "Host 'evil.example' is not ..."
    """

    port: int = 0
    allowed_origins: frozenset[str] = frozenset()

    def refusal(self, environ: dict[str, Any]) -> str | None:
        """Why the request is refused, or None to serve it."""
        host = str(environ.get("HTTP_HOST") or "")
        if not self.host_allowed(host):
            return f"Host {host[:100]!r} is not this local server (localhost:{self.port})"
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and origin not in self.allowed_origins:
            return (
                f"Origin {str(origin)[:100]!r} may not use this local server "
                "(allow a page with --allow-origin)"
            )
        return None

    def host_allowed(self, host: str) -> bool:
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not name:
            return False
        if port and port != str(self.port):
            return False
        if not port and self.port not in (80, 0):
            return False
        name = name.lower()
        return name in _LOOPBACK_NAMES or name.endswith(".localhost")

    def cors_headers(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        origin = environ.get("HTTP_ORIGIN")
        if origin is None or origin not in self.allowed_origins:
            return []
        return [
            ("Access-Control-Allow-Origin", str(origin)),
            ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, HEAD, OPTIONS"),
            (
                "Access-Control-Allow-Headers",
                str(environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS") or "*"),
            ),
            ("Access-Control-Expose-Headers", "*"),
            ("Vary", "Origin"),
        ]


def refuse(start_response: Callable[..., Any], reason: str) -> list[bytes]:
    """A 403 with the reason as an AWS-shaped JSON error."""
    body = json.dumps({"__type": "AccessDeniedException", "message": reason}).encode()
    start_response(
        "403 Forbidden",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


class LockingWsgiApp:
    """Wraps moto's WSGI app so each request holds :data:`MOTO_LOCK` (except function runs)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], lock: threading.RLock) -> None:
        self._app = app
        self._lock = lock
        # Streamline's own read-only endpoints (e.g. status for `streamline local status`),
        # served beside moto's API because the server is the one address a detached cloud has.
        self.routes: dict[str, Callable[[], Any]] = {}
        #: Journals every request that can change state (``streamline.local.durability``).
        self.durability: Durability | None = None
        #: Who may call (Host and Origin); the port is set once the server is bound.
        self.access = AccessPolicy()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        reason = self.access.refusal(environ)
        if reason is not None:
            return refuse(start_response, reason)
        cors = self.access.cors_headers(environ)
        if cors:
            if environ.get("REQUEST_METHOD") == "OPTIONS":  # an allowed page's preflight
                start_response("204 No Content", [*cors, ("Content-Length", "0")])
                return [b""]
            start_response = _with_headers(start_response, cors)
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is not None:
            return self._serve_route(route, start_response)
        if is_unlocked_request(environ.get("PATH_INFO", ""), environ.get("HTTP_X_AMZ_TARGET")):
            return self._app(environ, start_response)
        with self._lock:
            at = self._journal(environ) if self.durability is not None else None
            if at is None:
                # moto's Flask responses are fully built here, so materialising the body inside
                # the lock costs nothing and guarantees no model object is read after release.
                return list(self._app(environ, start_response))
            from streamline.local.durability import change_at

            with change_at(at):
                return list(self._app(environ, start_response))

    def _journal(self, environ: dict[str, Any]) -> float | None:
        """Write the request ahead of running it, if it can change state (lock held); the
        change's time, or None when it changes nothing."""
        from streamline.local.durability import dumps_request, is_read_only

        body = _read_body(environ)
        if is_read_only(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
            environ.get("HTTP_X_AMZ_TARGET"),
            body,
        ):
            return None
        durability = self.durability
        assert durability is not None
        seed = durability.next_seed()
        at = time.time()
        # A journal that cannot be written refuses the request before anything changes.
        durability.record_http(seed, at, dumps_request(environ, body))
        return at

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


def _with_headers(
    start_response: Callable[..., Any], extra: list[tuple[str, str]]
) -> Callable[..., Any]:
    def wrapped(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
        return start_response(status, kept + extra, exc_info)

    return wrapped


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read whole and put back for the app to read again."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return bytes(body)


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

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        allowed_origins: frozenset[str] = frozenset(),
    ) -> None:
        self._requested_port = port or 0
        self.allowed_origins = allowed_origins
        self._host = host
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: LiveConnections | None = None
        self._previous_moto_port: str | None = None
        self.backends = Backends()
        # Extra JSON endpoints (path -> callable), shared with the WSGI wrapper on start.
        self.routes: dict[str, Callable[[], Any]] = {}
        #: Set before start to journal every state-changing request (``durability``).
        self.durability: Durability | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the moto server is not started")
        return int(self._server.server_address[1])

    @property
    def connections_opened(self) -> int:
        """HTTP connections accepted since start (each kept open for many requests)."""
        return self._connections.opened if self._connections is not None else 0

    @property
    def endpoint_url(self) -> str:
        return f"http://localhost:{self.port}"

    def start(self) -> None:
        """Bind the port (raising :class:`PortInUseError` if taken) and serve in a thread."""
        # Imported here: importing moto's server pulls in every service (about a second).
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import make_server

        from streamline.local.keepalive import KeepAliveHandler, LiveConnections

        # werkzeug logs every request at INFO; a busy pipeline would flood the terminal.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = LockingWsgiApp(DomainDispatcherApplication(create_backend_app), MOTO_LOCK)
        app.routes = self.routes
        app.durability = self.durability
        if self._requested_port and not port_is_free(self._requested_port, self._host):
            # werkzeug prints its own lines and exits the process on a taken port: ask first.
            raise PortInUseError(
                errno.EADDRINUSE,
                f"port {self._requested_port} on {self._host} is already in use",
            )
        try:
            # Binding here, on the caller's thread (ThreadedMotoServer binds in its worker
            # thread), lets a busy port surface as an exception the caller can report.
            self._server = make_server(
                self._host,
                self._requested_port,
                app,
                threaded=True,
                # Persistent connections: werkzeug's own handler closes every one.
                request_handler=KeepAliveHandler,
            )
            self._connections = LiveConnections()
            self._server.connections = self._connections  # type: ignore[attr-defined]
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE or "in use" in str(exc).lower():
                raise PortInUseError(
                    errno.EADDRINUSE,
                    f"port {self._requested_port} on {self._host} is already in use",
                ) from None
            raise
        app.access = AccessPolicy(self.port, self.allowed_origins)
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
            # Kept-alive connections would otherwise hold their threads (and their clients)
            # until the idle timeout.
            if self._connections is not None:
                self._connections.close_all()
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


def moto_app() -> Callable[..., Iterable[bytes]]:
    """moto's own WSGI app, without our lock or journal (the journal's replay drives it)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` right now (used for early CLI errors)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As werkzeug binds: without it, the TIME_WAIT connections a stopped (or killed) cloud
        # leaves behind make the port look taken for a minute after it is free to serve.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
