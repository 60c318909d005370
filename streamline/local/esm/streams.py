"""Kinesis and DynamoDB Streams event source mappings (items 14-24): one worker per mapping.

One :class:`StreamWorker` per mapping discovers shards (new shards after resharding are picked
up) and runs one :class:`~streamline.local.esm.shards.ShardWorker` thread per shard, so a failing
shard never blocks another (item 14); :mod:`streamline.local.esm.shards` is what each shard does.

Records are read from moto's models directly under the backends lock by a stream source
(:mod:`streamline.local.esm.sources`), never through shard iterators.
"""

from __future__ import annotations

import threading
from typing import Any

from streamline.local.esm.config import MappingConfig, SourceKind
from streamline.local.esm.shards import ShardWorker
from streamline.local.esm.sources import DynamoDBSource, KinesisSource, StreamSource
from streamline.local.esm.worker import EngineContext, MappingWorker, WorkerState

__all__ = ["StreamWorker"]


class StreamWorker(MappingWorker):
    """One Kinesis / DynamoDB Streams mapping: shard discovery plus one thread per shard."""

    def __init__(self, config: MappingConfig, ctx: EngineContext, *, first_seen: float) -> None:
        super().__init__(config, ctx)
        if config.kind is SourceKind.KINESIS:
            self.source: StreamSource = KinesisSource(ctx.backends, config.source_arn)
        else:
            self.source = DynamoDBSource(ctx.backends, config.source_arn)
        # LATEST means records that arrive after the mapping was created; the validation patch
        # stamps the creation time, else the engine's first sighting (minus its poll lag).
        self.latest_from = config.created_at or (first_seen - ctx.poll_interval - 0.05)
        self.shard_workers: dict[str, ShardWorker] = {}
        self._thread: threading.Thread | None = None
        self._discovered_once = bool(ctx.checkpoints.shards(config.uuid))

    def start(self) -> None:
        self.state = WorkerState.POLLING
        self._discover()
        self._thread = threading.Thread(
            target=self._run, name=f"esm-stream-{self.config.uuid[:8]}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self.wait(self.ctx.poll_interval):
            self._discover()

    def _discover(self) -> None:
        try:
            with self.ctx.backends.lock:
                shards = self.source.shards()
        except Exception as exc:
            self.error(f"cannot list shards: {type(exc).__name__}: {exc}")
            return
        for info in shards:
            if info.shard_id in self.shard_workers:
                continue
            # Shards present when the mapping starts use its StartingPosition; shards that
            # appear later (resharding) are read from their beginning, as on AWS.
            worker = ShardWorker(self, info.shard_id, initial=not self._discovered_once)
            self.shard_workers[info.shard_id] = worker
            worker.start()
        self._discovered_once = True

    def stop(self) -> None:
        super().stop()

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in list(self.shard_workers.values()):
            worker.join(timeout)
        self.state = WorkerState.STOPPED

    def stopped(self) -> bool:
        threads = [self._thread, *(w._thread for w in list(self.shard_workers.values()))]
        return self.stop_event.is_set() and not any(t is not None and t.is_alive() for t in threads)

    def idle(self) -> bool:
        return all(worker.idle() for worker in list(self.shard_workers.values()))

    def status(self) -> dict[str, Any]:
        info = super().status()
        shards = {sid: w.status() for sid, w in sorted(self.shard_workers.items())}
        info.update(
            shards=shards,
            position={sid: s["position"] for sid, s in shards.items()},
            backlog=sum(s["backlog"] or 0 for s in shards.values()),
            in_flight=sum(1 for s in shards.values() if s["state"] == WorkerState.INVOKING.value),
        )
        return info
