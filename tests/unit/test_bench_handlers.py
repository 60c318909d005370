"""The handler bench runs end to end at a small size (its figures are for bench/README.md; this
checks that it still measures every handler: its fakes must keep up with the handlers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_handler_bench_measures_every_handler_and_its_floors() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "handlers.py"), "--records", "30", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows]
    for handler in ("ingest", "changes", "fulfil", "notify"):
        assert handler in names  # a CPU row
        assert f"{handler}.handler" in names  # a cold-import row
    cpu = [row for row in rows if row.split("|")[1].strip() == "notify"]
    assert cpu[0].count("x |") == 2  # beside the bare loop and the Powertools floor


def test_a_bad_argument_is_one_line() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "handlers.py"), "--records", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "must be positive" in result.stderr and "Traceback" not in result.stderr
