"""LocalCloud: the moto server, the patches, the function runner and both engines, composed.

Example::

    from streamline.local import LocalCloud

    with LocalCloud() as cloud:                       # a free port, ./.streamline/local
        outputs = cloud.deploy("tests/fixtures/apps/tiny")
        cloud.client("sqs").send_message(QueueUrl=..., MessageBody="{}")
        cloud.wait_idle(timeout=30)

moto's state is process-global, so one process runs at most one LocalCloud at a time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from streamline.local import durability, patches
from streamline.local.alarm_evaluator import AlarmEvaluator
from streamline.local.api_calls import API_CALLS
from streamline.local.clients import TEST_CREDENTIALS, make_client
from streamline.local.contracts import Clock, SystemClock
from streamline.local.durability import Durability, Mutations, Passthrough, RestoreReport
from streamline.local.iam_audit import DENIALS
from streamline.local.metrics import MetricsPublisher
from streamline.local.server import ACCOUNT_ID, REGION, MotoServer
from streamline.local.state import StateDir
from streamline.local.xray_daemon import XRayDaemon

if TYPE_CHECKING:
    from streamline.local.async_invoke import AsyncEngine
    from streamline.local.esm import EsmEngine
    from streamline.local.runtime import FunctionRunner

__all__ = ["TEST_CREDENTIALS", "EngineFactory", "LocalCloud", "make_client", "wait_quiet"]

# A factory builds one engine from the (started) cloud; None means "not available".
EngineFactory = Callable[["LocalCloud"], Any]

_active_lock = threading.Lock()
_active: LocalCloud | None = None


def wait_quiet(busy: Callable[[], list[str]], timeout: float, poll: float) -> None:
    """Until ``busy()`` names nothing on two polls in a row (a batch finishing can enqueue an
    async invocation a moment later); TimeoutError names what is still busy."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while True:
        parts = busy()
        quiet = quiet + 1 if not parts else 0
        if quiet >= 2:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"local cloud still busy after {timeout:g} s: {', '.join(parts)}")
        time.sleep(poll)


class _SkippedTypeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No Moto CloudFormation support")


def _quiet_moto() -> None:
    # moto reports each CloudFormation type it skips (log line + warning); the reconciler
    # applies those or fails naming them, so the noise only hides real output.
    moto_logger = logging.getLogger("moto")
    if not any(isinstance(f, _SkippedTypeFilter) for f in moto_logger.filters):
        moto_logger.addFilter(_SkippedTypeFilter())
    warnings.filterwarnings(
        "ignore", message=r"Tried to parse .* not supported by moto", category=UserWarning
    )


def default_runner(cloud: LocalCloud) -> FunctionRunner:
    from streamline.local.runtime import FunctionRunner

    return FunctionRunner(cloud.backends, cloud.state.root, cloud.endpoint_url, cloud.clock)


def default_async_engine(cloud: LocalCloud) -> AsyncEngine | None:
    from streamline.local.async_invoke import AsyncEngine

    if cloud.runner is None:
        return None
    return AsyncEngine(cloud.backends, cloud.runner, cloud.clock)


def default_esm(cloud: LocalCloud) -> EsmEngine | None:
    from streamline.local.esm import EsmEngine

    if cloud.runner is None:
        return None
    return EsmEngine(cloud.backends, cloud.runner, cloud.state.root, cloud.clock)


class LocalCloud:
    """A docker-free AWS for one CDK app: start, deploy, drive, wait until idle, stop.

    ``runner_factory``, ``async_factory`` and ``esm_factory`` replace how the engines are built
    (tests inject fakes); by default they are imported lazily from ``streamline.local``.
    ``publish=True`` records the endpoint in the state dir so the CLI can find it.
    ``alarm_interval`` is how often (clock seconds) the deployed alarms are evaluated.
    ``persist=True`` journals every change in the state dir and restores it on ``start``
    (``streamline.local.durability``): a cloud that was stopped, or killed at any moment, goes
    on where it was.
    """

    def __init__(
        self,
        port: int | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
        *,
        runner_factory: EngineFactory | None = default_runner,
        async_factory: EngineFactory | None = default_async_engine,
        esm_factory: EngineFactory | None = default_esm,
        publish: bool = False,
        alarm_interval: float = 60.0,
        persist: bool = False,
        allowed_origins: frozenset[str] = frozenset(),
    ) -> None:
        self.state = StateDir(state_dir)
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self.clock: Clock = clock or SystemClock()
        # Loopback only, for its owner: browsers only from ``allowed_origins`` (server.py).
        self.server = MotoServer(port, allowed_origins=allowed_origins)
        self.backends = self.server.backends
        # Tests may inject stand-ins through the factories; these are the engines by default.
        self.runner: FunctionRunner | None = None
        self.async_engine: AsyncEngine | None = None
        self.esm: EsmEngine | None = None
        #: AWS's service metrics (AWS/Lambda, AWS/SQS, AWS/Kinesis, AWS/States) into CloudWatch.
        self.metrics = MetricsPublisher(self.backends, self.clock)
        #: Evaluates the deployed alarms every ``alarm_interval`` seconds of clock time (AWS
        #: evaluates each minute) and publishes their SNS actions.
        self.alarms = AlarmEvaluator(self.backends, self.clock, interval=alarm_interval)
        #: Receives the functions' own X-Ray segments (the SDK's UDP datagrams) on a free port.
        self.xray_daemon = XRayDaemon(self.backends)
        self._factories = (runner_factory, async_factory, esm_factory)
        self._publish = publish
        self._persist = persist
        self._started = False
        #: The journal and snapshots (``persist=True``), else None; see ``durability``.
        self.durability: Durability | None = None
        #: How engines change moto's state: journaled when persisting, else directly.
        self.mutations: Mutations = Passthrough(self.backends)
        #: What the last start restored (``persist=True``).
        self.restored: RestoreReport | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> LocalCloud:
        """Patch moto, bind the port, build and start the engines (idempotent)."""
        global _active
        if self._started:
            return self
        with _active_lock:
            if _active is not None:
                raise RuntimeError(
                    f"a LocalCloud is already running in this process at {_active.endpoint_url}"
                    " (moto's state is process-global)"
                )
            _active = self
        try:
            _quiet_moto()
            self.state.ensure()
            patches.apply_all()
            if self._persist:
                self._restore()
            self.server.start()
            # Functions and in-process SDK calls (Step Functions integrations) must never
            # reach real AWS from here.
            os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
            self.xray_daemon.start()
            runner_factory, async_factory, esm_factory = self._factories
            self.runner = runner_factory(self) if runner_factory else None
            if self.runner is not None:
                self.runner.xray_address = self.xray_daemon.address
            self.async_engine = async_factory(self) if async_factory else None
            if self.async_engine is not None:
                self.async_engine.mutations = self.mutations
                if self.restored is not None and self.restored.async_events:
                    now = self.clock.now()
                    self.async_engine.restore([(now, e) for e in self.restored.async_events])
            self.esm = esm_factory(self) if esm_factory else None
            if self.esm is not None:
                self.esm.ctx.mutations = self.mutations
            # The ESM engine reports through its invoker (the runner).
            for part in (self.runner, self.async_engine):
                if part is not None:
                    part.metrics = self.metrics
            self.metrics.start()
            self.alarms.start()
            patches.set_invokers(self.runner, self.async_engine)
            for engine in (self.async_engine, self.esm):
                if engine is not None and hasattr(engine, "start"):
                    engine.start()
            self.server.routes["/_streamline/status"] = self.status
            # Counted API calls, for `streamline cost` against a detached cloud.
            self.server.routes["/_streamline/api-calls"] = API_CALLS.as_json
            if self._publish:
                self.state.write_endpoint(self.endpoint_url, self.port, os.getpid())
            self._started = True
        except BaseException:
            self.stop()
            raise
        return self

    def _restore(self) -> None:
        """Load the snapshot, replay the journal, and journal from here on (``persist``)."""
        from streamline.local.server import moto_app

        store = Durability(self.state.root, self.backends, moto_app())
        self.restored = store.restore()
        store.open()
        self.durability = store
        self.mutations = store
        self.server.durability = store
        durability.ACTIVE = store

    def stop(self) -> None:
        """Stop the engines, the runner and the server; forget the published endpoint."""
        global _active
        errors: list[BaseException] = []
        # Engines first: in-flight invocations finish, so nothing is half done when saved.
        for engine, method in ((self.esm, "stop"), (self.async_engine, "stop")):
            if engine is not None and hasattr(engine, method):
                try:
                    getattr(engine, method)()
                except Exception as exc:  # keep stopping the rest
                    errors.append(exc)
        if self.durability is not None:
            # Everything is in the journal already: down only makes it durable on disk.
            try:
                self.durability.close()
            except Exception as exc:
                errors.append(exc)
            durability.ACTIVE = None
            self.server.durability = None
        parts: tuple[tuple[Any, str], ...] = (
            (self.runner, "shutdown"),
            (self.metrics, "stop"),
            (self.alarms, "stop"),
            (self.xray_daemon, "stop"),
        )
        for part, method in parts:
            if part is not None and hasattr(part, method):
                try:
                    getattr(part, method)()
                except Exception as exc:  # keep stopping the rest
                    errors.append(exc)
        patches.clear_invokers()
        self.server.stop()
        if self._publish:
            self.state.clear()
        self._started = False
        with _active_lock:
            if _active is self:
                _active = None
        if errors:
            raise errors[0]

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- use ---------------------------------------------------------------------------------

    def deploy(
        self, app_dir: str | os.PathLike[str], context: Mapping[str, str] | None = None
    ) -> dict[str, dict[str, str]]:
        """Deploy a CDK app (bootstrap once, cdk deploy --all, reconcile); outputs per stack."""
        from streamline.local.deploy import deploy

        return deploy(Path(app_dir), self.endpoint_url, context)

    def client(self, service: str) -> Any:
        """A boto3 client for this cloud, built once per service and endpoint and shared.

        Building one costs about 100 ms of CPU (the service model and endpoint rules): the demo's
        observation and the tests ask for clients in loops. boto3 clients are safe to share
        between threads; the endpoint is part of the key because a restarted cloud may listen
        on another port.
        """
        key = (service, self.endpoint_url)
        with self._clients_lock:
            built = self._clients.get(key)
            if built is None:
                built = self._clients[key] = make_client(service, self.endpoint_url)
        return built

    def busy(self) -> list[str]:
        """Names of the parts that still have work in flight."""
        parts = []
        for name, engine in (("esm", self.esm), ("async_engine", self.async_engine)):
            if engine is not None and hasattr(engine, "idle") and not engine.idle():
                parts.append(name)
        return parts

    def wait_idle(self, timeout: float = 60.0, poll: float = 0.05) -> None:
        """Block until no mapping and no async invocation has work; TimeoutError names the rest.

        Idle must hold on two polls in a row: a batch finishing can enqueue an async
        invocation a moment later. Function logs are part of the work: when this returns, every
        line the finished invocations printed is in CloudWatch Logs.
        """
        wait_quiet(self.busy, timeout, poll)
        if self.runner is not None and hasattr(self.runner, "flush_logs"):
            self.runner.flush_logs()

    def status(self) -> dict[str, Any]:
        """Functions, mappings (state, position, backlog) and recent errors, as JSON data."""
        lam = self.client("lambda")
        functions = [
            {"name": f["FunctionName"], "runtime": f.get("Runtime"), "handler": f.get("Handler")}
            for page in lam.get_paginator("list_functions").paginate()
            for f in page["Functions"]
        ]
        stats = (
            self.runner.stats() if self.runner is not None and hasattr(self.runner, "stats") else {}
        )
        for fn in functions:
            fn.update(stats.get(fn["name"], {}) or {})
        if self.esm is not None and hasattr(self.esm, "status"):
            mappings = list(self.esm.status())
        else:
            mappings = [
                {
                    "uuid": m["UUID"],
                    "function": m.get("FunctionArn"),
                    "source_arn": m.get("EventSourceArn"),
                    "state": m.get("State"),
                }
                for page in lam.get_paginator("list_event_source_mappings").paginate()
                for m in page["EventSourceMappings"]
            ]
        errors = [
            {"function": name, "error": s.get("last_error")}
            for name, s in stats.items()
            if isinstance(s, dict) and s.get("last_error")
        ]
        errors += [
            {"mapping": m.get("uuid"), "error": m.get("last_error")}
            for m in mappings
            if m.get("last_error")
        ]
        async_status = self.async_engine.status() if self.async_engine is not None else {}
        if async_status.get("last_error"):
            errors.append({"engine": "async", "error": async_status["last_error"]})
        if self.esm is not None and getattr(self.esm, "last_error", None):
            errors.append({"engine": "esm", "error": self.esm.last_error})
        restored = None
        if self.restored is not None:
            restored = {
                "snapshot_seq": self.restored.snapshot_seq,
                "replayed": self.restored.replayed,
                "seconds": round(self.restored.seconds, 3),
                "aborted_executions": self.restored.aborted_executions,
                "warnings": self.restored.warnings,
            }
            errors += [{"engine": "restore", "error": w} for w in self.restored.warnings]
        return {
            "endpoint_url": self.endpoint_url,
            "account": ACCOUNT_ID,
            "region": REGION,
            "functions": functions,
            "mappings": mappings,
            "async": async_status,
            "durability": self.durability.status() if self.durability is not None else None,
            "restored": restored,
            "would_be_denied": DENIALS.as_json(),
            "errors": errors,
            "busy": self.busy(),
        }
