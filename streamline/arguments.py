"""Argument types shared by the command lines: each refuses a bad value with one line (argparse
prints it with the usage and exits 2), never a traceback.

Example::

    parser.add_argument("--port", type=port)
    parser.add_argument("--count", type=number(int, lambda v: 1 <= v <= 10, "1 to 10"))
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamline.local.state import parse_port

__all__ = ["InputTooLarge", "number", "port", "read_input"]


def number(kind: Callable[[str], Any], check: Callable[[Any], bool], what: str) -> Any:
    """An argparse type: ``kind(text)`` that passes ``check``; ``what`` names the allowed values.

    ``check`` is a range test, so it also refuses NaN (every comparison with NaN is false).
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text[:80]!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text[:80]!r}")
        return value

    return parse


def port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free one)."""
    try:
        return parse_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class InputTooLarge(ValueError):
    """The file (or stdin) holds more than the command accepts."""


def read_input(source: str, limit: int) -> bytes:
    """The bytes of the file ``source`` names, or of stdin for ``-``, reading at most one byte
    past ``limit`` so a huge input is refused without being held in memory.

    Raises:
        OSError: the file cannot be read.
        InputTooLarge: it is longer than ``limit`` bytes.
    """
    if source == "-":
        raw = sys.stdin.buffer.read(limit + 1)
    else:
        with Path(source).open("rb") as handle:
            raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise InputTooLarge(f"more than {limit} bytes")
    return raw
