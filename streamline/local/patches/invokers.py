"""Where the patched moto sends invocations, and who hears of event-source-mapping changes.

:func:`set_invokers` registers the function runner (synchronous) and the async engine; the
patched ``LambdaFunction.invoke`` (:mod:`.awslambda`) routes the Invoke API, InvokeAsync, Step
Functions Lambda tasks (which call the Invoke API over HTTP), SNS deliveries (:mod:`.sns`), S3
notifications and CloudFormation custom resources (:mod:`.custom_resources`) to them.
:func:`set_mapping_observer` registers the ESM engine, told of each mapping change by the
request that makes it. Both are process-wide, as moto's state is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

from streamline.local import durability
from streamline.local.contracts import AsyncSubmitter, Invoker

_invoker: Invoker | None = None
_submitter: AsyncSubmitter | None = None


def set_invokers(invoker: Invoker | None, submitter: AsyncSubmitter | None) -> None:
    """Register where synchronous and asynchronous invocations go (process-wide)."""
    global _invoker, _submitter
    _invoker, _submitter = invoker, submitter


def clear_invokers() -> None:
    set_invokers(None, None)


@contextlib.contextmanager
def using_invokers(invoker: Invoker | None, submitter: AsyncSubmitter | None) -> Iterator[None]:
    """Route invocations to ``invoker``/``submitter`` for a block, then restore the previous ones.

    Tests use it so a cloud started by another fixture keeps its engines afterwards.
    """
    previous = (_invoker, _submitter)
    set_invokers(invoker, submitter)
    try:
        yield
    finally:
        set_invokers(*previous)


class MappingObserver(Protocol):
    """What runs the event source mappings (the ESM engine), told of changes as they are made.

    Both are called by the request that makes the change, with the moto lock held: they must
    not take a lock the engine holds while it waits for the moto lock.
    """

    def mapping_changed(self, uuid: str, enabled: bool, deleted: bool = False) -> None: ...

    def mapping_state(self, uuid: str, enabled: bool) -> str: ...


_mapping_observer: MappingObserver | None = None


def set_mapping_observer(observer: MappingObserver | None) -> None:
    """Register the engine that runs the mappings (process-wide; None: moto's own answers)."""
    global _mapping_observer
    _mapping_observer = observer


def clear_mapping_observer(observer: MappingObserver) -> None:
    """Unregister ``observer`` if it is still the registered one."""
    global _mapping_observer
    if _mapping_observer is observer:
        _mapping_observer = None


def current_invoker() -> Invoker | None:
    """The registered function runner (None until a local cloud registers one)."""
    return _invoker


def mapping_observer() -> MappingObserver | None:
    """The registered engine that runs the mappings (None: moto's own answers)."""
    return _mapping_observer


def lambda_error(code: str, message: str, status: int = 400) -> Exception:
    """A Lambda API error moto's server answers with ``status`` and ``code``."""
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError(code, message)
    error.code = status
    return error


def no_engine(kind: str) -> Exception:
    """The 500 answered when no local cloud has registered the engine an invocation needs."""
    return lambda_error(
        "ServiceException",
        f"no local {kind} is registered (start the local cloud with LocalCloud)",
        500,
    )


def submit_async(
    function_arn: str, payload: bytes, qualifier: str | None, trace: str | None
) -> str:
    """Hand an Event invocation to the async engine; its id (``"replayed"`` in a replay)."""
    if durability.replaying():
        # The event was journaled when the async engine accepted it: replay brings it back.
        return "replayed"
    if _submitter is None:
        raise no_engine("async-invocation engine")
    return _submitter.submit(function_arn, payload, qualifier=qualifier, trace_header=trace)
