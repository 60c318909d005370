"""`streamline demo`: argument parsing for the main job (the work is in ``streamline.demo.run``).

Example::

    streamline demo --events 500 --seed 7 --json demo.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from streamline.arguments import number, port
from streamline.local.state import DEFAULT_STATE_DIR, StateDirError

__all__ = ["register"]


#: Events a demo generates at most (the producers CLI's bound: about 2 KB of memory each).
MAX_EVENTS = 1_000_000
_rate = number(float, lambda v: 0.0 <= v <= 0.5, "a fraction between 0 and 0.5")
_events = number(int, lambda v: 1 <= v <= MAX_EVENTS, f"a whole number from 1 to {MAX_EVENTS:,}")
# also refuses nan and inf
_seconds = number(float, lambda v: 0 < v <= 86400, "more than 0 seconds and at most a day")


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` subcommand to the top-level subparsers."""
    parser = commands.add_parser(
        "demo", help="deploy to the local cloud, produce with faults, recover, check conservation"
    )
    parser.add_argument("--events", type=_events, default=5000, help="events (default 5000)")
    parser.add_argument("--poison-rate", type=_rate, default=0.01, help="default 0.01")
    parser.add_argument("--transient-rate", type=_rate, default=0.05, help="default 0.05")
    parser.add_argument("--seed", type=int, help="make the generated events repeatable")
    parser.add_argument(
        "--port", type=port, default=None, help="local cloud port (default: a free one)"
    )
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=300.0,
        help="seconds the pipeline may go without progress before the demo gives up",
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the summary here")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="keep the cloud up after the summary (for `streamline dashboard`) until Ctrl-C",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamline.demo.run import DemoError, DemoOptions, main_demo
    from streamline.local.deploy import DeployError

    options = DemoOptions(
        events=args.events,
        poison_rate=args.poison_rate,
        transient_rate=args.transient_rate,
        seed=args.seed,
        state_dir=args.state_dir,
        port=args.port,
        timeout=args.timeout,
        keep_running=args.keep_running,
        json_path=args.json_path,
    )
    try:
        return main_demo(options)
    except (DemoError, DeployError, TimeoutError, StateDirError) as exc:
        print(f"streamline demo: {exc}", file=sys.stderr)
        return 2
