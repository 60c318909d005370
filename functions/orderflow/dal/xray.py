"""The X-Ray daemon over UDP: where :class:`orderflow.tracing.LinkedTraces` sends segments.

Lambda runs a daemon beside every function with active tracing and names it in
``AWS_XRAY_DAEMON_ADDRESS``; the daemon batches documents into PutTraceSegments calls with the
function's role. A datagram costs a few microseconds and no API call, and UDP never blocks or
fails the sender on a slow daemon. The local cloud runs the same kind of daemon.

Example::

    >>> emitter = DaemonEmitter.from_environment()      # None without a daemon address
    >>> emitter.send({"name": "changes", "id": "...", "trace_id": "1-...", ...})  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from orderflow.tracing import daemon_datagram, parse_daemon_address

__all__ = ["DaemonEmitter"]


class DaemonEmitter:
    """Sends segment documents to one X-Ray daemon address, one datagram each."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self._sock: socket.socket | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DaemonEmitter | None:
        """The emitter for ``AWS_XRAY_DAEMON_ADDRESS``; None when it is unset or malformed."""
        env = os.environ if environ is None else environ
        address = parse_daemon_address(env.get("AWS_XRAY_DAEMON_ADDRESS"))
        return cls(address) if address else None

    def send(self, document: Mapping[str, Any]) -> None:
        if self._sock is None:
            # Opened on first use: a function that never hops pays nothing at cold start.
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.setblocking(False)
            if self.address[0] in ("127.0.0.1", "localhost"):
                # A loopback daemon needs no socket open to the network (an unbound UDP socket
                # takes 0.0.0.0 on its first send).
                self._sock.bind(("127.0.0.1", 0))
        self._sock.sendto(daemon_datagram(document), self.address)
