"""The event-source-mapping engine: reconciles moto's mappings into running workers.

Every ``poll_interval`` seconds (0.5 s by default) the engine snapshots
``LambdaBackend._event_source_mappings`` under the backends lock and reconciles: a new enabled
mapping gets a worker (SQS: :class:`SqsWorker`; Kinesis / DynamoDB Streams: :class:`StreamWorker`),
a changed one is updated in place (takes effect on the next poll), a disabled or deleted one is
stopped (item 12). A setting the engine cannot honour is refused: the worker is not started, the
mapping is set to ``State: Disabled`` in moto (visible through GetEventSourceMapping) and
``status()`` carries the reason (item 24).

Example::

    engine = EsmEngine(backends, runner, state_dir, SystemClock())
    engine.start()
    ...
    engine.idle()      # True when nothing is in flight or waiting
    engine.status()    # [{"uuid": ..., "state": "Enabled", "backlog": 0, ...}]
    engine.stop()
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamline.local import patches
from streamline.local.contracts import SystemClock
from streamline.local.esm.checkpoints import CheckpointStore
from streamline.local.esm.config import MappingConfig, SourceKind
from streamline.local.esm.sqs import SqsWorker
from streamline.local.esm.streams import StreamWorker
from streamline.local.esm.worker import EngineContext, MappingWorker

if TYPE_CHECKING:
    from streamline.local.contracts import Clock, Invoker

__all__ = ["EsmEngine"]

log = logging.getLogger("streamline.local.esm")


class EsmEngine:
    """Runs every event source mapping in moto's Lambda backend against ``invoker``.

    ``backends`` is the platform's Backends accessor (``lock``, ``lambda_()``, ``sqs()``,
    ``kinesis()``, ``dynamodb()``, ``sns()``, ``s3()``, ``region``). ``state_dir`` holds the
    durable checkpoints (``checkpoints/<uuid>/<shard>.json``).
    """

    def __init__(
        self,
        backends: Any,
        invoker: Invoker,
        state_dir: Path,
        clock: Clock | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self.backends = backends
        self.ctx = EngineContext(
            backends=backends,
            invoker=invoker,
            clock=clock or SystemClock(),
            checkpoints=CheckpointStore(Path(state_dir)),
            state_dir=Path(state_dir),
            poll_interval=poll_interval,
        )
        self._workers: dict[str, MappingWorker] = {}
        self._retired: list[MappingWorker] = []
        self._configs: dict[str, MappingConfig] = {}
        self._refused: dict[str, str] = {}
        self._first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        # Set by stop() and by a mapping changed through the API: reconcile now, not at the
        # next poll interval.
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self.last_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Reconcile once now, then every ``poll_interval`` seconds in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self.reconcile()
        self._thread = threading.Thread(target=self._loop, name="esm-reconciler", daemon=True)
        self._thread.start()
        patches.set_mapping_observer(self)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker; waits end at once, in-flight invocations get ``timeout`` seconds
        in all (not each) to finish. One that does not is delivered again after a restart."""
        deadline = time.monotonic() + timeout
        patches.clear_mapping_observer(self)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._lock:
            workers = list(self._workers.values()) + self._retired
            self._workers.clear()
            self._retired.clear()
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> EsmEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while True:
            self.ctx.clock.wait(self.ctx.poll_interval, self._wake)
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                self.reconcile()
            except Exception as exc:  # keep reconciling; make the failure visible
                self.last_error = f"reconcile failed: {type(exc).__name__}: {exc}"
                log.exception("ESM reconcile failed")

    # -- reconciliation ----------------------------------------------------------------------
    def reconcile(self) -> None:
        """Bring workers in line with moto's mappings (create/update/enable/disable/delete)."""
        snapshot: dict[str, MappingConfig] = {}
        refused_now: dict[str, str] = {}
        with self.backends.lock:
            mappings = dict(self.backends.lambda_()._event_source_mappings)
            for uuid, esm in mappings.items():
                try:
                    config = MappingConfig.from_moto(esm)
                except Exception as exc:
                    refused_now[uuid] = f"unreadable mapping: {type(exc).__name__}: {exc}"
                    continue
                reason = config.refusal() if config.enabled else None
                if reason:
                    # Refuse visibly: GetEventSourceMapping now reports State "Disabled".
                    esm.enabled = False
                    esm.state_transition_reason = reason
                    refused_now[uuid] = reason
                    log.error("ESM %s refused: %s", uuid, reason)
                    config = MappingConfig.from_moto(esm)
                snapshot[uuid] = config
        now = self.ctx.clock.now()
        with self._lock:
            self._refused.update(refused_now)
            for uuid, config in snapshot.items():
                self._first_seen.setdefault(uuid, now)
                worker = self._workers.get(uuid)
                if not config.enabled:
                    if worker is not None:
                        self._retire(uuid)
                elif worker is None:
                    self._refused.pop(uuid, None)
                    self._start_worker(config)
                elif worker.stop_event.is_set():
                    # Disabled by a request and enabled again before this pass saw it.
                    self._retire(uuid)
                    self._start_worker(config)
                elif worker.config != config:
                    if (
                        worker.config.kind is not config.kind
                        or worker.config.source_arn != config.source_arn
                    ):
                        self._retire(uuid)
                        self._start_worker(config)
                    else:
                        worker.update(config)
            for uuid in [u for u in self._workers if u not in snapshot]:
                self._retire(uuid)
                self.ctx.checkpoints.forget(uuid)
            for uuid in [u for u in self._configs if u not in snapshot]:
                self._refused.pop(uuid, None)
                self._first_seen.pop(uuid, None)
            self._configs = snapshot
            self._retired = [w for w in self._retired if not _finished(w)]

    def _start_worker(self, config: MappingConfig) -> None:
        worker: MappingWorker
        if config.kind is SourceKind.SQS:
            worker = SqsWorker(config, self.ctx)
        else:
            worker = StreamWorker(config, self.ctx, first_seen=self._first_seen[config.uuid])
        self._workers[config.uuid] = worker
        worker.start()
        log.info("ESM %s started: %s -> %s", config.uuid, config.source_arn, config.function_arn)
        self._audit(config)

    def _audit(self, config: MappingConfig) -> None:
        """Report (never enforce) what the function's role would be denied when Lambda polls the
        source and sends on-failure records with it (streamline.local.iam_audit)."""
        from streamline.local import iam_audit
        from streamline.local.server import ACCOUNT_ID, REGION

        try:
            iam_audit.aws_managed_documents()  # parsed once, outside the lock
            with self.backends.lock:
                function = self.backends.lambda_().get_function(config.function_arn)
                role = str(function.role)
                from moto.iam.models import iam_backends

                documents = iam_audit.role_documents(iam_backends[ACCOUNT_ID]["aws"], role)
            context = {
                "aws:SecureTransport": "true",
                "aws:PrincipalArn": role,
                "aws:PrincipalAccount": ACCOUNT_ID,
                "aws:RequestedRegion": REGION,
            }
            requests = iam_audit.mapping_requests(config.source_arn, config.on_failure_arn)
            iam_audit.audit(str(function.function_name), requests, documents, context)
        except Exception as exc:  # an audit never stops a mapping
            log.debug("ESM %s: IAM audit skipped: %s", config.uuid, exc)

    def _retire(self, uuid: str) -> None:
        worker = self._workers.pop(uuid)
        worker.stop()
        self._retired.append(worker)  # its in-flight batch finishes in the background

    # -- changes made through the API (patches.MappingObserver) -------------------------------
    # Called by the request that changes a mapping, with the moto lock held. The reconciler
    # takes ``self._lock`` and then the moto lock (a stream worker lists its shards as it
    # starts), so these must not take ``self._lock``: they read the worker tables without it
    # (single dict and list reads are atomic) and leave the rest to the woken reconciler.
    def mapping_changed(self, uuid: str, enabled: bool, deleted: bool = False) -> None:
        """Stop a disabled or deleted mapping's pollers now; reconcile at once either way."""
        worker = self._workers.get(uuid)
        if worker is not None and (deleted or not enabled):
            worker.stop()  # no receive or read starts after this (they check under the lock)
        self._wake.set()

    def mapping_state(self, uuid: str, enabled: bool) -> str:
        """AWS's State: ``Disabling`` until the pollers have stopped and their batches ended."""
        if enabled:
            return "Enabled"
        workers = [self._workers.get(uuid), *list(self._retired)]
        if any(w is not None and w.config.uuid == uuid and not w.stopped() for w in workers):
            return "Disabling"
        return "Disabled"

    # -- observation -------------------------------------------------------------------------
    def idle(self) -> bool:
        """True when no batch is in flight and no enabled mapping has records waiting."""
        with self._lock:
            workers = list(self._workers.values())
            retired = list(self._retired)
        return all(w.idle() for w in workers) and all(_finished(w) for w in retired)

    def busy(self) -> list[str]:
        """What keeps the engine from being idle, one line per mapping (for wait_idle errors)."""
        with self._lock:
            workers = list(self._workers.values())
        return [
            f"ESM {w.config.uuid} ({w.config.source_arn} -> {w.config.function_arn})"
            for w in workers
            if not w.idle()
        ]

    def running_config(self, uuid: str) -> MappingConfig | None:
        """The configuration the worker of mapping ``uuid`` runs with now (None if not running).

        An UpdateEventSourceMapping takes effect once the engine has reconciled it; tests and
        tools wait on this instead of sleeping.
        """
        with self._lock:
            worker = self._workers.get(uuid)
        return None if worker is None else worker.config

    def status(self) -> list[dict[str, Any]]:
        """One dict per mapping: uuid, function, source_arn, state, position, backlog, error."""
        with self._lock:
            configs = dict(self._configs)
            workers = dict(self._workers)
            refused = dict(self._refused)
        out: list[dict[str, Any]] = []
        for uuid, config in configs.items():
            worker = workers.get(uuid)
            if worker is not None:
                out.append(worker.status())
                continue
            out.append(
                {
                    "uuid": uuid,
                    "function": config.function_arn,
                    "source_arn": config.source_arn,
                    "kind": config.kind.value,
                    "state": "Disabled",
                    "worker_state": "Stopped",
                    "position": None,
                    "backlog": None,
                    "last_error": refused.get(uuid),
                }
            )
        return out


def _finished(worker: MappingWorker) -> bool:
    """A retired worker is finished when none of its threads is still running."""
    return worker.stopped()
