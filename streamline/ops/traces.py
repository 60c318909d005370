"""`streamline traces`: recent X-Ray traces, or one trace as a tree, on the local cloud or in AWS.

Without an id, lists the traces of the last ``--since`` (GetTraceSummaries): id, duration,
error/fault flags and entry point. With an id, prints the trace (BatchGetTraces) as one tree:
every segment and subsegment nested under its parent, children in start order, each line
``name  duration ms  [error|fault]``. Segments of different functions (an SQS hop, the
workflow) hang under the trace's root line.

Example::

    streamline traces --since 30m --limit 5
    streamline traces 1-65f0c1a2-0123456789abcdef01234567
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from streamline.ops.logs import LogsError, parse_since
from streamline.ops.target import Target, add_target_arguments, command_error

__all__ = ["TracesError", "build_tree", "format_tree", "register", "run"]

#: BatchGetTraces takes at most five ids per call.
_BATCH = 5


class TracesError(Exception):
    """A one-line error (unknown trace id, bad flag)."""


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``traces`` subcommand to the top-level subparsers."""
    parser = commands.add_parser("traces", help="recent X-Ray traces, or one trace as a tree")
    parser.add_argument("trace_id", nargs="?", metavar="TRACE_ID", help="show this trace")
    parser.add_argument(
        "--since", default="10m", help="list traces of this last period (30s, 10m, 2h, 1d)"
    )
    parser.add_argument(
        "--limit", type=int, default=20, metavar="N", help="list at most N traces (default 20)"
    )
    add_target_arguments(parser)
    parser.set_defaults(func=run)


@dataclass
class Node:
    """One segment or subsegment of a trace."""

    id: str
    name: str
    start: float
    end: float | None
    error: bool = False
    fault: bool = False
    throttle: bool = False
    parent_id: str | None = None
    children: list[Node] = field(default_factory=list)

    @classmethod
    def from_document(cls, doc: dict[str, Any], parent_id: str | None = None) -> Node:
        end = doc.get("end_time")
        return cls(
            id=str(doc.get("id", "")),
            name=str(doc.get("name", "?")),
            start=float(doc.get("start_time", 0.0)),
            end=None if end is None or doc.get("in_progress") else float(end),
            error=bool(doc.get("error")),
            fault=bool(doc.get("fault")),
            throttle=bool(doc.get("throttle")),
            parent_id=parent_id or doc.get("parent_id"),
        )

    def line(self) -> str:
        duration = "in progress" if self.end is None else f"{(self.end - self.start) * 1000:.1f} ms"
        flags = [f for f in ("error", "fault", "throttle") if getattr(self, f)]
        return f"{self.name}  {duration}" + (f"  [{'|'.join(flags)}]" if flags else "")


def build_tree(documents: list[dict[str, Any]]) -> list[Node]:
    """The trace's top-level nodes (parent not in the trace), each with its children nested.

    Embedded ``subsegments`` are children of their document; separately sent subsegments hang
    under their ``parent_id``. A node sent twice (in progress, then finished) is kept once,
    preferring the finished one.
    """
    nodes: dict[str, Node] = {}

    def add(doc: dict[str, Any], parent_id: str | None) -> None:
        node = Node.from_document(doc, parent_id)
        known = nodes.get(node.id)
        if known is None or (known.end is None and node.end is not None):
            nodes[node.id] = node
        for child in doc.get("subsegments") or []:
            if isinstance(child, dict):
                add(child, node.id)

    for doc in documents:
        add(doc, None)
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.parent_id) if node.parent_id else None
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: n.start)
    roots.sort(key=lambda n: n.start)
    return roots


def format_tree(trace_id: str, documents: list[dict[str, Any]], indent: str = "  ") -> list[str]:
    """The trace as printed lines: a root line for the trace, then its segments, indented."""
    roots = build_tree(documents)
    lines: list[str] = []

    def walk(node: Node, depth: int) -> None:
        lines.append(indent * depth + node.line())
        for child in node.children:
            walk(child, depth + 1)

    ends = [n.end for n in roots if n.end is not None]
    total = f"{(max(ends) - min(n.start for n in roots)) * 1000:.1f} ms" if ends else "in progress"
    lines.append(f"trace {trace_id}  {total}")
    for root in roots:
        walk(root, 1)
    return lines


def show(target: Target, trace_id: str) -> list[str]:
    """The tree lines of one trace; TracesError when the target does not know it."""
    result = target.client("xray").batch_get_traces(TraceIds=[trace_id])
    traces = [t for t in result.get("Traces", []) if t.get("Id") == trace_id]
    if not traces or not traces[0].get("Segments"):
        raise TracesError(f"no trace {trace_id} here")
    documents = [json.loads(s["Document"]) for s in traces[0]["Segments"]]
    return format_tree(trace_id, documents)


def recent(target: Target, since_s: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` traces of the last ``since_s`` seconds, newest first."""
    xray = target.client("xray")
    now = int(time.time())
    query: dict[str, Any] = {"StartTime": now - since_s, "EndTime": now + 1}
    summaries: list[dict[str, Any]] = []
    while True:
        page = xray.get_trace_summaries(**query)
        summaries.extend(page.get("TraceSummaries", []))
        token = page.get("NextToken")
        if not token or len(summaries) >= 10 * limit:
            break
        query["NextToken"] = token
    # A trace id carries its start (1-<epoch hex>-...); moto's summaries have no start time.
    summaries.sort(key=lambda s: (_epoch(s["Id"]), s["Id"]), reverse=True)
    summaries = summaries[:limit]
    entry = {s["Id"]: s["EntryPoint"]["Name"] for s in summaries if s.get("EntryPoint")}
    missing = [s["Id"] for s in summaries if s["Id"] not in entry]
    for i in range(0, len(missing), _BATCH):
        result = xray.batch_get_traces(TraceIds=missing[i : i + _BATCH])
        for trace in result.get("Traces", []):
            documents = [json.loads(s["Document"]) for s in trace.get("Segments", [])]
            roots = build_tree(documents)
            if roots:
                entry[trace["Id"]] = roots[0].name
    return [
        {
            "id": s["Id"],
            "duration": s.get("Duration"),
            "error": bool(s.get("HasError")),
            "fault": bool(s.get("HasFault")),
            "throttle": bool(s.get("HasThrottle")),
            "entry": entry.get(s["Id"], "?"),
        }
        for s in summaries
    ]


_TRACE_ID = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Print recent traces or one trace's tree; one-line errors, exit 2."""
    try:
        limit = getattr(args, "limit", 20)
        if limit is None or limit < 1:
            raise TracesError(f"--limit must be a positive number, got {limit}")
        since_s = parse_since(getattr(args, "since", "10m"))
        if args.trace_id is not None and not _TRACE_ID.fullmatch(args.trace_id):
            raise TracesError(
                f"{args.trace_id[:80]!r} is not an X-Ray trace id (1-<8 hex>-<24 hex>)"
            )
        target = target or Target.from_args(args)
        if args.trace_id:
            for line in show(target, args.trace_id):
                print(line)
            return 0
        traces = recent(target, since_s, limit)
    except Exception as exc:
        return command_error(exc, "cannot read traces", TracesError, LogsError)
    if not traces:
        print(f"no traces in the last {args.since}")
    for trace in traces:
        flags = [f for f in ("error", "fault", "throttle") if trace[f]]
        duration = "?" if trace["duration"] is None else f"{trace['duration']:g} s"
        marks = f"  [{'|'.join(flags)}]" if flags else ""
        print(f"{trace['id']}  {duration:>8}  {trace['entry']}{marks}")
    return 0


def _epoch(trace_id: str) -> int:
    try:
        return int(trace_id.split("-")[1], 16)
    except (IndexError, ValueError):
        return 0
