"""The command lines' shared argument helpers: bad values are one line, big inputs are refused
before they are held in memory."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest

from streamline.arguments import InputTooLarge, number, port, read_input


def test_read_input_takes_exactly_the_limit_and_refuses_one_byte_more(tmp_path: Path) -> None:
    exact = tmp_path / "exact"
    exact.write_bytes(b"x" * 16)
    assert read_input(str(exact), 16) == b"x" * 16
    over = tmp_path / "over"
    over.write_bytes(b"\x00\xff" * 9)
    with pytest.raises(InputTooLarge):
        read_input(str(over), 17)


def test_read_input_reads_stdin_for_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(b'{"a": 1}\n'))
    monkeypatch.setattr(sys, "stdin", fake)
    assert read_input("-", 100) == b'{"a": 1}\n'


def test_read_input_passes_the_os_error_on(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_input(str(tmp_path / "missing"), 10)
    with pytest.raises(IsADirectoryError):
        read_input(str(tmp_path), 10)


@pytest.mark.parametrize("text", ["-1", "65536", "x", "nan", "", "1e3"])
def test_a_bad_port_is_an_argparse_error(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        port(text)


def test_number_refuses_nan_and_out_of_range() -> None:
    fraction = number(float, lambda v: 0 <= v <= 1, "0 to 1")
    assert fraction("0.5") == 0.5
    for text in ("nan", "2", "abc"):
        with pytest.raises(argparse.ArgumentTypeError, match="0 to 1"):
            fraction(text)
