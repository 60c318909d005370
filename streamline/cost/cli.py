"""``streamline cost``: what the measured work would cost on AWS, per million events.

Measures a window (``--since``) of the deployed pipeline from its REPORT lines and, on the local
cloud, the API calls it counted; prices it with the reviewed table in
:mod:`streamline.cost.prices`; prints line items per million events beside the same pipeline
written one call per record, fixed monthly charges, and with ``--memory`` a Power-Tuning-style
table of duration and cost per memory size.

With ``--rate N`` it also plans the pipeline for N events per second from the measured
per-event profile (:mod:`streamline.cost.plan`): shards, parallelization factor, concurrency and
memory per function, the monthly bill, and the AWS limit that binds first.

Example::

    streamline cost --since 30m --events 10000
    streamline cost --rate 500                     # size it for 500 events/s
    streamline cost --memory 128,256,512,1024 --json
    streamline cost --function ingest=my-ingest-fn --events 500    # any functions
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from streamline.cost.measure import CostError, measure
from streamline.cost.plan import plan
from streamline.cost.prices import PRICES
from streamline.cost.pricing import estimate
from streamline.cost.render import render_json, render_plan_json, render_plan_text, render_text
from streamline.ops.logs import LogsError, parse_since
from streamline.ops.target import (
    Target,
    add_command,
    add_target_arguments,
    command_error,
)

__all__ = ["parse_memory", "parse_rate", "register", "run"]

DEFAULT_SINCE = "1h"
#: Lambda's memory range (MB).
MIN_MEMORY_MB, MAX_MEMORY_MB = 128, 10240


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``cost`` subcommand to the top-level subparsers."""
    parser = add_command(
        commands,
        parser_class,
        "cost",
        help="estimated AWS cost per million events, beside one call per record",
        doc=__doc__,
    )
    parser.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help=f"the measured window: 30s, 10m, 2h or 1d back (default {DEFAULT_SINCE})",
    )
    parser.add_argument(
        "--events",
        metavar="N",
        help="events the window carried (default: the stream's IncomingRecords)",
    )
    parser.add_argument(
        "--memory",
        metavar="MB,MB,...",
        help="also estimate each function at these memory sizes, e.g. 128,256,512,1024",
    )
    parser.add_argument(
        "--function",
        action="append",
        metavar="[STAGE=]NAME",
        help="measure this function instead of the pipeline's (repeatable)",
    )
    parser.add_argument(
        "--rate",
        metavar="N",
        help="also plan capacity and the monthly bill for N events per second",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def parse_memory(value: str) -> list[int]:
    """``"128,256"`` -> ``[128, 256]``; each a whole number of MB in Lambda's range.

    Example::

        >>> parse_memory("128, 1024")
        [128, 1024]
    """
    sizes: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit() or not MIN_MEMORY_MB <= int(part) <= MAX_MEMORY_MB:
            raise CostError(
                f"--memory takes sizes in MB from {MIN_MEMORY_MB} to {MAX_MEMORY_MB} separated "
                f"by commas (e.g. 128,256,512,1024), got {value!r}"
            )
        sizes.append(int(part))
    return sorted(set(sizes))


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Print the estimate; one-line errors with exit status 2."""
    try:
        seconds = parse_since(args.since)
        events = _events(args.events)
        sizes = parse_memory(args.memory) if args.memory else None
        rate = parse_rate(args.rate) if args.rate is not None else None
        functions = _functions(args.function)
        target = target or Target.from_args(args)
        measurement = measure(
            target,
            since=datetime.now(UTC) - timedelta(seconds=seconds),
            events=events,
            functions=functions,
        )
        report = estimate(measurement, PRICES, memory_sizes=sizes)
        capacity = None
        if rate is not None:
            deployed_pf = _ingest_parallelization(target, measurement)
            capacity = plan(measurement, PRICES, rate, deployed_pf=deployed_pf)
    except Exception as exc:
        return command_error(exc, "cannot measure", CostError, LogsError)
    if args.json:
        data = render_json(report)
        if capacity is not None:
            data["plan"] = render_plan_json(capacity)
        print(json.dumps(data, indent=2))
    else:
        print(render_text(report))
        if capacity is not None:
            print(render_plan_text(capacity))
    return 0


def parse_rate(value: str) -> float:
    """``--rate``: events per second, more than 0 (``"500"``, ``"2.5"``, ``"500/s"``).

    Example::

        >>> parse_rate("500/s")
        500.0
    """
    text = value.strip().removesuffix("/s")
    try:
        rate = float(text)
    except ValueError:
        rate = float("nan")
    if not (rate > 0 and rate < 1e9):
        raise CostError(f"--rate takes events per second above 0, e.g. 500, got {value!r}")
    return rate


def _ingest_parallelization(target: Target, measurement: Any) -> int:
    """The deployed ingest mapping's ParallelizationFactor (1 when not found)."""
    name = next((f.name for f in measurement.functions if f.stage == "ingest"), None)
    if name is None:
        return 1
    mappings = target.client("lambda").list_event_source_mappings(FunctionName=name)
    factors = [int(m.get("ParallelizationFactor") or 1) for m in mappings["EventSourceMappings"]]
    return max(factors, default=1)


def _events(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) < 1:
        raise CostError(f"--events must be a positive whole number, got {value!r}")
    return int(value)


def _functions(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    named: dict[str, str] = {}
    for value in values:
        stage, _, name = value.rpartition("=")
        if not name:
            raise CostError(f"--function takes [STAGE=]NAME, got {value!r}")
        named[stage or name] = name
    return named
