"""What every mapping worker shares: the engine context, the state enum, backoffs and status.

Shaped after LocalStack's ESM worker (one worker per mapping, an explicit state, separate backoffs
for empty polls and errors, interruptible waits) so shutdown and updates are prompt.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamline.local.contracts import Clock, Invoker
    from streamline.local.durability import Mutations
    from streamline.local.esm.checkpoints import CheckpointStore
    from streamline.local.esm.config import MappingConfig

__all__ = ["Backoff", "EngineContext", "MappingWorker", "WorkerState"]

log = logging.getLogger("streamline.local.esm")


class WorkerState(enum.Enum):
    """Where a worker (or one of its pollers / shard workers) is."""

    STARTING = "Starting"
    POLLING = "Polling"
    WAITING = "Waiting"  # empty poll backoff or batching window
    INVOKING = "Invoking"
    RETRYING = "Retrying"  # error backoff before a retry
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FINISHED = "Finished"  # closed shard fully processed


@dataclass
class Backoff:
    """Exponential backoff: ``next()`` returns the delay, then doubles it up to ``maximum``."""

    initial: float
    maximum: float
    current: float = field(init=False)

    def __post_init__(self) -> None:
        self.current = self.initial

    def next(self) -> float:
        delay = self.current
        self.current = min(self.current * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.current = self.initial


@dataclass
class EngineContext:
    """The engine's collaborators handed to every worker."""

    backends: Any
    invoker: Invoker
    clock: Clock
    checkpoints: CheckpointStore
    state_dir: Path
    poll_interval: float
    #: How workers change moto's state (journaled when the cloud persists; ``durability``).
    mutations: Mutations | None = None

    def run(self, operation: str, *args: Any) -> Any:
        """Run a registered change to moto's state (under the lock; journaled when durable)."""
        from streamline.local.durability import Passthrough

        if self.mutations is None:
            self.mutations = Passthrough(self.backends)
        return self.mutations.run(operation, *args)

    @property
    def empty_backoff(self) -> Backoff:
        # Start fast so a message sent just after an empty poll is picked up promptly; cap at the
        # engine's poll interval so an idle engine costs little CPU.
        return Backoff(min(0.01, self.poll_interval), self.poll_interval)

    @property
    def error_backoff(self) -> Backoff:
        return Backoff(0.1, 5.0)


class MappingWorker:
    """Base class: a worker owns one enabled mapping and its threads."""

    def __init__(self, config: MappingConfig, ctx: EngineContext) -> None:
        self.config = config
        self.ctx = ctx
        self.stop_event = threading.Event()
        self.state = WorkerState.STARTING
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.counters: dict[str, int] = {
            "invocations": 0,
            "records": 0,
            "succeeded": 0,
            "failed": 0,
            "filtered": 0,
        }
        self._counter_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Ask every thread to finish; an in-flight invocation completes first (not joined)."""
        self.stop_event.set()
        self.state = WorkerState.STOPPING

    def join(self, timeout: float) -> None:
        raise NotImplementedError

    def stopped(self) -> bool:
        """True once stopped and every thread has ended (no batch in flight any more)."""
        raise NotImplementedError

    def update(self, config: MappingConfig) -> None:
        """Apply a changed mapping; takes effect on the next poll (item 12)."""
        self.config = config

    # -- observation -------------------------------------------------------------------------
    def idle(self) -> bool:
        raise NotImplementedError

    def status(self) -> dict[str, Any]:
        return {
            "uuid": self.config.uuid,
            "function": self.config.function_arn,
            "source_arn": self.config.source_arn,
            "kind": self.config.kind.value,
            "state": "Disabling" if self.stop_event.is_set() else "Enabled",
            "worker_state": self.state.value,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            **self.counters,
        }

    def count(self, **deltas: int) -> None:
        with self._counter_lock:
            for key, value in deltas.items():
                self.counters[key] = self.counters.get(key, 0) + value

    def error(self, message: str) -> None:
        """Show an error: in ``status`` (``last_error``), the log, and a metric an alarm can
        watch (``Streamline/LocalCloud`` ``EngineErrors`` by function)."""
        if message != self.last_error:
            log.warning("ESM %s (%s): %s", self.config.uuid, self.config.source_arn, message)
        self.last_error = message
        self.last_error_at = self.ctx.clock.now()
        with self._counter_lock:
            self.counters["errors"] = self.counters.get("errors", 0) + 1
        metrics = getattr(self.ctx.invoker, "metrics", None)  # LocalCloud's MetricsPublisher
        if metrics is not None:
            metrics.engine_error("esm", self.config.function_arn)

    def wait(self, seconds: float) -> bool:
        """Interruptible clock wait; True when the worker is stopping."""
        return self.ctx.clock.wait(seconds, self.stop_event)
