"""FunctionRunner: runs deployed Python functions in warm local execution environments.

Implements :class:`streamline.local.contracts.Invoker`. Each invocation reads the function's
configuration from moto (under the lock, briefly), takes a warm environment of that exact
configuration or starts one (up to reserved concurrency, else a local cap), runs the event, and
gives the environment back - or discards it after a timeout or crash, as AWS does.

Example::

    runner = FunctionRunner(backends, state_dir, "http://localhost:4566")
    result = runner.invoke("my-function", b'{"hello": "world"}')
    runner.shutdown()
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamline.local.contracts import (
    Clock,
    InvokeResult,
    SystemClock,
    Throttled,
    UnsupportedFunction,
)
from streamline.local.identities import IDENTITIES
from streamline.local.runtime.config import FunctionConfig, is_node_runtime, read_function_config
from streamline.local.runtime.environment import (
    ExecutionEnvironment,
    InvocationOutcome,
    node_launcher,
)
from streamline.local.runtime.layers import CodeStore, is_public_powertools_layer
from streamline.local.runtime.logs import LogShipper

if TYPE_CHECKING:
    from streamline.local.metrics import MetricsPublisher

__all__ = ["DEFAULT_CONCURRENCY_CAP", "FunctionRunner", "new_trace_header"]

_log = logging.getLogger(__name__)

#: Variables a function's configuration cannot override (AWS refuses them at deploy time).
_RESERVED = frozenset(
    {
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_REGION",
        "_HANDLER",
        "AWS_EXECUTION_ENV",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",  # botocore reads it before AWS_SESSION_TOKEN
    }
)
#: Environments per function when no reserved concurrency is set (AWS: the account's 1000).
#: Above it, invocations wait for a free environment rather than being throttled.
DEFAULT_CONCURRENCY_CAP = 10
#: How long an unreserved invocation waits for a free environment before it is throttled.
_QUEUE_WAIT = 60.0


def new_trace_header() -> str:
    """A new sampled X-Ray trace header (``Root=1-<epoch hex>-<24 hex>;Parent=..;Sampled=1``)."""
    return (
        f"Root=1-{int(time.time()):08x}-{random.getrandbits(96):024x};"
        f"Parent={random.getrandbits(64):016x};Sampled=1"
    )


def _trace_for(config: FunctionConfig, incoming: str | None) -> str | None:
    """The ``_X_AMZN_TRACE_ID`` of an invocation.

    Active tracing samples every invocation (a new trace unless one came in); PassThrough only
    passes an incoming header through.

    What AWS does with an incoming header depends on the caller: Invoke (sync and async) and
    Step Functions continue the caller's trace; Kinesis and DynamoDB Streams mappings have no
    header (a new trace per batch). For SQS mappings AWS documents trace *linking*: the batch
    gets a new trace, linked to its messages' AWSTraceHeader traces. Our SQS mapping passes the
    first message's header instead, so the batch continues that trace. Code that must follow a
    message's trace on AWS records its work there itself (``orderflow.tracing``), and skips
    the trace its invocation already belongs to, so it is right under either behaviour.
    """
    if config.tracing_mode == "Active":
        if not incoming:
            return new_trace_header()
        parts = dict(p.split("=", 1) for p in incoming.split(";") if "=" in p)
        if "Root" not in parts:
            return new_trace_header()
        parts["Sampled"] = "1"
        parts.setdefault("Parent", f"{random.getrandbits(64):016x}")
        return ";".join(f"{k}={v}" for k, v in parts.items())
    return incoming or None


def _own_segment(trace_id: str, incoming: str | None) -> tuple[str, str, str | None]:
    """``(header for the function, its segment's id, the caller's segment id or None)``.

    The header's ``Parent`` becomes the function segment's id; the caller is the incoming
    header's ``Parent`` (None for a trace that starts here).
    """
    parts = dict(p.split("=", 1) for p in trace_id.split(";") if "=" in p)
    given = dict(p.split("=", 1) for p in (incoming or "").split(";") if "=" in p)
    caller = given.get("Parent") if "Root" in given else None
    segment_id = f"{random.getrandbits(64):016x}"
    parts["Parent"] = segment_id
    return ";".join(f"{k}={v}" for k, v in parts.items()), segment_id, caller


@dataclass
class _FunctionStats:
    cold_starts: int = 0
    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    last_error: str | None = None


@dataclass
class _Pool:
    """The environments of one function version (all configurations, current and retired)."""

    idle: list[ExecutionEnvironment] = field(default_factory=list)
    busy: int = 0
    stats: _FunctionStats = field(default_factory=_FunctionStats)


class FunctionRunner:
    """Runs functions in local execution environments (implements ``contracts.Invoker``).

    Thread-safe: any number of threads may invoke at once.
    """

    #: Set by LocalCloud: receives AWS/Lambda's per-invocation metrics.
    metrics: MetricsPublisher | None = None
    #: Set by LocalCloud: its X-Ray daemon's ``127.0.0.1:PORT`` (functions send segments there).
    xray_address: str | None = None

    def __init__(
        self,
        backends: Any,
        state_dir: Path,
        endpoint_url: str,
        clock: Clock | None = None,
        *,
        concurrency_cap: int = DEFAULT_CONCURRENCY_CAP,
        idle_timeout: float = 600.0,
    ) -> None:
        self._backends = backends
        self._state_dir = Path(state_dir)
        self._endpoint_url = endpoint_url
        # The clock is only for scheduling; durations and deadlines are real time, because the
        # function runs in real time.
        self._clock = clock or SystemClock()
        self._concurrency_cap = concurrency_cap
        self._idle_timeout = idle_timeout
        self._code = CodeStore(self._state_dir)
        self._logs = LogShipper(backends)
        self._pools: dict[str, _Pool] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="lambda-reaper", daemon=True)
        self._reaper.start()

    # -- Invoker -------------------------------------------------------------------------------

    def invoke(
        self,
        function: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        trace_header: str | None = None,
    ) -> InvokeResult:
        """Run ``function`` (name or ARN) synchronously on ``payload`` (JSON bytes).

        Raises ``FunctionNotFound``, ``UnsupportedFunction`` or ``Throttled``; a function error or
        timeout is a result with ``function_error="Unhandled"``.
        """
        config = read_function_config(self._backends, function, qualifier)
        pool_key = f"{config.arn}:{config.version}"
        request_id = str(uuid.uuid4())
        try:
            env, cold = self._acquire(pool_key, config)
        except Throttled:
            if self.metrics is not None:
                self.metrics.throttle(config.name)
            raise
        concurrent = self._pools[pool_key].busy
        healthy = False
        trace_id = _trace_for(config, trace_header)
        segment_id = caller = None
        if config.tracing_mode == "Active" and trace_id:
            # As in Lambda: the function's subsegments hang under the function's segment.
            trace_id, segment_id, caller = _own_segment(trace_id, trace_header)
        started = time.time()
        try:
            invoked_arn = _invoked_arn(config, function, qualifier)
            outcome: InvocationOutcome = env.invoke(
                request_id, payload, invoked_arn=invoked_arn, trace_id=trace_id
            )
            healthy = outcome.healthy
        finally:
            self._release(pool_key, env, healthy)
        if config.tracing_mode == "Active" and trace_id:
            self._put_segment(config, trace_id, request_id, started, outcome, segment_id, caller)
        with self._cond:
            stats = self._pools[pool_key].stats
            stats.invocations += 1
            if outcome.function_error:
                stats.errors += 1
                stats.last_error = outcome.payload[:500].decode("utf-8", errors="replace")
        if self.metrics is not None:
            self.metrics.invocation(
                config.name,
                duration_ms=outcome.duration_ms,
                error=outcome.function_error is not None,
                concurrent=concurrent,
            )
        return InvokeResult(
            request_id=request_id,
            payload=outcome.payload,
            function_error=outcome.function_error,
            executed_version=config.version,
            log_tail=outcome.log_tail,
            duration_ms=outcome.duration_ms,
            init_duration_ms=env.init_duration_ms if cold else None,
            timed_out=outcome.timed_out,
        )

    def shutdown(self) -> None:
        """Kill every environment and stop the background threads (idempotent)."""
        self._stop.set()
        with self._cond:
            self._closed = True
            doomed = [env for pool in self._pools.values() for env in pool.idle]
            for pool in self._pools.values():
                pool.idle.clear()
            self._cond.notify_all()
        for env in doomed:
            env.kill()
        self._logs.close()

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per function (name, with ``:version`` unless $LATEST): environments, cold starts,
        invocations, errors, throttles and the last error's payload."""
        with self._cond:
            result = {}
            for key, pool in self._pools.items():
                arn, version = key.rsplit(":", 1)
                name = arn.rsplit(":", 1)[-1] + ("" if version == "$LATEST" else f":{version}")
                result[name] = {
                    "function_arn": arn,
                    "environments": len(pool.idle) + pool.busy,
                    "cold_starts": pool.stats.cold_starts,
                    "invocations": pool.stats.invocations,
                    "errors": pool.stats.errors,
                    "throttles": pool.stats.throttles,
                    "last_error": pool.stats.last_error,
                }
            return result

    def flush_logs(self) -> None:
        """Write queued log lines to CloudWatch Logs now (tests and ``wait_idle`` use it)."""
        self._logs.flush()

    def _put_segment(
        self,
        config: FunctionConfig,
        trace_id: str,
        request_id: str,
        started: float,
        outcome: InvocationOutcome,
        segment_id: str | None = None,
        caller: str | None = None,
    ) -> None:
        """Record the function's X-Ray segment, as Lambda does with active tracing."""
        parts = dict(p.split("=", 1) for p in trace_id.split(";") if "=" in p)
        segment = {
            "trace_id": parts.get("Root"),
            "id": segment_id or f"{random.getrandbits(64):016x}",
            "name": config.name,
            "origin": "AWS::Lambda::Function",
            "start_time": started,
            "end_time": time.time(),
            "aws": {"function_arn": config.arn, "request_id": request_id},
        }
        if caller:
            segment["parent_id"] = caller
        if outcome.function_error:
            segment["fault" if outcome.timed_out else "error"] = True
        try:
            with self._backends.lock:
                self._backends.xray().process_segment(json.dumps(segment))
        except Exception:  # tracing must never fail an invocation
            _log.warning("could not record the X-Ray segment of %s", request_id, exc_info=True)

    # -- environments --------------------------------------------------------------------------

    def _acquire(self, pool_key: str, config: FunctionConfig) -> tuple[ExecutionEnvironment, bool]:
        """A warm environment for ``config``, or a new one (cold) when concurrency allows."""
        limit = config.reserved_concurrency
        waited_until = time.monotonic() + _QUEUE_WAIT
        retired: list[ExecutionEnvironment] = []
        env: ExecutionEnvironment | None
        with self._cond:
            if self._closed:
                raise RuntimeError("the function runner is shut down")
            pool = self._pools.setdefault(pool_key, _Pool())
            while True:
                # Environments of an older configuration or code are retired, never reused.
                retired.extend(e for e in pool.idle if e.key != config.environment_key)
                pool.idle = [e for e in pool.idle if e.key == config.environment_key]
                cap = self._concurrency_cap if limit is None else limit
                if pool.busy < cap:
                    pool.busy += 1
                    if pool.idle:
                        env = pool.idle.pop()  # most recently used: the warmest
                    else:
                        pool.stats.cold_starts += 1
                        env = None
                    break
                # Reserved concurrency is a hard limit: AWS throttles at once.
                remaining = waited_until - time.monotonic()
                if limit is not None or remaining <= 0:
                    pool.stats.throttles += 1
                    self._kill_later(retired)
                    raise Throttled(
                        f"Rate Exceeded. (function {config.name}, concurrency limit {cap})"
                    )
                self._cond.wait(min(remaining, 1.0))
        self._kill_later(retired)
        if env is not None:
            return env, False
        try:
            return self._start(config), True
        except BaseException:
            with self._cond:
                pool.busy -= 1
                self._cond.notify_all()
            raise

    def _release(self, pool_key: str, env: ExecutionEnvironment, healthy: bool) -> None:
        keep = False
        with self._cond:
            pool = self._pools[pool_key]
            pool.busy -= 1
            if healthy and env.alive and not self._closed:
                pool.idle.append(env)
                keep = True
            self._cond.notify_all()
        if not keep:
            env.kill()

    @staticmethod
    def _kill_later(envs: list[ExecutionEnvironment]) -> None:
        for env in envs:
            env.kill()
        envs.clear()

    def _start(self, config: FunctionConfig) -> ExecutionEnvironment:
        if not config.code:
            raise UnsupportedFunction(
                f"function {config.name} has no code the local cloud can read (empty package)"
            )
        task_root = self._code.function_code(config.code_sha, config.code)
        base_env = self._base_environment(config)
        if is_node_runtime(config.runtime):
            node = shutil.which("node")
            if node is None:
                raise UnsupportedFunction(
                    f"function {config.name} uses {config.runtime}, and this machine has no node"
                )
            # NODE_PATH in AWS's order: the layers' node_modules, then the runtime's SDK.
            module_paths = [*self._layer_paths(config, node=True), self._code.node_sdk()]
            base_env["NODE_PATH"] = os.pathsep.join(str(p) for p in module_paths)
            return ExecutionEnvironment(
                config,
                sys_path=[task_root],
                launcher=node_launcher(node, config.memory_size),
                task_root=task_root,
                base_env=base_env,
                logs=self._logs,
            )
        sys_path = [task_root, *self._layer_paths(config), self._code.runtime_packages()]
        return ExecutionEnvironment(
            config,
            sys_path=sys_path,
            task_root=task_root,
            base_env=base_env,
            logs=self._logs,
        )

    def _layer_paths(self, config: FunctionConfig, *, node: bool = False) -> list[Path]:
        paths: list[Path] = []
        for layer in config.layers:
            if layer.code is not None and layer.sha:
                paths.extend(self._code.moto_layer(layer.sha, layer.code, node=node))
            elif is_public_powertools_layer(layer.arn) and not node:
                paths.extend(self._code.powertools_layer())
            else:
                raise UnsupportedFunction(
                    f"function {config.name} uses layer {layer.arn}, which the local cloud "
                    "cannot provide (publish it with PublishLayerVersion, or use a public "
                    "Powertools layer)"
                )
        return paths

    def _base_environment(self, config: FunctionConfig) -> dict[str, str]:
        """The variables AWS sets in every environment (and Node.js ones), then the function's."""
        region = self._backends.region
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_VERSION": config.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_size),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
            "_HANDLER": config.handler,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_XRAY_DAEMON_ADDRESS": self.xray_address or "127.0.0.1:2000",
            "AWS_ENDPOINT_URL": self._endpoint_url,
            # The execution role's credentials, one key per function: calls are attributed by
            # it (streamline.local.identities), as CloudTrail attributes them on AWS.
            **IDENTITIES.for_function(config.name, config.role).environment(),
        }
        if is_node_runtime(config.runtime):
            env.update(
                {
                    # An IP, not "localhost": the JavaScript SDK then addresses S3 path-style
                    # (virtual hosts under localhost do not resolve here).
                    "AWS_ENDPOINT_URL": self._endpoint_url.replace("//localhost:", "//127.0.0.1:"),
                    "AWS_NODEJS_CONNECTION_REUSE_ENABLED": "1",
                    # The SDK's warning that a later release needs a newer Node.js.
                    "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED": "true",
                    # A failing npm first: CDK's AwsCustomResource would otherwise `npm install`
                    # the latest SDK into /tmp on every cold start; it falls back to the runtime's.
                    "PATH": os.pathsep.join([str(self._code.no_npm()), env["PATH"]]),
                }
            )
        # The function's own variables win except over the runtime's reserved ones (AWS refuses
        # those at deploy time; here the runtime's values are simply kept).
        env.update({k: v for k, v in config.environment if k not in _RESERVED})
        return env

    def _reap(self) -> None:
        """Stop environments idle for longer than ``idle_timeout`` (AWS recycles them too)."""
        interval = min(30.0, max(0.5, self._idle_timeout / 4))
        while not self._stop.wait(interval):
            cutoff = time.monotonic() - self._idle_timeout
            doomed: list[ExecutionEnvironment] = []
            with self._cond:
                for pool in self._pools.values():
                    doomed.extend(e for e in pool.idle if e.last_used < cutoff or not e.alive)
                    pool.idle = [e for e in pool.idle if e.last_used >= cutoff and e.alive]
            for env in doomed:
                env.kill()


def _invoked_arn(config: FunctionConfig, function: str, qualifier: str | None) -> str:
    """The ARN the caller used, as ``context.invoked_function_arn`` reports it."""
    if function.startswith("arn:"):
        return function
    name, _, inline = function.partition(":")
    del name
    qualifier = inline or qualifier
    return f"{config.arn}:{qualifier}" if qualifier else config.arn
