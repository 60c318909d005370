"""`streamline alarms`: alarm states and recent transitions, on the local cloud or in AWS.

Example::

    streamline alarms                      # every alarm of the account/cloud, ALARM first
    streamline alarms --state ALARM --history 20
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from streamline.ops.target import Target, add_target_arguments, command_error

__all__ = ["register", "run"]

STATES = ("ALARM", "INSUFFICIENT_DATA", "OK")


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``alarms`` subcommand to the top-level subparsers."""
    parser = commands.add_parser("alarms", help="alarm states and recent transitions")
    parser.add_argument("--state", choices=STATES, help="only alarms in this state")
    parser.add_argument("--prefix", default="", help="only alarms whose name starts with this")
    parser.add_argument(
        "--history", type=int, default=10, metavar="N", help="recent transitions to show (0: none)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def collect(target: Target, *, state: str | None, prefix: str, history: int) -> dict[str, Any]:
    """Alarms (worst state first) and up to ``history`` transitions, newest first."""
    cloudwatch = target.client("cloudwatch")
    query: dict[str, Any] = {"AlarmNamePrefix": prefix} if prefix else {}
    if state:
        query["StateValue"] = state
    alarms: list[dict[str, Any]] = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(**query):
        alarms.extend(page.get("MetricAlarms", []))
    if state:  # also client-side: moto applies only one of prefix / state
        alarms = [a for a in alarms if a["StateValue"] == state]
    alarms.sort(key=lambda a: (STATES.index(a["StateValue"]), a["AlarmName"]))
    transitions: list[dict[str, Any]] = []
    if history > 0:
        items = cloudwatch.describe_alarm_history(
            HistoryItemType="StateUpdate", MaxRecords=min(history, 100)
        ).get("AlarmHistoryItems", [])
        names = {a["AlarmName"] for a in alarms}
        transitions = [i for i in items if i["AlarmName"] in names][:history]
    return {
        "alarms": [
            {
                "name": a["AlarmName"],
                "state": a["StateValue"],
                "reason": a.get("StateReason", ""),
                "updated": str(a.get("StateUpdatedTimestamp", "")),
            }
            for a in alarms
        ],
        "transitions": [
            {"name": t["AlarmName"], "at": str(t["Timestamp"]), "summary": t["HistorySummary"]}
            for t in transitions
        ],
    }


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Print alarm states and transitions; one-line errors, exit 2."""
    if args.history < 0:
        print("streamline: --history must be 0 or more", file=sys.stderr)
        return 2
    try:
        report = collect(
            target or Target.from_args(args),
            state=args.state,
            prefix=args.prefix,
            history=args.history,
        )
    except Exception as exc:
        return command_error(exc, "cannot read alarms")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    if not report["alarms"]:
        print("no alarms")
    for alarm in report["alarms"]:
        print(f"{alarm['state']:<17} {alarm['name']}  {alarm['reason']}")
    if report["transitions"]:
        print("\nrecent transitions")
        for item in report["transitions"]:
            print(f"  {item['at']}  {item['name']}: {item['summary']}")
    return 0
