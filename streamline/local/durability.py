"""Crash-consistent state: what the local cloud acknowledged survives a SIGKILL at any moment.

How: every change to moto's state is journaled (``streamline.local.journal``) before anyone can
see it, and a restart replays the journal over the last snapshot.

- **API requests.** Each request that can change state (anything but reads: Get*, List*,
  Describe*, Query, Scan, ...) is journaled by the server while it still holds moto's lock, after
  moto ran it and before the response leaves. So a response a client saw, and a record an engine
  read, are always in the journal.
- **The engines' own changes** that bypass HTTP (the SQS poller's receives and deletes, a stream
  mapping's on-failure records, a Step Functions execution's end) go through :meth:`run`, which
  journals them the same way.
- **Asynchronous events** accepted by the async engine, and their settling, are journaled too, so
  an accepted ``InvocationType=Event`` survives a crash.
- **Determinism.** moto draws ids from one seedable random source and stamps times from the
  clock. Each journaled change runs with the random source seeded from its own entry and is
  replayed with the same seed under the clock it saw (``time-machine``), so a replayed queue,
  stream, table or stack comes back with the same ids, sequence numbers and names.
- **Replay has no side effects.** While replaying, function invocations do nothing (their own
  changes are journaled entries of their own), API calls are not counted, and a Step Functions
  execution is restored, not run: one that had ended ends the same way (its history kept), one
  still running when the cloud died ends ABORTED with that cause.
- **Snapshots** bound the replay: every ``snapshot_every`` entries the cloud forks, and the child
  writes moto's state as it stood at the fork (copy-on-write: the parent pauses only for the
  fork itself); then the journal segments it covers are deleted. ``local down`` only flushes
  the journal, at any state size.

Not journaled, so a crash may lose the last moments of them: function log lines, the metrics and
alarm states the local cloud derives, X-Ray segments (all observability, rebuilt as the pipeline
runs). ESM checkpoints are files of their own, written atomically; on start they are checked
against the restored streams and moved back to what exists (never past it).

Why one module of ~600 lines: what is journaled, how it is replayed and when a snapshot may cut
the journal are one protocol; split across files, a change to one side (a new kind of entry, a
new replay rule) could land without the other. The journal's file format lives apart
(``streamline.local.journal``).

Example::

    durability = Durability(state_dir, backends, app)   # app: moto's WSGI app
    report = durability.restore()                        # before the server starts
    durability.open()
    messages = durability.run("sqs.receive", queue_name, 10, 30)
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamline.local import persistence
from streamline.local.journal import Entry, Journal, SyncPolicy

__all__ = [
    "Durability",
    "Mutations",
    "Passthrough",
    "RestoreReport",
    "change_at",
    "change_time",
    "is_read_only",
    "operation",
    "replaying",
]

_log = logging.getLogger(__name__)

SNAPSHOT_FILE = persistence.STATE_FILE
JOURNAL_DIR = "journal"

# -- which requests change nothing -------------------------------------------------------------

_READ_ONLY_ACTION = re.compile(
    r"^(Get|List|Describe|Query|Scan|BatchGet|Head|Filter|Search|Select|Lookup|Test|Validate"
    r"|Check|Estimate|Preview|Simulate)"
)
# Actions whose names read like reads but change state (receipts, counters, visibility).
_CHANGING_READS = frozenset({"GetQueueUrl", "GetShardIterator", "GetRecords"})


def _action(method: str, path: str, query: str, target: str | None, body: bytes) -> str | None:
    if target:
        return target.rsplit(".", 1)[-1]
    for source in (query, body[:512].decode("latin-1") if body else ""):
        match = re.search(r"(?:^|&)Action=([A-Za-z]+)", source)
        if match:
            return match.group(1)
    return None


def is_read_only(method: str, path: str, query: str, target: str | None, body: bytes) -> bool:
    """Whether a request can leave moto's state as it was (then it is not journaled).

    GET and HEAD read (S3 objects, Lambda's REST reads); JSON and query APIs read when the
    action says so. ``GetShardIterator``/``GetRecords`` read too (iterators are self-contained
    tokens in moto), and so does ``GetQueueUrl``.
    """
    if method in ("GET", "HEAD", "OPTIONS"):
        return True
    action = _action(method, path, query, target, body)
    if action is None:
        return False
    if action in _CHANGING_READS:
        return True
    return bool(_READ_ONLY_ACTION.match(action))


# -- replay mode ---------------------------------------------------------------------------------

_replaying = threading.local()
_change = threading.local()


def change_time() -> datetime:
    """The time of the journaled change running on this thread (naive UTC, as moto's clock).

    moto stamps some identifiers with the time (a DynamoDB stream's label is in its ARN). The
    journal records the time before the change runs and replays it at exactly that time; a
    patched identifier reads this clock, so it comes out the same both times. Outside a
    journaled change it is simply now.
    """
    at = getattr(_change, "at", None)
    moment = datetime.fromtimestamp(at, tz=UTC) if at is not None else datetime.now(UTC)
    return moment.replace(tzinfo=None)


@contextmanager
def change_at(at: float) -> Iterator[None]:
    """Run a journaled change at ``at`` (see :func:`change_time`)."""
    previous = getattr(_change, "at", None)
    _change.at = at
    try:
        yield
    finally:
        _change.at = previous


#: The running cloud's durability (one cloud per process): patched moto code that ends a Step
#: Functions execution journals through it. None when nothing is journaled.
ACTIVE: Durability | None = None


def replaying() -> bool:
    """True while the journal is being replayed (then nothing may have a side effect)."""
    return bool(getattr(_replaying, "on", False))


@contextmanager
def _replay_mode() -> Iterator[None]:
    _replaying.on = True
    try:
        yield
    finally:
        _replaying.on = False


# -- stack operations that wait for custom resources ------------------------------------------

#: Custom-resource answers (the bodies PUT to a ResponseURL) in the journal being replayed, by
#: RequestId. Live, a stack operation waited for its custom resource's answer, whose journal
#: entry therefore comes *after* the operation's; replayed, the operation finds it here.
_CFN_ANSWERS: dict[str, dict[str, Any]] = {}
_held = 0
_held_lock = threading.Lock()


def recorded_cfn_answer(request_id: str) -> dict[str, Any] | None:
    return _CFN_ANSWERS.get(request_id)


def _collect_cfn_answers(entries: Iterator[Entry]) -> None:
    import json

    _CFN_ANSWERS.clear()
    for entry in entries:
        if entry.kind != "http":
            continue
        request = entry.data[1]
        if "/cfnresponse" not in str(request["environ"].get("PATH_INFO", "")):
            continue
        try:
            body = json.loads(request["body"])
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("RequestId"):
            _CFN_ANSWERS[str(body["RequestId"])] = body


@contextmanager
def snapshots_held() -> Iterator[None]:
    """No snapshot while this runs: a stack operation that released moto's lock to wait for a
    custom resource is half applied, and its journal entry is already behind the snapshot."""
    global _held
    with _held_lock:
        _held += 1
    try:
        yield
    finally:
        with _held_lock:
            _held -= 1


def _snapshots_allowed() -> bool:
    with _held_lock:
        return _held == 0


# -- the engines' own changes -------------------------------------------------------------------

Operation = Callable[..., Any]
_OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable[[Operation], Operation]:
    """Register a change an engine makes to moto's state directly: ``fn(backends, *args)``.

    Registered by name so a journal entry names it and replay finds it again.
    """

    def register(fn: Operation) -> Operation:
        _OPERATIONS[name] = fn
        return fn

    return register


class Mutations:
    """How engines change moto's state: :class:`Passthrough` or :class:`Durability`."""

    def run(self, name: str, *args: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def record_async(self, op: str, data: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Passthrough(Mutations):
    """No journal (a cloud without ``persist``): run each change under the lock, that is all."""

    def __init__(self, backends: Any) -> None:
        self.backends = backends

    def run(self, name: str, *args: Any) -> Any:
        with self.backends.lock:
            return _OPERATIONS[name](self.backends, *args)

    def record_async(self, op: str, data: Any) -> None:
        return None


# -- the durable store ---------------------------------------------------------------------------


@dataclass
class RestoreReport:
    """What ``restore`` found: the snapshot's seq, the entries replayed, and what it repaired."""

    snapshot_seq: int = 0
    replayed: int = 0
    seconds: float = 0.0
    aborted_executions: list[str] = field(default_factory=list)
    async_events: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Durability(Mutations):
    """The journal, the snapshots and the replay of one state dir (see the module docstring)."""

    def __init__(
        self,
        state_dir: Path,
        backends: Any,
        app: Callable[..., Any] | None = None,
        *,
        sync: SyncPolicy = "interval",
        snapshot_every: int = 5_000,
        snapshot_at_close: int = 1_000,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.backends = backends
        self.app = app
        self.journal = Journal(self.state_dir / JOURNAL_DIR, sync=sync)
        self.snapshot_every = snapshot_every
        self.snapshot_at_close = snapshot_at_close
        self._seed = 0
        self._seed_lock = threading.Lock()
        self._since_snapshot = 0
        self._snapshotting = threading.Lock()
        self._child: int | None = None
        #: Pending asynchronous events: request id -> event (kept for snapshots).
        self._async: dict[str, Any] = {}
        self._async_lock = threading.Lock()
        self.snapshots = 0
        self.last_snapshot_error: str | None = None

    # -- start ---------------------------------------------------------------------------------

    def restore(self) -> RestoreReport:
        """Load the snapshot and replay the journal after it (before anything else runs)."""
        from moto.moto_api._internal.models import moto_api_backend

        # Registers the engines' operations (destination deliveries; the ESM pollers' changes).
        import streamline.local.destinations
        import streamline.local.esm  # noqa: F401

        started = time.monotonic()
        report = RestoreReport()
        if self.journal.root.exists() and not self.journal.root.is_dir():
            raise persistence.PersistenceError(
                f"{self.journal.root} should be the journal folder but is a file; "
                "remove it to start empty"
            )
        report.warnings += self.journal.damage()
        # From nothing: what this process held before (an earlier cloud) is not this state.
        with self.backends.lock:
            moto_api_backend.reset()
        snapshot = self.state_dir / SNAPSHOT_FILE
        if snapshot.exists():
            meta = persistence.load(snapshot, self.backends.lock)
            report.snapshot_seq = int(meta.get("seq", 0))
            self._seed = int(meta.get("seed", 0))
            for event in meta.get("async", []):
                self._async[_event_id(event)] = event
        last = report.snapshot_seq
        _collect_cfn_answers(self.journal.read(after=report.snapshot_seq))
        with _replay_mode(), self.backends.lock:
            for entry in self.journal.read(after=report.snapshot_seq):
                if entry.seq != last + 1:
                    report.warnings.append(
                        f"journal gap: entry {entry.seq} follows {last}; replay stopped there"
                    )
                    break
                self._replay(entry)
                last = entry.seq
                report.replayed += 1
            report.aborted_executions = _abort_unfinished_executions(self.backends)
        self.journal.seq = last
        self._since_snapshot = report.replayed
        report.async_events = list(self._async.values())
        report.seconds = time.monotonic() - started
        return report

    def open(self) -> None:
        """Start journaling after what was restored."""
        self.journal.open(after=self.journal.seq)

    def close(self) -> None:
        """Flush and close the journal (``local down``). With more than ``snapshot_at_close``
        entries since the last snapshot, take one first: writing the state (a fork, well under
        a second at the demo's size) is cheaper than the next start replaying them."""
        if self._since_snapshot >= self.snapshot_at_close:
            try:
                self.snapshot()
            except Exception as exc:  # the journal still holds everything
                _log.warning("snapshot at close failed: %s", exc)
        self.journal.close()
        if self._child is not None:
            self._wait_child()

    # -- journaling ----------------------------------------------------------------------------

    def next_seed(self) -> int:
        """Seed moto's random source for the change about to run; recorded with its entry."""
        from moto.moto_api._internal import mock_random

        with self._seed_lock:
            self._seed += 1
            seed = self._seed
        mock_random.seed(seed)
        return seed

    def record_http(self, seed: int, at: float, request: dict[str, Any]) -> None:
        """Journal an API request moto is about to run (call with moto's lock held, then run it
        inside :func:`change_at` ``(at)``)."""
        self.journal.append("http", at, (seed, request))
        self._after_append()

    def run(self, name: str, *args: Any) -> Any:
        """Run a registered engine change under the lock, journaled (see the module docstring)."""
        with self.backends.lock:
            seed = self.next_seed()
            at = time.time()
            # Written ahead: a journal that cannot take it refuses the change before it runs.
            self.journal.append("call", at, (seed, name, args))
            with change_at(at):
                result = _OPERATIONS[name](self.backends, *args)
        self._after_append()
        return result

    def record_async(self, op: str, data: Any) -> None:
        """Journal an async event accepted (``accept``: the event) or settled (``done``: its id)."""
        with self._async_lock:
            if op == "accept":
                self._async[_event_id(data)] = data
            else:
                self._async.pop(str(data), None)
            self.journal.append("async", time.time(), (op, data))
        self._after_append()

    def _after_append(self) -> None:
        self._since_snapshot += 1
        if self._since_snapshot >= self.snapshot_every and not self._snapshotting.locked():
            self._since_snapshot = 0
            threading.Thread(target=self.snapshot, name="snapshot", daemon=True).start()

    # -- replay --------------------------------------------------------------------------------

    def _replay(self, entry: Entry) -> None:
        import time_machine
        from moto.moto_api._internal import mock_random

        with time_machine.travel(entry.at, tick=False), change_at(entry.at):
            if entry.kind == "http":
                seed, request = entry.data
                mock_random.seed(seed)
                self._seed = max(self._seed, seed)
                self._replay_http(request)
            elif entry.kind == "call":
                seed, name, args = entry.data
                mock_random.seed(seed)
                self._seed = max(self._seed, seed)
                try:
                    _OPERATIONS[name](self.backends, *args)
                except Exception as exc:  # it raised the first time too: same state either way
                    _log.debug("replayed %s raised %s", name, exc)
            elif entry.kind == "async":
                op, data = entry.data
                if op == "accept":
                    self._async[_event_id(data)] = data
                else:
                    self._async.pop(str(data), None)

    def _replay_http(self, request: dict[str, Any]) -> None:
        if self.app is None:
            raise RuntimeError("replaying API requests needs moto's WSGI app")
        environ = dict(request["environ"])
        body = request["body"]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.setdefault("wsgi.url_scheme", "http")
        environ.setdefault("wsgi.errors", io.StringIO())
        environ.setdefault("wsgi.version", (1, 0))
        environ.setdefault("wsgi.multithread", True)
        environ.setdefault("wsgi.multiprocess", False)
        environ.setdefault("wsgi.run_once", False)

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            return lambda data: None

        try:
            for _ in self.app(environ, start_response):
                pass
        except Exception as exc:  # as it did the first time
            _log.debug("replayed request raised %s", exc)

    # -- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> bool:
        """Write moto's state as it stands, in a forked child; True when it was written.

        The parent holds moto's lock only for the fork. The journal rotates at the same moment,
        so the snapshot covers exactly the segments before the new one, which are then deleted.
        """
        if not _snapshots_allowed() or not self._snapshotting.acquire(blocking=False):
            return False
        try:
            with self.backends.lock, self._async_lock:
                seq = self.journal.rotate()
                meta = {"seq": seq, "seed": self._seed, "async": list(self._async.values())}
                path = self.state_dir / SNAPSHOT_FILE
                pid = os.fork()
                if pid == 0:  # the child: write and leave, touching nothing shared
                    code = 0
                    try:
                        persistence.save(path, _NoLock(), meta=meta)
                    except BaseException:
                        code = 1
                    os._exit(code)
                self._child = pid
            ok = self._wait_child()
            if ok:
                self.journal.drop_through(seq)
                self.snapshots += 1
            return ok
        finally:
            self._snapshotting.release()

    def _wait_child(self) -> bool:
        pid, self._child = self._child, None
        if pid is None:
            return False
        _, status = os.waitpid(pid, 0)
        ok = os.waitstatus_to_exitcode(status) == 0
        self.last_snapshot_error = None if ok else f"snapshot child exited with {status}"
        return ok

    def status(self) -> dict[str, Any]:
        return {
            "journal_seq": self.journal.seq,
            "journal_bytes": self.journal.size(),
            "sync": self.journal.sync,
            "snapshots": self.snapshots,
            "since_snapshot": self._since_snapshot,
            "last_snapshot_error": self.last_snapshot_error,
        }


class _NoLock:
    """The child of a fork already owns every lock it needs (the parent held them to fork)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _event_id(event: Any) -> str:
    return str(getattr(event, "request_id", event))


def _executions(backends: Any) -> list[Any]:
    backend = backends.stepfunctions()
    return [
        execution
        for machine in getattr(backend, "state_machines", [])
        for execution in getattr(machine, "executions", [])
    ]


def _abort_unfinished_executions(backends: Any) -> list[str]:
    """Executions the crash interrupted end ABORTED, with that cause (never RUNNING forever)."""
    from datetime import UTC, datetime

    from moto.stepfunctions.parser.api import ExecutionStatus

    aborted = []
    for execution in _executions(backends):
        if execution.exec_status == ExecutionStatus.RUNNING and execution.exec_worker is None:
            execution.exec_status = ExecutionStatus.ABORTED
            execution.stop_date = datetime.now(UTC)
            execution.error = "States.Runtime"
            execution.cause = "the local cloud stopped while this execution ran; start it again"
            aborted.append(str(execution.exec_arn))
    return aborted


@operation("sfn.ended")
def _sfn_ended(
    backends: Any,
    arn: str,
    status: Any,
    output: Any,
    error: Any,
    cause: Any,
    stop_date: Any,
    history: Any,
) -> None:
    """How an execution ended (journaled by its worker; replay restores it without running)."""
    for execution in _executions(backends):
        if str(execution.exec_arn) == arn:
            execution.exec_status = status
            execution.output = output
            execution.error = error
            execution.cause = cause
            execution.stop_date = stop_date
            execution.restored_history = history
            return


def dumps_request(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    """What replay needs of a WSGI request: method, path, query, headers and body."""
    kept = {
        key: value
        for key, value in environ.items()
        if isinstance(value, str)
        and (
            key.startswith("HTTP_")
            or key
            in (
                "REQUEST_METHOD",
                "PATH_INFO",
                "QUERY_STRING",
                "CONTENT_TYPE",
                "SERVER_NAME",
                "SERVER_PORT",
                "SERVER_PROTOCOL",
                "SCRIPT_NAME",
                "RAW_URI",
                "REQUEST_URI",
            )
        )
    }
    return {"environ": kept, "body": body}


# -- the operations engines run ----------------------------------------------------------------
