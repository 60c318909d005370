"""A snapshot of one function's configuration, read from moto's Lambda backend under the lock.

The snapshot is immutable and cheap (the code zip is shared, not copied), so the runner reads a
fresh one on every invocation: redeployed code or configuration takes effect on the next call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from streamline.local.contracts import FunctionNotFound, UnsupportedFunction

__all__ = ["FunctionConfig", "LayerRef", "is_node_runtime", "read_function_config"]

_PYTHON_RUNTIME = re.compile(r"^python3\.\d+$")
_NODE_RUNTIME = re.compile(r"^nodejs\d+\.x$")


def is_node_runtime(runtime: str) -> bool:
    return bool(_NODE_RUNTIME.match(runtime))


@dataclass(frozen=True, slots=True)
class LayerRef:
    """One layer of a function: moto-held (with its zip) or a public ARN served locally."""

    arn: str
    sha: str | None = None
    code: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class FunctionConfig:
    """What the runner needs to run one function version.

    :attr:`environment_key` changes whenever anything an execution environment was built from
    changes (code, handler, runtime, variables, memory, timeout, layers, tracing, role);
    environments built for an older key are retired.
    """

    arn: str  # unqualified function ARN
    name: str
    version: str  # "$LATEST" or a published version number
    runtime: str
    handler: str
    memory_size: int
    timeout: float
    environment: tuple[tuple[str, str], ...]
    layers: tuple[LayerRef, ...]
    tracing_mode: str
    reserved_concurrency: int | None
    code_sha: str
    log_group: str
    code: bytes = field(repr=False, compare=False, default=b"")
    role: str = ""  # the execution role's ARN: its credentials are the environment's

    @property
    def environment_key(self) -> tuple[Any, ...]:
        return (
            self.arn,
            self.version,
            self.runtime,
            self.handler,
            self.memory_size,
            self.timeout,
            self.environment,
            tuple(layer.arn for layer in self.layers),
            self.tracing_mode,
            self.code_sha,
            self.log_group,
            self.role,
        )


def read_function_config(backends: Any, function: str, qualifier: str | None) -> FunctionConfig:
    """Read a function's configuration; hold no lock when calling (this takes it briefly).

    Raises :class:`FunctionNotFound` for an unknown name or ARN and :class:`UnsupportedFunction`
    for what cannot run locally (image packages, non-Python runtimes).
    """
    from moto.awslambda.exceptions import UnknownFunctionException

    with backends.lock:
        backend = backends.lambda_()
        try:
            fn = backend.get_function(function, qualifier)
        except UnknownFunctionException:
            raise FunctionNotFound(f"Function not found: {function}") from None
        if fn is None:
            raise FunctionNotFound(f"Function not found: {function}")
        name = fn.function_name
        package_type = getattr(fn, "package_type", "Zip")
        runtime = fn.run_time or ""
        if package_type == "Image":
            raise UnsupportedFunction(
                f"function {name} is an image package: the local cloud runs only zip functions"
            )
        if not (_PYTHON_RUNTIME.match(runtime) or _NODE_RUNTIME.match(runtime)):
            raise UnsupportedFunction(
                f"function {name} uses runtime {runtime or 'none'}: the local cloud runs only "
                "Python (python3.x) and Node.js (nodejsNN.x) functions"
            )
        layers = []
        for layer in fn.layers or []:
            arn = layer["Arn"] if isinstance(layer, dict) else str(layer)
            held = backend.layers_versions_by_arn(arn)
            if held is not None and getattr(held, "code_bytes", None):
                layers.append(LayerRef(arn=arn, sha=held.code_digest, code=held.code_bytes))
            else:
                layers.append(LayerRef(arn=arn))
        logging_config = getattr(fn, "logging_config", None) or {}
        version = str(fn.version)
        return FunctionConfig(
            arn=fn.function_arn.rsplit(":", 1)[0]
            if _is_version_arn(fn.function_arn)
            else fn.function_arn,
            name=name,
            version="$LATEST" if version in ("$LATEST", "") else version,
            runtime=runtime,
            handler=fn.handler or "",
            memory_size=int(fn.memory_size or 128),
            timeout=float(fn.timeout or 3),
            environment=tuple(
                sorted((str(k), str(v)) for k, v in (fn.environment_vars or {}).items())
            ),
            layers=tuple(layers),
            tracing_mode=(fn.tracing_config or {}).get("Mode", "PassThrough"),
            reserved_concurrency=(
                None if fn.reserved_concurrency is None else int(fn.reserved_concurrency)
            ),
            code_sha=getattr(fn, "code_digest", "") or "",
            log_group=logging_config.get("LogGroup") or f"/aws/lambda/{name}",
            code=getattr(fn, "code_bytes", b"") or b"",
            role=str(getattr(fn, "role", "") or ""),
        )


def _is_version_arn(arn: str) -> bool:
    # arn:aws:lambda:region:account:function:name[:qualifier]
    return len(arn.split(":")) == 8
