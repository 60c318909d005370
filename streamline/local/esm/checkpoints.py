"""Durable per-shard checkpoints: ``state_dir/checkpoints/<mapping uuid>/<shard id>.json``.

Written atomically (temporary file, fsync, rename) after each advance, so a crash at any point
leaves either the old or the new position and a restart resumes from there, losing nothing
(records past the checkpoint are delivered again: at-least-once, as on AWS).

Example::

    store = CheckpointStore(state_dir)
    store.save("uuid", "shardId-000000000000", {"sequenceNumber": "42"})
    store.load("uuid", "shardId-000000000000")   # {"sequenceNumber": "42", ...}
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["CheckpointStore"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class CheckpointStore:
    """Reads and writes shard checkpoints under ``state_dir/checkpoints``."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "checkpoints"
        self._lock = threading.Lock()

    def path(self, mapping_uuid: str, shard_id: str) -> Path:
        return self.root / _UNSAFE.sub("_", mapping_uuid) / f"{_UNSAFE.sub('_', shard_id)}.json"

    def load(self, mapping_uuid: str, shard_id: str) -> dict[str, Any] | None:
        """The saved checkpoint, or None when the shard was never checkpointed."""
        try:
            data = json.loads(self.path(mapping_uuid, shard_id).read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            # A torn write is impossible with rename; an unreadable file is treated as absent.
            return None
        return data if isinstance(data, dict) else None

    def save(self, mapping_uuid: str, shard_id: str, data: dict[str, Any]) -> None:
        """Write ``data`` atomically."""
        target = self.path(mapping_uuid, shard_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(data, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def shards(self, mapping_uuid: str) -> list[str]:
        folder = self.root / _UNSAFE.sub("_", mapping_uuid)
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def forget(self, mapping_uuid: str) -> None:
        """Drop a deleted mapping's checkpoints."""
        with self._lock:
            shutil.rmtree(self.root / _UNSAFE.sub("_", mapping_uuid), ignore_errors=True)
