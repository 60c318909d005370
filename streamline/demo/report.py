"""The demo's summary: what was produced, what each stage did, and whether anything was lost.

Pure data and rendering; ``streamline.demo.run`` fills it from the local cloud.

Example::

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    >>> print(Summary(...).render())
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from streamline.demo.conservation import ConservationReport

__all__ = ["ColdStarts", "StageCounts", "Summary", "percentile"]


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile with linear interpolation between ranks (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class StageCounts:
    """One processor's work during the run, from its metrics and the counted API calls."""

    stage: str
    invocations: int = 0
    records_processed: int = 0
    records_failed: int = 0
    records_poisoned: int = 0
    api_calls: int = 0

    def calls_per_event(self, events: int) -> float:
        return self.api_calls / events if events else 0.0


@dataclass
class ColdStarts:
    """Cold starts of one function: how many, and their Init Duration."""

    function: str
    count: int
    init_ms: list[float] = field(default_factory=list)


@dataclass
class Summary:
    """Everything `make demo` prints, also written as JSON with ``--json``."""

    produced: dict[str, int]
    faults: dict[str, int]
    stages: list[StageCounts]
    replayed: int
    quarantined: int
    left_in_queues: dict[str, int]
    latency_ms: dict[str, float | None]
    cold_starts: list[ColdStarts]
    cost_per_million: float | None
    baseline_cost_per_million: float | None
    cost_table: str
    conservation: ConservationReport
    seconds: dict[str, float]
    client_calls_per_event: float = 0.0
    #: Recovery executions that ended FAILED (work left behind; a later run settled it).
    recovery_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.conservation.ok

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["conservation"]["ok"] = self.conservation.ok
        return data

    def render(self) -> str:
        total = sum(self.produced.values())
        lines = [
            "",
            "== Streamline demo: summary ==",
            f"produced      {total} events: "
            + ", ".join(f"{path} {n}" for path, n in self.produced.items())
            + "  (faults injected: "
            + ", ".join(f"{kind} {n}" for kind, n in self.faults.items())
            + ")",
            "",
            f"{'stage':<10}{'invocations':>12}{'processed':>11}{'failed':>8}{'poison':>8}"
            f"{'API calls/event':>17}",
        ]
        for stage in self.stages:
            lines.append(
                f"{stage.stage:<10}{stage.invocations:>12}{stage.records_processed:>11}"
                f"{stage.records_failed:>8}{stage.records_poisoned:>8}"
                f"{stage.calls_per_event(total):>17.3f}"
            )
        lines.append(
            f"{'producers':<10}{'':>12}{'':>11}{'':>8}{'':>8}{self.client_calls_per_event:>17.3f}"
        )
        lines += [
            "",
            f"recovery      replayed {self.replayed}, quarantined {self.quarantined}",
        ]
        for reason, count in self.conservation.quarantined_reasons.items():
            lines.append(f"  quarantined {count:>4} x {reason}")
        if self.recovery_failures:
            lines.append(
                f"  {len(self.recovery_failures)} recovery executions failed and were rerun: "
                + ", ".join(self.recovery_failures[:3])
            )
        left = {name: n for name, n in self.left_in_queues.items() if n}
        lines.append(
            "left in DLQs  "
            + (", ".join(f"{name} {n}" for name, n in left.items()) if left else "none")
        )
        lines.append(
            "latency       end to end (produce -> effect): "
            + ", ".join(f"{k} {_ms(v)}" for k, v in self.latency_ms.items())
        )
        if self.cold_starts:
            starts = ", ".join(
                f"{c.function} {c.count} (Init {_ms(percentile(c.init_ms, 50))} p50)"
                for c in self.cold_starts
            )
            lines.append(f"cold starts   {starts}")
        if self.cost_per_million is not None:
            baseline = (
                f"; one call per record: ${self.baseline_cost_per_million:,.2f}"
                if self.baseline_cost_per_million is not None
                else ""
            )
            lines.append(
                f"cost          ${self.cost_per_million:,.2f} per million events{baseline}"
            )
        if self.cost_table:
            lines += ["", self.cost_table.rstrip()]
        lines.append(
            "time          "
            + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in self.seconds.items())
        )
        c = self.conservation
        verdict = "OK" if c.ok else "FAILED"
        lines += [
            "",
            f"conservation  {verdict}: {c.produced} produced = {c.delivered} in the sink exactly "
            f"once + {c.quarantined} quarantined with a reason"
            + ("" if c.ok else f"; {len(c.missing)} missing, {len(c.unexpected)} unexpected"),
        ]
        lines += [f"  - {problem}" for problem in c.problems()]
        return "\n".join(lines)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def merge_counts(into: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value
    return into
