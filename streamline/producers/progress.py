"""A small progress display for long CLI work: a redrawn bar on a terminal, plain lines elsewhere.

On a TTY: one line redrawn in place at most ``1 / min_interval`` times a second (10 by default),
``label [####------] 120/400  30%  245/s  ETA 0:01``. Elsewhere (a pipe, a CI log) a bar would
be a stream of carriage returns, so it writes a plain line every ``plain_interval`` seconds.

Example::

    with Progress(total=len(events), label="kinesis") as progress:
        KinesisProducer(client, stream, on_progress=progress.update).send(events)
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for an ETA."""
    whole = max(0, int(seconds + 0.5))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts work done towards ``total`` and shows it on ``stream`` (stderr by default)."""

    def __init__(
        self,
        total: int,
        *,
        label: str = "",
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.1,
        plain_interval: float = 5.0,
    ) -> None:
        self.total = max(0, total)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.min_interval = min_interval
        self.plain_interval = plain_interval
        self.done = 0
        self.started = clock()
        self._last_draw: float | None = None

    def update(self, n: int = 1) -> None:
        """Add ``n`` finished items; redraws only when the interval has passed."""
        self.done = min(self.total, self.done + n) if self.total else self.done + n
        now = self.clock()
        interval = self.min_interval if self.tty else self.plain_interval
        if self._last_draw is not None and now - self._last_draw < interval:
            return
        if not self.tty and self._last_draw is None:
            # Plain output: the first line after one interval, not on the first item.
            self._last_draw = now
            return
        self._draw(now)

    def render(self, now: float | None = None, width: int | None = None) -> str:
        """The current line (without the carriage return)."""
        now = self.clock() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.done}/{self.total}"]
        if self.total:
            parts.append(f"{100 * self.done // self.total:3d}%")
        parts.append(f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.1f}/s")
        if self.total and self.done < self.total:
            parts.append(f"ETA {format_duration((self.total - self.done) / rate)}" if rate else "")
        text = "  ".join(p for p in parts if p)
        label = f"{self.label} " if self.label else ""
        if not self.tty:
            return f"{label}{text}"
        columns = width or shutil.get_terminal_size((80, 24)).columns
        bar_width = min(40, columns - len(label) - len(text) - 4)
        if bar_width < 10 or not self.total:
            return f"{label}{text}"[: columns - 1]
        filled = bar_width * self.done // self.total
        return f"{label}[{'#' * filled}{'-' * (bar_width - filled)}] {text}"

    def _draw(self, now: float) -> None:
        line = self.render(now)
        if self.tty:
            # Clear to the end of the line: the previous line may have been longer.
            self.stream.write(f"\r{line}\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last_draw = now

    def close(self) -> None:
        """Draw the final state on a terminal and end its line; plain output needs nothing more."""
        if self.tty:
            self._draw(self.clock())
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
