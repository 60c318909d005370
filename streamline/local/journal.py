"""The write-ahead journal: every change to the local cloud's state, in the order it was made.

One entry per mutation (an API request that changes moto's state, an engine's direct change, an
asynchronous event accepted or settled), appended while the change still holds moto's lock, so
no one can have seen a change that is not in the journal. A restart loads the last snapshot and
replays the entries after it (``streamline.local.durability``).

Files: ``<state dir>/journal/<first seq>.log``, a segment per snapshot period. Each frame is
``length (4 bytes) | crc32 (4 bytes) | pickle((seq, kind, at, data))``. A frame cut short by a
crash fails its length or CRC and ends the readable journal there: a torn last frame was never
acknowledged (the write happens before the response is sent).

Durability policy (``sync``):

- ``"interval"`` (default): each frame is written with ``os.write`` before the change is
  acknowledged, so a killed process loses nothing (the page cache holds it); a background
  thread fsyncs every ``interval`` seconds, so a machine crash loses at most that much.
- ``"always"``: fsync before acknowledging (a machine crash loses nothing; costs a disk flush
  per mutation).
- ``"never"``: no fsync (tests).

Example::

    journal = Journal(state_dir / "journal", sync="interval")
    journal.open(after=0)
    seq = journal.append("http", time.time(), request)
    for entry in journal.read(after=snapshot_seq):
        ...
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["Entry", "Journal", "JournalError", "SyncPolicy"]

SyncPolicy = Literal["interval", "always", "never"]
_HEADER = struct.Struct(">II")
_SUFFIX = ".log"


class JournalError(RuntimeError):
    """The journal cannot be written (disk full, permissions): the change is refused."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One journaled change: its sequence number, kind, wall-clock time and data."""

    seq: int
    kind: str
    at: float
    data: Any


class Journal:
    """Append-only segments of entries; thread-safe."""

    def __init__(self, root: Path, *, sync: SyncPolicy = "interval", interval: float = 1.0) -> None:
        if sync not in ("interval", "always", "never"):
            raise ValueError(f"sync must be interval, always or never, not {sync!r}")
        self.root = Path(root)
        self.sync: SyncPolicy = sync
        self.interval = interval
        self.seq = 0
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._dirty = False
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        #: Bytes and frames written since open (the benchmark reads them).
        self.bytes_written = 0
        self.frames_written = 0

    # -- writing ---------------------------------------------------------------------------

    def open(self, after: int) -> None:
        """Start a new segment for the entries after ``after`` (the last seq already applied)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self.seq = after
            self._open_segment()
        if self.sync == "interval" and self._syncer is None:
            self._stop.clear()
            self._syncer = threading.Thread(
                target=self._sync_loop, name="journal-fsync", daemon=True
            )
            self._syncer.start()

    def _open_segment(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
        path = self.root / f"{self.seq + 1:012d}{_SUFFIX}"
        if path.exists():
            # A segment that holds only a torn frame (a crash while writing its first entry):
            # appending after the tear would hide everything written from now on.
            with path.open("r+b") as handle:
                handle.truncate(_valid_length(path))
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _fsync_dir(self.root)

    def append(self, kind: str, at: float, data: Any) -> int:
        """Write one entry (before the change it records is acknowledged); its seq."""
        with self._lock:
            if self._fd is None:
                raise JournalError("the journal is not open")
            seq = self.seq + 1
            try:
                payload = pickle.dumps((seq, kind, at, data), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise JournalError(f"cannot journal a {kind} entry: {exc}") from exc
            frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
            try:
                written = os.write(self._fd, frame)
                if written != len(frame):  # a full disk writes short: keep the frame whole
                    raise OSError(f"short write ({written} of {len(frame)} bytes)")
                if self.sync == "always":
                    os.fsync(self._fd)
            except OSError as exc:
                raise JournalError(f"cannot write the journal in {self.root}: {exc}") from exc
            self.seq = seq
            self._dirty = True
            self.bytes_written += len(frame)
            self.frames_written += 1
            return seq

    def rotate(self) -> int:
        """Close the current segment and start the next; the last seq of the closed one."""
        with self._lock:
            self._open_segment()
            return self.seq

    def flush(self) -> None:
        """fsync what was written (``local down`` and snapshots call it)."""
        with self._lock:
            if self._fd is not None and self._dirty:
                os.fsync(self._fd)
                self._dirty = False

    def close(self) -> None:
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join(timeout=5)
            self._syncer = None
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.interval):
            # The next append reports a broken disk; a flush must not kill the thread.
            with contextlib.suppress(OSError):
                self.flush()

    # -- reading and trimming ----------------------------------------------------------------

    def segments(self) -> list[Path]:
        """Segment files in order of their first seq."""
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.suffix == _SUFFIX and p.stem.isdigit())

    def read(self, after: int) -> Iterator[Entry]:
        """The entries with seq > ``after``, in order, up to the first torn or corrupt frame."""
        for path in self.segments():
            for entry in _frames(path):
                if entry.seq > after:
                    yield entry

    def last_seq(self) -> int:
        """The last readable seq (0 when empty)."""
        last = 0
        for path in self.segments()[-1:]:
            for entry in _frames(path):
                last = entry.seq
        if last == 0:
            for path in reversed(self.segments()[:-1]):
                for entry in _frames(path):
                    last = entry.seq
                if last:
                    break
        return last

    def drop_through(self, seq: int) -> int:
        """Delete the segments whose every entry is at or below ``seq``; how many."""
        segments = self.segments()
        dropped = 0
        for current, following in itertools.pairwise(segments):
            # A segment ends where the next one begins.
            if int(following.stem) - 1 <= seq:
                current.unlink(missing_ok=True)
                dropped += 1
        return dropped

    def damage(self) -> list[str]:
        """What a read skipped: bytes after each segment's last whole frame (a torn write is
        only ever the tail of the last segment; anything else is reported)."""
        found = []
        for path in self.segments():
            size = path.stat().st_size
            valid = _valid_length(path)
            if valid < size:
                found.append(
                    f"journal segment {path.name}: {size - valid} bytes after its last whole "
                    "entry were not read (a write cut short by a crash, or damage)"
                )
        return found

    def size(self) -> int:
        """Bytes on disk across the segments."""
        return sum(path.stat().st_size for path in self.segments())


def _valid_length(path: Path) -> int:
    """How many leading bytes of a segment are whole frames."""
    ends = (end for end, _ in _whole_frames(path.read_bytes()))
    return max(ends, default=0)


def _frames(path: Path) -> Iterator[Entry]:
    for _, entry in _whole_frames(path.read_bytes()):
        yield entry


def _whole_frames(data: bytes) -> Iterator[tuple[int, Entry]]:
    """Each whole frame's entry with the offset where the frame ends. The first frame that is
    cut short, fails its CRC or does not decode ends the segment: a torn tail, never
    acknowledged."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        payload = data[start : start + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            return
        try:
            seq, kind, at, body = pickle.loads(payload)
        except Exception:
            return
        offset = start + length
        yield offset, Entry(seq, kind, at, body)


def _fsync_dir(path: Path) -> None:
    # A new segment's directory entry must survive a machine crash too.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
