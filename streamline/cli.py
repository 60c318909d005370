"""The `streamline` command line: `streamline local ...`, and the ops commands logs/alarms/traces.

Every failure a user can cause (bad arguments, no cloud running, port in use, a stale pid file)
prints one line and exits 2; tracebacks are for bugs.

Example::

    streamline local up --detach          # background cloud on :4566, state in .streamline/local
    eval "$(streamline local env)"        # point the AWS CLI / SDKs at it
    streamline local deploy               # cdk deploy this app into it
    streamline local status
    streamline logs ingest --follow       # CloudWatch Logs of a pipeline function, local or AWS
    streamline alarms                     # alarm states and transitions
    streamline traces [TRACE_ID]          # recent traces, or one as a tree
    streamline local down
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from streamline.arguments import port
from streamline.local.state import (
    DEFAULT_STATE_DIR,
    EndpointInfo,
    StaleStateError,
    StateDir,
    StateDirError,
)

__all__ = ["CliError", "main"]

DEFAULT_PORT = 4566
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the whole usage block; one line names the problem and the fix.
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _state(args: argparse.Namespace) -> StateDir:
    try:
        return StateDir(args.state_dir)
    except OSError as exc:  # an unresolvable path (a loop, too long)
        raise CliError(f"cannot use state dir {args.state_dir}: {exc.strerror or exc}") from None


def _origin(text: str) -> str:
    """An Origin as browsers send it: scheme://host[:port], nothing after it, never '*'."""
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", text) or text.endswith(":"):
        raise argparse.ArgumentTypeError(
            f"must be scheme://host[:port] as a browser sends it, got {text[:80]!r}"
        )
    return text


def _running(state: StateDir) -> EndpointInfo:
    try:
        info = state.running()
    except StaleStateError as exc:
        raise CliError(str(exc)) from None
    if info is None:
        raise CliError(
            f"no local cloud is running (state dir {state.root}); start one with "
            "`streamline local up --detach`"
        )
    return info


def _answers(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/_streamline/status", timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _clean_stale(state: StateDir) -> None:
    try:
        state.running()
    except StaleStateError:
        pid = state.read_pid()
        state.clear()
        print(
            f"streamline: removed stale state of a cloud that is gone (pid {pid})", file=sys.stderr
        )


def _check_can_start(state: StateDir, port: int) -> None:
    _clean_stale(state)
    info = state.running()
    if info is not None:
        raise CliError(f"a local cloud is already running at {info.endpoint_url} (pid {info.pid})")
    from streamline.local.server import port_is_free

    if port and not port_is_free(port):
        raise CliError(f"port {port} on 127.0.0.1 is already in use (choose another with --port)")


def cmd_up(args: argparse.Namespace) -> int:
    state = _state(args)
    state.ensure()  # a file, /proc, no permission: one line now, before anything starts
    _check_can_start(state, args.port)
    if args.fresh:
        state.forget_saved_state()
    if args.detach:
        return _up_detached(state, args.port, args.allow_origin)
    from streamline.local.cloud import LocalCloud
    from streamline.local.journal import JournalError
    from streamline.local.persistence import PersistenceError
    from streamline.local.server import PortInUseError

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # Persistent: `local down` saves what the cloud holds and the next `local up` resumes it.
    cloud = LocalCloud(
        port=args.port,
        state_dir=state.root,
        publish=True,
        persist=True,
        allowed_origins=frozenset(args.allow_origin),
    )
    try:
        cloud.start()
    except PortInUseError as exc:
        raise CliError(str(exc.strerror)) from None
    except PersistenceError as exc:
        raise CliError(f"{exc} (or start with --fresh)") from None
    except JournalError as exc:
        raise CliError(str(exc)) from None
    try:
        print(
            f"streamline local cloud at {cloud.endpoint_url} (state {state.root}); Ctrl-C to stop",
            flush=True,
        )
        stop.wait()
    finally:
        cloud.stop()
    print("streamline local cloud stopped", flush=True)
    return 0


def _up_detached(state: StateDir, port: int, origins: Sequence[str] = ()) -> int:
    state.ensure()
    log_path = state.logs / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "streamline",
        "local",
        "up",
        "--port",
        str(port),
        "--state-dir",
        str(state.root),
    ]
    for origin in origins:
        cmd += ["--allow-origin", origin]
    with log_path.open("ab") as log:
        # A new session: the cloud outlives this shell's Ctrl-C and this process.
        child = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
            # The child's own one-line error already says "streamline: ".
            last = lines[-1].removeprefix("streamline: ") if lines else ""
            raise CliError(last or f"the local cloud exited ({child.returncode})")
        info = state.read_endpoint()
        if info is not None and info.pid == child.pid and _answers(info.endpoint_url):
            print(f"streamline local cloud at {info.endpoint_url} (pid {info.pid}, log {log_path})")
            return 0
        time.sleep(0.1)
    child.terminate()
    raise CliError(
        f"the local cloud did not answer within {START_TIMEOUT_SECONDS:g} s (see {log_path})"
    )


def cmd_down(args: argparse.Namespace) -> int:
    state = _state(args)
    try:
        info = state.running()
    except StaleStateError:
        _clean_stale(state)
        return 0
    if info is None:
        raise CliError(f"no local cloud is running (state dir {state.root})")
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:  # it ended between the check and the signal
        state.clear()
        print(f"streamline local cloud at {info.endpoint_url} stopped")
        return 0
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    from streamline.local.state import pid_alive

    while pid_alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(info.pid):
        raise CliError(
            f"the local cloud (pid {info.pid}) did not stop within {STOP_TIMEOUT_SECONDS:g} s"
        )
    state.clear()
    print(f"streamline local cloud at {info.endpoint_url} stopped")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    info = _running(_state(args))
    from streamline.local.cloud import TEST_CREDENTIALS

    print(f"export AWS_ENDPOINT_URL={info.endpoint_url}")
    for name, value in TEST_CREDENTIALS.items():
        print(f"export {name}={value}")
    print("export AWS_ACCOUNT_ID_ENDPOINT_MODE=disabled")
    return 0


def _fetch_status(endpoint_url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/_streamline/status", timeout=10) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CliError(f"the local cloud at {endpoint_url} did not answer: {exc}") from None


def cmd_status(args: argparse.Namespace) -> int:
    info = _running(_state(args))
    status = _fetch_status(info.endpoint_url)
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    print(f"endpoint  {status.get('endpoint_url')}  (pid {info.pid})")
    functions = status.get("functions", [])
    print(f"functions ({len(functions)})")
    for fn in functions:
        extra = ", ".join(
            f"{k}={fn[k]}" for k in ("invocations", "errors", "environments") if k in fn
        )
        print(f"  {fn['name']}  {fn.get('runtime')}  {extra}".rstrip())
    mappings = status.get("mappings", [])
    print(f"mappings ({len(mappings)})")
    for m in mappings:
        detail = ", ".join(f"{k}={m[k]}" for k in ("position", "backlog") if m.get(k) is not None)
        print(
            f"  {m.get('uuid')}  {m.get('state')}  {m.get('source_arn')} -> {m.get('function')}"
            f"  {detail}".rstrip()
        )
    durability = status.get("durability")
    if durability:
        print(
            f"journal   seq {durability.get('journal_seq')}, "
            f"{durability.get('journal_bytes', 0) / 1e6:.1f} MB, fsync {durability.get('sync')}, "
            f"{durability.get('snapshots')} snapshots this run"
        )
    restored = status.get("restored")
    if restored:
        print(
            f"restored  snapshot at seq {restored.get('snapshot_seq')} + "
            f"{restored.get('replayed')} journal entries in {restored.get('seconds')} s"
            + (
                f"; {len(restored['aborted_executions'])} executions ended ABORTED"
                if restored.get("aborted_executions")
                else ""
            )
        )
    denied = status.get("would_be_denied", [])
    print(f"would be denied on AWS ({len(denied)})")
    for d in denied:
        resource = d.get("resource") or "(resource not derived: checked by action)"
        print(
            f"  {d.get('function')}  {d.get('action')}  {resource}  x{d.get('count')}"
            f"  ({d.get('reason')})"
        )
    errors = status.get("errors", [])
    print(f"recent errors ({len(errors)})")
    for err in errors:
        where = err.get("function") or err.get("mapping") or err.get("engine")
        print(f"  {where}: {err.get('error')}")
    return 0


def _context(pairs: Sequence[str]) -> dict[str, str]:
    context = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"context must be KEY=VALUE, got {pair!r}")
        context[key] = value
    return context


def cmd_deploy(args: argparse.Namespace) -> int:
    info = _running(_state(args))
    app_dir = Path(args.app_dir)
    if not (app_dir / "cdk.json").exists():
        raise CliError(f"{app_dir.resolve()} has no cdk.json (pass --app-dir)")
    from streamline.local.deploy import DeployError, deploy

    try:
        outputs = deploy(app_dir, info.endpoint_url, _context(args.context), python=args.python)
    except DeployError as exc:
        # The CLI's own error lines are the useful part; keep them, but on stderr.
        print(f"streamline: {exc}", file=sys.stderr)
        return 2
    for stack, values in outputs.items():
        print(stack)
        for key, value in values.items():
            print(f"  {key} = {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="streamline", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    local = commands.add_parser("local", help="the docker-free local cloud")
    sub = local.add_subparsers(dest="local_command", required=True, parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument(
            "--state-dir",
            default=str(DEFAULT_STATE_DIR),
            help="state directory (default: .streamline/local)",
        )
        return p

    up = add("up", "start the local cloud")
    up.add_argument("--port", type=port, default=DEFAULT_PORT, help="port (default 4566; 0 = any)")
    up.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        type=_origin,
        metavar="URL",
        help="a web page (scheme://host:port) that may call the cloud from a browser "
        "(repeatable; none by default: SDKs send no Origin)",
    )
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument(
        "--fresh", action="store_true", help="forget the state saved by the last `local down`"
    )
    up.set_defaults(func=cmd_up)
    add("down", "stop a detached local cloud").set_defaults(func=cmd_down)
    add("env", "print export lines for AWS_ENDPOINT_URL and test credentials").set_defaults(
        func=cmd_env
    )
    status = add("status", "functions, mappings and recent errors")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)
    dep = add("deploy", "bootstrap if needed, then cdk deploy --all into the local cloud")
    dep.add_argument("--app-dir", default=".", help="the CDK app directory (default: .)")
    dep.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="CDK context (repeatable)",
    )
    dep.add_argument(
        "--python",
        metavar="PATH",
        help="the interpreter for the app command (default: the active venv, else the app's "
        ".venv, else Streamline's)",
    )
    dep.set_defaults(func=cmd_deploy)

    # Ops commands: each module registers its own subcommand and reports its own errors.
    from streamline.cost.cli import register as register_cost
    from streamline.ops.alarm_states import register as register_alarms
    from streamline.ops.dashboard import register as register_dashboard
    from streamline.ops.logs import register as register_logs
    from streamline.ops.quarantine import register as register_quarantine
    from streamline.ops.redrive import register as register_redrive
    from streamline.ops.replay import register as register_replay
    from streamline.ops.status import register as register_status
    from streamline.ops.traces import register as register_traces

    register_logs(commands, _Parser)
    register_alarms(commands, _Parser)
    register_cost(commands, _Parser)
    register_traces(commands, _Parser)
    register_dashboard(commands, _Parser)
    register_status(commands, _Parser)
    register_redrive(commands, _Parser)
    register_quarantine(commands, _Parser)
    register_replay(commands, _Parser)

    from streamline.producers.cli import register as register_producers

    register_producers(commands, _Parser)

    from streamline.demo.cli import register as register_demo

    register_demo(commands, _Parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `streamline` script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()
        return code
    except (CliError, StateDirError) as exc:
        print(f"streamline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader left (`... | head`): not an error of ours; keep Python from complaining
        # again when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EIO, errno.EBADF):
            raise
        print(f"streamline: cannot write the output: {exc.strerror}", file=sys.stderr)
        return 2
