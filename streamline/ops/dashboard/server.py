"""`streamline dashboard`'s web server: the page, Chart.js and the page's data on one port.

The page (``page/``: index.html, dashboard.js, dashboard.css) and Chart.js (from
``node_modules``, installed by ``make setup``) are served by this process, and ``/api/dashboard``
answers with a :class:`DashboardSource` snapshot: nothing is fetched from the internet, and a
Content-Security-Policy keeps even a dashboard's markdown from reaching another origin.

Example::

    server = make_server(source, port=0)   # 0: any free port on 127.0.0.1
    print(server.url)
    server.serve_forever()
"""

from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streamline.ops.dashboard.body import DashboardError
from streamline.ops.dashboard.source import DashboardSource
from streamline.ops.target import one_line

__all__ = [
    "CHART_JS",
    "DEFAULT_PORT",
    "PAGE_DIR",
    "DashboardServer",
    "find_chart_js",
    "make_server",
]

DEFAULT_PORT = 8501
PAGE_DIR = Path(__file__).resolve().parent / "page"
CHART_JS = Path("node_modules") / "chart.js" / "dist" / "chart.umd.min.js"


def find_chart_js(start: Path | None = None) -> Path:
    """Chart.js's browser bundle from the project's ``node_modules`` (as ``make setup`` installs).

    Looked up above this package (a source checkout) and above ``start`` (default: the current
    directory), like the CDK CLI.
    """
    roots = [Path(__file__).resolve(), (start or Path.cwd()).resolve()]
    for root in roots:
        for parent in [root, *root.parents]:
            candidate = parent / CHART_JS
            if candidate.is_file():
                return candidate
    raise DashboardError(f"Chart.js was not found ({CHART_JS}): run `make setup` (npm ci)")


# The page's sources; nothing else is served. The policy keeps the page on this server: no
# script, style or request can reach another origin, even from a dashboard's markdown.
_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
}


class DashboardServer(ThreadingHTTPServer):
    """The page, its assets and ``/api/dashboard`` on one loopback port."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], source: DashboardSource, chart_js: Path, *, quiet: bool
    ) -> None:
        self.source = source
        self.quiet = quiet
        self.files = {
            "/": PAGE_DIR / "index.html",
            "/index.html": PAGE_DIR / "index.html",
            "/dashboard.js": PAGE_DIR / "dashboard.js",
            "/dashboard.css": PAGE_DIR / "dashboard.css",
            "/vendor/chart.umd.min.js": chart_js,
            "/vendor/chart.umd.min.js.map": chart_js.with_name(chart_js.name + ".map"),
        }
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer

    def do_GET(self) -> None:
        # The page is same-origin only: a foreign Host (DNS rebinding) or another page's
        # request (an Origin other than this page's) is refused.
        from streamline.local.server import AccessPolicy

        port = int(self.server.server_address[1])
        policy = AccessPolicy(
            port, frozenset({f"http://127.0.0.1:{port}", f"http://localhost:{port}"})
        )
        environ = {
            "HTTP_HOST": self.headers.get("Host") or "",
            "HTTP_ORIGIN": self.headers.get("Origin"),
        }
        if environ["HTTP_ORIGIN"] is None:
            del environ["HTTP_ORIGIN"]
        reason = policy.refusal(environ)
        if reason is not None:
            self._send(HTTPStatus.FORBIDDEN, (reason + "\n").encode(), "text/plain")
            return
        path = urlsplit(self.path).path
        if path == "/api/dashboard":
            self._api()
            return
        file = self.server.files.get(path)
        if file is None or not file.is_file():
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        self._send(HTTPStatus.OK, file.read_bytes(), _TYPES.get(file.suffix, "text/plain"))

    def _api(self) -> None:
        try:
            payload = self.server.source.snapshot()
            status = HTTPStatus.OK
        except Exception as exc:  # the target is down or the dashboard gone: the page says so
            payload = {"error": one_line(str(exc))}
            status = HTTPStatus.BAD_GATEWAY
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


def make_server(
    source: DashboardSource,
    *,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    chart_js: Path | None = None,
    quiet: bool = True,
) -> DashboardServer:
    """A server for ``source`` on ``host:port`` (0: a free port); call ``serve_forever``."""
    return DashboardServer((host, port), source, chart_js or find_chart_js(), quiet=quiet)
