"""HTTP/1.1 keep-alive for the embedded moto server.

werkzeug's development server answers every request with ``Connection: close`` (its
``run_wsgi`` hard-codes it, because ``http.server`` cannot tell where an unread request body
ends and the next request begins). Every AWS call then pays a TCP connect, a new server thread
and a close: measured by ``bench/pipeline.py``, that per-request thread was the largest single
CPU cost of the local pipeline. This handler keeps connections open:

- the request body is read whole before the app runs (so the next request line is always where
  the stream stands, whatever the app read), chunked bodies included;
- the response is sent with its exact ``Content-Length`` (bodies are built whole anyway: moto's
  responses are materialised under the server lock);
- a connection idle for :data:`IDLE_TIMEOUT` seconds is closed by the server; SDKs reopen one
  when they find it closed, before sending;
- at most :data:`MAX_KEPT` connections are kept at once (each holds a thread); beyond that, a
  response says ``Connection: close``, as before;
- :meth:`KeepAliveServerMixin.close_connections` ends every kept connection when the server
  stops, so no client waits on a socket nobody serves and no thread outlives the server.

Example::

    server = make_server(host, 0, app, threaded=True, request_handler=KeepAliveHandler)
    server.connections = LiveConnections()
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
from http import HTTPStatus
from typing import Any

from moto.moto_server.werkzeug_app import MotoRequestHandler

__all__ = ["IDLE_TIMEOUT", "MAX_KEPT", "KeepAliveHandler", "LiveConnections"]

_log = logging.getLogger(__name__)

#: Seconds an idle kept connection stays open. Longer than the SDK clients' own idle reuse
#: windows, so it is nearly always the client that closes first (no reuse racing a close).
IDLE_TIMEOUT = 120.0
#: Connections kept open at once (one thread each). The local pipeline holds about one per
#: function environment and client; the cap only bounds a runaway client.
MAX_KEPT = 256


class LiveConnections:
    """The sockets a server currently serves, so that stopping it can close them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        #: Connections accepted so far (the pipeline bench reports them per event).
        self.opened = 0

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
            self.opened += 1

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sockets)

    def close_all(self) -> int:
        """Shut every live connection down (its thread then ends); how many there were."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):  # already gone
                sock.shutdown(socket.SHUT_RDWR)
        return len(sockets)


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler (its header handling kept) with persistent connections."""

    protocol_version = "HTTP/1.1"
    # http.server applies it to the socket: an idle connection's next readline times out and
    # the handler closes it.
    timeout = IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        # Each response goes out in one write; nothing is gained by delaying it.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._live().add(self.connection)

    def finish(self) -> None:
        self._live().discard(self.connection)
        super().finish()

    def _live(self) -> LiveConnections:
        live = getattr(self.server, "connections", None)
        if live is None:
            live = LiveConnections()
            self.server.connections = live  # type: ignore[attr-defined]
        return live

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Not logged: one line per AWS call would flood any log (werkzeug logs at INFO)."""

    def log_error(self, format: str, *args: Any) -> None:
        """An idle kept connection reaching its timeout is normal, not an error to print."""
        if format.startswith("Request timed out"):
            return
        super().log_error(format, *args)

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.environ = self.make_environ()
        try:
            body = self._request_body(environ)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client left mid-body: nobody to answer
            return
        except (OSError, ValueError) as exc:  # a bad Content-Length or chunk: say so, then close
            self.close_connection = True
            reason = f"malformed request body: {exc}".encode("utf-8", "replace")[:200]
            with contextlib.suppress(ConnectionError, TimeoutError):
                self.wfile.write(self._response(environ, "400 Bad Request", [], reason, keep=False))
            return
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        status, headers, payload = self._call_app(environ)
        keep = not self.close_connection and len(self._live()) <= MAX_KEPT
        self.close_connection = not keep
        try:
            self.wfile.write(self._response(environ, status, headers, payload, keep))
            self.wfile.flush()
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client left; nothing to tell it

    def _response(
        self,
        environ: dict[str, Any],
        status: str,
        headers: list[tuple[str, str]],
        payload: bytes,
        keep: bool,
    ) -> bytes:
        """Status line, headers and body as one write: split writes meet the client's delayed
        ACK and cost 40 ms a request (Nagle), which is what ``Connection: close`` used to hide."""
        code = int(status.split(None, 1)[0])
        lines = [
            f"{self.protocol_version} {status}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        length = None
        for key, value in headers:
            name = key.lower()
            if name == "content-length":
                length = value
            elif name not in ("connection", "transfer-encoding"):
                lines.append(f"{key}: {value}")
        if environ["REQUEST_METHOD"] == "HEAD":
            # A HEAD answer carries the length the GET would have, and no body.
            lines.append(f"Content-Length: {length or len(payload)}")
            payload = b""
        elif not (100 <= code < 200 or code in (204, 304)):
            lines.append(f"Content-Length: {len(payload)}")
        else:
            payload = b""
        lines.append("Connection: keep-alive" if keep else "Connection: close")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("latin-1") + payload

    @staticmethod
    def _request_body(environ: dict[str, Any]) -> bytes:
        """The whole body: by Content-Length, or to the end of a chunked body."""
        stream = environ["wsgi.input"]
        if environ.get("wsgi.input_terminated"):
            return bytes(stream.read())
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        parts = []
        while length > 0:
            part = stream.read(min(length, 1 << 20))
            if not part:
                raise ConnectionError("the client closed before sending its whole body")
            parts.append(part)
            length -= len(part)
        return b"".join(parts)

    def _call_app(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """Run the WSGI app to completion: its status, headers and whole body."""
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, list(headers)]
            return written.append

        try:
            result = self.server.app(environ, start_response)
            try:
                written.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if not started:
                raise RuntimeError("the application returned without starting a response")
            return started[0], started[1], b"".join(written)
        except Exception as exc:  # answer 500, as werkzeug does, and keep serving
            _log.error("error on request %r", environ.get("PATH_INFO"), exc_info=exc)
            error = HTTPStatus.INTERNAL_SERVER_ERROR
            return (
                f"{error.value} {error.phrase}",
                [("Content-Type", "text/plain")],
                b"Internal Server Error",
            )
