"""The ``streamline dashboard`` command: its flags, its one-line errors, and serving until Ctrl-C.

It finds the stage's dashboard (the DashboardName stack output, or ``--dashboard``), checks it
can be read, and serves it with ``server`` until Ctrl-C. Errors are one line, exit status 2.

Example::

    streamline dashboard                          # the stage's dashboard on http://127.0.0.1:8501/
    streamline dashboard --since 1h --port 0 --open
    streamline dashboard --dashboard my-app --profile prod --region eu-west-1
"""

from __future__ import annotations

import argparse
import sys
import webbrowser
from typing import Any

from streamline.ops.dashboard.body import DashboardError
from streamline.ops.dashboard.server import DEFAULT_PORT, find_chart_js, make_server
from streamline.ops.dashboard.source import DEFAULT_REFRESH_SECONDS, DashboardSource
from streamline.ops.logs import LogsError, parse_since
from streamline.ops.target import (
    Target,
    add_target_arguments,
    command_error,
    is_aws_error,
)

__all__ = ["register", "run"]


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``dashboard`` subcommand to the top-level subparsers."""
    parser = commands.add_parser(
        "dashboard", help="serve the deployed CloudWatch dashboard as a local web page"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 = any free port)",
    )
    parser.add_argument(
        "--since",
        help="time range, e.g. 30m, 3h, 1d (default: the dashboard's own, else 3h)",
    )
    parser.add_argument(
        "--refresh",
        type=int,
        default=DEFAULT_REFRESH_SECONDS,
        metavar="SECONDS",
        help=f"seconds between the page's refreshes (default {DEFAULT_REFRESH_SECONDS})",
    )
    parser.add_argument(
        "--dashboard",
        metavar="NAME",
        help="dashboard name (default: the stage's, from its DashboardName stack output)",
    )
    browser = parser.add_mutually_exclusive_group()
    browser.add_argument(
        "--open", dest="open", action="store_true", help="open the page in a web browser"
    )
    browser.add_argument(
        "--no-browser", dest="open", action="store_false", help="only print the URL (default)"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    add_target_arguments(parser)
    parser.set_defaults(func=run, open=False)


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Serve the dashboard until Ctrl-C; one-line errors, exit 2."""
    try:
        since = _since(args.since)
        if not 0 <= args.port <= 65535:
            raise DashboardError("--port must be 0-65535")
        if args.refresh < 1:
            raise DashboardError(f"--refresh must be 1 or more seconds, got {args.refresh}")
        chart_js = find_chart_js()
        target = target or Target.from_args(args)
        if args.dashboard is not None and not args.dashboard.strip():
            raise DashboardError("--dashboard must name a dashboard")
        name = args.dashboard or _stage_dashboard(target)
        source = DashboardSource(target, name, since_seconds=since, refresh_seconds=args.refresh)
        source.body()  # fail now, in one line, if the dashboard cannot be read
        server = make_server(source, port=args.port, chart_js=chart_js, quiet=not args.verbose)
    except OSError as exc:  # the port is taken, or not ours to bind
        if is_aws_error(exc):  # (none is an OSError today; stay right if one becomes one)
            return command_error(exc, "cannot read the dashboard")
        print(
            f"streamline: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr
        )
        return 2
    except Exception as exc:
        return command_error(exc, "cannot read the dashboard", DashboardError)
    print(f"dashboard {name} at {server.url} (Ctrl-C to stop)", flush=True)
    if args.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a server is stopped: not an error
    finally:
        server.server_close()
    return 0


def _since(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        seconds = parse_since(value)
    except LogsError as exc:
        raise DashboardError(str(exc)) from None
    if seconds < 60:
        raise DashboardError(f"--since must be at least 1m (one period), got {value!r}")
    return seconds


def _stage_dashboard(target: Target) -> str:
    name = target.stack_outputs().get("DashboardName")
    if not name:
        raise DashboardError(
            f"the {target.stage} stage has no DashboardName output; pass --dashboard NAME"
        )
    return name
