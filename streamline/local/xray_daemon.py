"""A local X-Ray daemon: receives the X-Ray SDK's UDP segments into moto's X-Ray backend.

Functions (Powertools Tracer, aws_xray_sdk) send each finished segment or subsegment as one UDP
datagram: a JSON header line ``{"format": "json", "version": 1}``, a newline, then the segment
document. The daemon binds a free port on 127.0.0.1 (so clouds never clash on port 2000) and
stores every document with ``backends.xray().process_segment`` - where GetTraceSummaries and
BatchGetTraces find them. Malformed datagrams are counted and skipped.

Example::

    daemon = XRayDaemon(backends).start()
    env["AWS_XRAY_DAEMON_ADDRESS"] = daemon.address   # "127.0.0.1:PORT"
    daemon.stop()
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any

__all__ = ["XRayDaemon"]

_log = logging.getLogger(__name__)

#: The largest datagram the X-Ray SDK sends (it streams subsegments to stay below 64 KiB).
_MAX_DATAGRAM = 65535


class XRayDaemon:
    """A UDP listener on 127.0.0.1:<free port> that stores segments in moto's X-Ray backend."""

    def __init__(self, backends: Any) -> None:
        self._backends = backends
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        #: Documents stored, and datagrams skipped as malformed (or refused by the backend).
        self.received = 0
        self.malformed = 0

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the X-Ray daemon is not started")
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the value for ``AWS_XRAY_DAEMON_ADDRESS``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> XRayDaemon:
        """Bind the socket and start receiving (idempotent)."""
        if self._sock is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)  # how promptly stop() is noticed
        self._sock = sock
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="xray-daemon", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop receiving and close the socket (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def handle(self, datagram: bytes) -> bool:
        """Store one datagram's segment; False (and counted) when it is malformed."""
        try:
            header, sep, body = datagram.decode("utf-8").partition("\n")
            if not sep or json.loads(header).get("format") != "json":
                raise ValueError("no X-Ray daemon header line")
            document = body.strip()
            if not isinstance(json.loads(document), dict):
                raise ValueError("the segment is not a JSON object")
            with self._backends.lock:
                self._backends.xray().process_segment(document)
        except Exception as exc:  # malformed JSON, missing fields (moto's BadSegmentException)
            self.malformed += 1
            _log.debug("skipped a malformed X-Ray datagram: %s", exc)
            return False
        self.received += 1
        return True

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stopping.is_set():
            try:
                datagram = sock.recv(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:  # closed under us
                return
            self.handle(datagram)
