"""The pipeline bench's own arithmetic (its run needs the local cloud and minutes; these parts
must not rot between runs): thread grouping, backlog peaks and the report."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "bench" / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_pipeline"] = module
    spec.loader.exec_module(module)
    return module


def test_threads_are_grouped_by_what_they_are() -> None:
    bench = _bench()
    assert bench.component_of("Thread-12 (process_request_thread)") == "server: HTTP requests"
    assert bench.component_of("esm-lane-shardId-000_0") == "ESM engine (pollers, invokes)"
    assert bench.component_of("async-worker-3") == "async engine"
    assert bench.component_of("MainThread") == "producers and observation"
    assert bench.component_of("something new") == "other threads"


def test_backlog_peaks_name_the_second_each_stage_was_deepest() -> None:
    bench = _bench()
    sampler = bench.BacklogSampler(cloud=None)
    sampler.samples = [{"a": 1, "b": 0}, {"a": 5, "b": 2}, {"a": 3, "b": 7}]
    assert sampler.peaks() == {"a": (5, 2), "b": (7, 3)}


def test_the_report_shows_rate_cpu_and_the_floor_per_event() -> None:
    bench = _bench()
    result: dict[str, Any] = {
        "warmup": 10,
        "run": {
            "ok": True,
            "events": 100,
            "seconds": 4.0,
            "latency_ms": {"p50": 1500.0, "p99": None},
            "cpu": {"server: HTTP requests": 0.5, "function processes": 0.3},
            "cold_starts": 2,
            "connections_opened": 3,
            "backlog_peaks": {"kinesis -> ingest": (40, 1)},
        },
        "floor": {
            "ms_per_event": 4.0,
            "rows": [
                {
                    "operation": "dynamodb/PutItem",
                    "per_event": 1.0,
                    "cpu_ms": 2.5,
                    "client_ms": 1.0,
                },
                {"operation": "logs/FilterLogEvents", "per_event": 0.01, "cpu_ms": None},
            ],
            "calls_not_replayed": 1,
        },
    }
    text = bench.render(result)
    assert "| end to end events/s (first send to last effect) | 25.0 |" in text
    assert "| latency p50 ms | 1500 |" in text and "| latency p99 ms | - |" in text
    assert "| CPU ms per event, all | 8.00 |" in text  # 0.8 s over 100 events
    assert "| pipeline CPU over floor | 2.00x |" in text
    assert "| HTTP connections opened per event | 0.030 |" in text
    assert "| dynamodb/PutItem | 1.000 | 2.50 | 1.00 | 1.50 |" in text
    assert "| logs/FilterLogEvents | 0.010 | not replayed |" in text
    assert "| kinesis -> ingest | 40 | 1 |" in text
