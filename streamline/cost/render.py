"""The cost report written out: the text table ``streamline cost`` prints, and its JSON.

:mod:`streamline.cost.model` computes a :class:`~streamline.cost.model.CostReport`; this module
only formats one, so the model stays numbers and the wording lives in one place.

Example::

    from streamline.cost.pricing import estimate
    from streamline.cost.render import render_text

    print(render_text(estimate(measurement, PRICES, memory_sizes=[128, 256, 512, 1024])))
"""

from __future__ import annotations

from collections.abc import Sequence

from streamline.cost.model import CostReport, LineItem
from streamline.cost.plan import Plan
from streamline.cost.pricing import HOURS_PER_MONTH

__all__ = ["render_json", "render_plan_json", "render_plan_text", "render_text"]


def render_text(report: CostReport) -> str:
    """A compact text table: line items per million events beside the baseline."""
    minutes = report.window_seconds / 60
    lines = [
        f"Estimated AWS cost per million events ({report.region} list prices of "
        f"{report.price_date}; {report.events:,} events in {minutes:.1f} min, "
        f"measured on {'the local cloud' if report.origin == 'local' else 'AWS'})",
        f"  {'line item':<40} {'ours':>10} {'1 call/record':>14}  basis",
    ]
    baseline = {item.name: item for item in report.baseline_items}
    names = [i.name for i in report.items] + [
        i.name for i in report.baseline_items if i.name not in {j.name for j in report.items}
    ]
    ours = {item.name: item for item in report.items}
    for name in names:
        mine, theirs = ours.get(name), baseline.get(name)
        either = mine or theirs
        basis = either.basis if either is not None else ""
        lines.append(
            f"  {name:<40} {_usd(mine.per_million if mine else 0.0):>10} "
            f"{_usd(theirs.per_million if theirs else 0.0):>14}  {basis}"
        )
    ratio = report.ratio
    lines.append(
        f"  {'total per million events':<40} {_usd(report.per_million_total):>10} "
        f"{_usd(report.baseline_per_million_total):>14}"
        + (f"  ({ratio:.1f}x)" if ratio is not None else "")
    )
    if report.fixed_monthly:
        fixed = ", ".join(f"{i.name} {_usd(i.cost)}" for i in report.fixed_monthly)
        lines.append(f"Fixed per month: {fixed}; total {_usd(report.fixed_monthly_total)}")
        rate = report.events_per_second
        if rate > 0:
            monthly_events = rate * HOURS_PER_MONTH * 3600
            lines.append(
                f"  at the measured {rate:,.1f} events/s that adds "
                f"{_usd(report.fixed_monthly_total / monthly_events * 1e6)} per million events"
            )
    lines.extend(_scenario_lines(report))
    if report.functions:
        lines.append("Functions (REPORT lines):")
        for fn in report.functions:
            cold = len(fn.init_ms)
            init = f", INIT mean {sum(fn.init_ms) / cold:.0f} ms" if cold else ""
            per_inv = fn.handled / fn.invocations if fn.invocations else 0.0
            lines.append(
                f"  {fn.stage:<10} {fn.memory_mb} MB {fn.architecture:<7} "
                f"{fn.invocations:,} invocations, {per_inv:.1f} records each, "
                f"{cold} cold start{'s' if cold != 1 else ''}{init}"
            )
    if report.memory_rows:
        lines.append(
            "Memory sizes (estimate; * cheapest, + fastest, ! below the peak memory used):"
        )
        for row in report.memory_rows:
            mark = ("*" if row.cheapest else "") + ("+" if row.fastest else "")
            mark += "" if row.fits else "!"
            unit = "ms/event" if row.function == "pipeline" else "ms"
            lines.append(
                f"  {row.function:<10} {row.memory_mb:>5} MB {row.duration_ms:>9.1f} "
                f"{unit:<8} {_usd(row.per_million):>10} {mark}".rstrip()
            )
    if report.unpriced:
        shown = ", ".join(f"{s} {o} {c:,}" for s, o, c in report.unpriced[:6])
        more = f" (+{len(report.unpriced) - 6} more)" if len(report.unpriced) > 6 else ""
        lines.append(f"Counted, not priced here: {shown}{more}")
    if report.assumptions:
        lines.append("Assumptions:")
        lines.extend(f"  - {a}" for a in report.assumptions)
    return "\n".join(lines)


def _scenario_lines(report: CostReport) -> list[str]:
    """Per million events by fault rate (rows) and traffic (columns), fixed charges included."""
    if not report.scenarios:
        return []
    traffic = sorted({s.events_per_second for s in report.scenarios})
    labels = list(dict.fromkeys(s.faults for s in report.scenarios))
    cell = {(s.faults, s.events_per_second): s.per_million for s in report.scenarios}
    lines = [
        "Per million events at a fault rate and traffic (fixed monthly charges spread over the "
        "traffic):",
        f"  {'faults':<34}" + "".join(f"{f'{t:g} events/s':>15}" for t in traffic),
    ]
    for label in labels:
        lines.append(f"  {label:<34}" + "".join(f"{_usd(cell[(label, t)]):>15}" for t in traffic))
    return lines


def render_json(report: CostReport) -> dict[str, object]:
    """The report as JSON-ready data (``streamline cost --json``)."""

    def items(rows: Sequence[LineItem]) -> list[dict[str, object]]:
        return [
            {
                "name": i.name,
                "quantity": i.quantity,
                "unit": i.unit,
                "cost": i.cost,
                "per_million": i.per_million,
                "basis": i.basis,
                "note": i.note,
            }
            for i in rows
        ]

    return {
        "events": report.events,
        "window_seconds": report.window_seconds,
        "origin": report.origin,
        "prices": {"region": report.region, "as_of": report.price_date},
        "per_million_total": report.per_million_total,
        "baseline_per_million_total": report.baseline_per_million_total,
        "ratio": report.ratio,
        "fixed_monthly_total": report.fixed_monthly_total,
        "items": items(report.items),
        "baseline_items": items(report.baseline_items),
        "fixed_monthly": items(report.fixed_monthly),
        "functions": [
            {
                "name": f.name,
                "stage": f.stage,
                "memory_mb": f.memory_mb,
                "architecture": f.architecture,
                "invocations": f.invocations,
                "records": f.handled,
                "cold_starts": len(f.init_ms),
                "init_ms": list(f.init_ms),
                "api_calls": f.calls,
            }
            for f in report.functions
        ],
        "memory": [
            {
                "function": r.function,
                "memory_mb": r.memory_mb,
                "duration_ms": r.duration_ms,
                "per_million": r.per_million,
                "fits": r.fits,
                "cheapest": r.cheapest,
                "fastest": r.fastest,
            }
            for r in report.memory_rows
        ],
        "unpriced_calls": [
            {"service": s, "operation": o, "calls": c} for s, o, c in report.unpriced
        ],
        "assumptions": list(report.assumptions),
        "scenarios": [
            {
                "faults": sc.faults,
                "failed_per_event": sc.failed_per_event,
                "events_per_second": sc.events_per_second,
                "per_million": sc.per_million,
            }
            for sc in report.scenarios
        ],
    }


def render_plan_text(p: Plan) -> str:
    """The capacity plan at ``p.rate`` as text (``streamline cost --rate N``)."""
    lines = [
        f"Plan for {p.rate:,.6g} events/s (from the measured per-event profile; estimate):",
        f"  Kinesis shards {p.shards}, ingest parallelization factor {p.parallelization_factor}",
        f"  {'function':<10} {'records/s':>10} {'ms/record':>10} {'concurrency':>12} {'memory':>8}",
    ]
    for s in p.stages:
        lines.append(
            f"  {s.stage:<10} {s.records_per_second:>10,.1f} {s.busy_ms_per_record:>10.2f} "
            f"{s.concurrency:>12} {s.memory_mb:>5} MB"
        )
    lines.append(
        f"  monthly: usage {_usd(p.monthly_usage)} + fixed {_usd(p.monthly_fixed)} = "
        f"{_usd(p.monthly_total)}"
    )
    lines.append("Limits on the deployed configuration (first to bind first):")
    for limit in p.limits:
        lines.append(
            f"  {limit.name:<48} {limit.share:>7.1%} used, binds at {limit.binds_at:,.0f} events/s"
        )
    if p.binding is not None:
        lines.append(f"Binds first: {p.binding.name} at {p.binding.binds_at:,.0f} events/s")
    lines.extend(f"  note: {note}" for note in p.notes)
    return "\n".join(lines)


def render_plan_json(p: Plan) -> dict[str, object]:
    """The capacity plan as JSON-ready data."""
    return {
        "rate": p.rate,
        "shards": p.shards,
        "parallelization_factor": p.parallelization_factor,
        "stages": [
            {
                "stage": s.stage,
                "records_per_second": s.records_per_second,
                "busy_ms_per_record": s.busy_ms_per_record,
                "concurrency": s.concurrency,
                "memory_mb": s.memory_mb,
            }
            for s in p.stages
        ],
        "monthly_usage": p.monthly_usage,
        "monthly_fixed": p.monthly_fixed,
        "monthly_total": p.monthly_total,
        "limits": [
            {
                "name": limit.name,
                "used": limit.used,
                "limit": limit.limit,
                "unit": limit.unit,
                "share": limit.share,
                "binds_at": limit.binds_at,
            }
            for limit in p.limits
        ],
        "binding": p.binding.name if p.binding is not None else None,
        "notes": list(p.notes),
    }


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"
