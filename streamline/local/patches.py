"""Every change Streamline makes to moto, in one place: named, idempotent and version-checked.

moto is pinned (``MOTO_VERSION``). Each patch is a function registered with :func:`_patch`,
naming the moto attributes it replaces; :func:`apply_all` refuses to run on another moto
version, or when an attribute a patch relies on has gone, so an upgrade fails loudly at start-up
instead of misbehaving later. Where a patch rewrites a line of moto source, it asserts the line
is still there.

Invocations: :func:`set_invokers` registers the function runner (synchronous) and the async
engine; the patched ``LambdaFunction.invoke`` routes the Invoke API, InvokeAsync, Step Functions
Lambda tasks (which call the Invoke API over HTTP), SNS deliveries, S3 notifications and
CloudFormation custom resources to them.

Why one module of some 2,400 lines: patches apply in the order they are defined, and several
wrap what an earlier one installed (the FIFO-order receive wraps the O(1) receive, id checks wrap
the batch send that keeps system attributes, ...). One file, in sections (a) to (k) by service
and purpose, keeps that order readable top to bottom; a package would spread it over import
order. Split it when a section grows a life of its own (as ``properties`` and ``iam_audit``,
whose logic lives outside and is only hooked in here).

Example::

    from streamline.local import patches
    patches.apply_all()
    patches.set_invokers(runner, async_engine)
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import inspect
import json
import logging
import re
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from streamline.local import durability
from streamline.local.contracts import (
    AsyncSubmitter,
    FunctionNotFound,
    Invoker,
    Throttled,
    UnsupportedFunction,
)
from streamline.local.server import ACCOUNT_ID, MOTO_LOCK

_log = logging.getLogger(__name__)

__all__ = [
    "MOTO_VERSION",
    "PATCHES",
    "Patch",
    "PatchError",
    "applied",
    "apply_all",
    "clear_invokers",
    "set_invokers",
]

MOTO_VERSION = "5.2.5"
LOG_TAIL_BYTES = 4096


class PatchError(RuntimeError):
    """moto is not the version the patches were written for, or a patched attribute moved."""


@dataclass(frozen=True, slots=True)
class Patch:
    """One named change to moto. ``targets`` are ``"module:Qualified.attr"`` strings."""

    name: str
    moto_version: str
    targets: tuple[str, ...]
    apply: Callable[[], None]
    reason: str


PATCHES: list[Patch] = []
_applied: set[str] = set()
_apply_lock = threading.Lock()
# First-seen originals, keyed by (owner id, attribute), so applying twice wraps moto's code and
# never our own wrapper.
_originals: dict[tuple[int, str], Any] = {}


def _patch(*targets: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def register(func: Callable[[], None]) -> Callable[[], None]:
        reason = inspect.cleandoc(func.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        PATCHES.append(Patch(func.__name__, MOTO_VERSION, targets, func, reason))
        return func

    return register


def _resolve(target: str) -> tuple[Any, str]:
    module_name, _, qualified = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, attr = qualified.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attr


def _original(owner: Any, attr: str) -> Any:
    """moto's own attribute, as it was before any patch (raw, e.g. a classmethod object)."""
    key = (id(owner), attr)
    if key not in _originals:
        # An instance attribute (set in __init__) has no class-level original.
        _originals[key] = inspect.getattr_static(owner, attr, None)
    return _originals[key]


def _replace(owner: Any, attr: str, new: Any) -> None:
    _original(owner, attr)
    setattr(owner, attr, new)


def _rewrite_method(
    cls: type, name: str, replacements: list[tuple[str, str]]
) -> Callable[..., Any]:
    """Recompile moto's ``cls.name`` with source substitutions (asserting each one matches).

    Used where the fix is one expression inside a long method, so we do not copy moto's code.
    """
    func = _original(cls, name)
    source = textwrap.dedent(inspect.getsource(func))
    for old, new in replacements:
        if old not in source:
            raise PatchError(f"{cls.__name__}.{name}: expected source text not found: {old!r}")
        source = source.replace(old, new)
    module = inspect.getmodule(func)
    namespace: dict[str, Any] = {}
    exec(compile(source, inspect.getsourcefile(func) or "<moto>", "exec"), vars(module), namespace)
    return namespace[name]


def apply_all() -> None:
    """Check the moto version and every target, then apply each patch once (idempotent)."""
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise PatchError(
            f"streamline's moto patches were written for moto {MOTO_VERSION}, "
            f"but moto {moto.__version__} is installed; pin moto[server]=={MOTO_VERSION}"
        )
    with _apply_lock:
        for patch in PATCHES:
            if patch.moto_version != moto.__version__:
                raise PatchError(f"patch {patch.name} targets moto {patch.moto_version}")
            for target in patch.targets:
                try:
                    owner, attr = _resolve(target)
                    inspect.getattr_static(owner, attr)
                except (ImportError, AttributeError) as exc:
                    raise PatchError(
                        f"patch {patch.name}: moto {moto.__version__} has no {target} ({exc})"
                    ) from None
        for patch in PATCHES:
            if patch.name not in _applied:
                patch.apply()
                _applied.add(patch.name)


def applied() -> list[str]:
    """Names of the patches applied in this process."""
    return [p.name for p in PATCHES if p.name in _applied]


# ------------------------------------------------------------------------------------------
# Invoker registry


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


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    if not headers:
        return None
    # werkzeug Headers are case-insensitive, but internal callers pass plain dicts.
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return None if value is None else str(value)


def _lambda_error(code: str, message: str, status: int = 400) -> Exception:
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError(code, message)
    error.code = status
    return error


def _no_engine(kind: str) -> Exception:
    return _lambda_error(
        "ServiceException",
        f"no local {kind} is registered (start the local cloud with LocalCloud)",
        500,
    )


def _submit_async(
    function_arn: str, payload: bytes, qualifier: str | None, trace: str | None
) -> str:
    if durability.replaying():
        # The event was journaled when the async engine accepted it: replay brings it back.
        return "replayed"
    if _submitter is None:
        raise _no_engine("async-invocation engine")
    return _submitter.submit(function_arn, payload, qualifier=qualifier, trace_header=trace)


def _as_bytes(body: str | bytes | None) -> bytes:
    if not body:
        return b"{}"
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


# ------------------------------------------------------------------------------------------
# (a) built-in triggers off


@_patch(
    "moto.sqs.models:Queue.add_message",
    "moto.kinesis.models:Stream.put_record",
    "moto.dynamodb.models.table:StreamShard.add",
)
def builtin_triggers_off() -> None:
    """Turn off moto's SQS/Kinesis/DynamoDB-stream -> Lambda triggers; our ESM engine polls.

    moto fires them synchronously inside the producer's request, one record per invoke, and for
    DynamoDB clears the stream shard after a successful call (GetRecords then loses data). Each
    source keeps its mappings in ``lambda_event_source_mappings``; a property that always reads
    as a fresh empty dict (and ignores writes) silences them for the API and CloudFormation alike
    while the mappings stay in ``LambdaBackend._event_source_mappings`` for our engine.
    """
    from moto.dynamodb.models.table import StreamShard, Table
    from moto.kinesis.models import Stream
    from moto.sqs.models import Queue

    for method in (Queue.add_message, Stream.put_record, StreamShard.add):
        if "lambda_event_source_mappings" not in inspect.getsource(method):
            raise PatchError(f"{method.__qualname__} no longer reads lambda_event_source_mappings")
    sink = property(lambda self: {}, lambda self, value: None)
    for cls in (Queue, Stream, Table):
        _replace(cls, "lambda_event_source_mappings", sink)


@_patch("moto.dynamodb.models.table:Table.set_stream_specification")
def dynamodb_stream_label_from_the_change_clock() -> None:
    """A table's stream label (in its stream ARN) comes from the journaled change's clock.

    moto stamps the label with the time it runs; a journal replay runs the change at the time
    it was journaled, a moment earlier, so the restored table had another stream ARN and every
    mapping on it pointed nowhere. ``durability.change_time`` is that moment both times.
    """
    from moto.dynamodb.models.table import Table

    _replace(
        Table,
        "set_stream_specification",
        _rewrite_method(
            Table,
            "set_stream_specification",
            [("utcnow().isoformat()", "_durability.change_time().isoformat()")],
        ),
    )
    import moto.dynamodb.models.table as table_module

    table_module._durability = durability  # type: ignore[attr-defined]


@_patch("moto.dynamodb.models:DynamoDBBackend.update_item")
def update_item_writes_one_stream_record() -> None:
    """UpdateItem on a new item: one INSERT holding the whole item, as DynamoDB Streams write it.

    moto creates the item by putting its bare key first, which records an INSERT of the key
    alone, then records the update as a second INSERT. A consumer met an image with nothing but
    the key (every order written by UpdateItem looked like poison to ``changes``).
    """
    from moto.dynamodb.models import DynamoDBBackend

    _replace(
        DynamoDBBackend,
        "update_item",
        _rewrite_method(
            DynamoDBBackend,
            "update_item",
            [
                (
                    "table.put_item(data)\n",
                    # (moto's source, dedented: this line sits 8 spaces in)
                    "_shard, table.stream_shard = table.stream_shard, None\n"
                    "        try:\n"
                    "            table.put_item(data)\n"
                    "        finally:\n"
                    "            table.stream_shard = _shard\n",
                )
            ],
        ),
    )


# ------------------------------------------------------------------------------------------
# (b) Lambda invocations routed to our runner and async engine


def _invoke(
    self: Any, body: str | bytes, request_headers: Any, response_headers: dict[str, Any]
) -> bytes:
    """Replacement for ``LambdaFunction.invoke`` (moto would start a Docker container)."""
    inv_type = _header(request_headers, "X-Amz-Invocation-Type") or "RequestResponse"
    if inv_type == "DryRun":
        return b""
    payload = _as_bytes(body)
    version = str(getattr(self, "version", "$LATEST"))
    qualifier = None if version == "$LATEST" else version
    trace = _header(request_headers, "X-Amzn-Trace-Id")
    # Internal callers (S3 notifications, log subscription filters) invoke from inside a request
    # that holds the moto lock; AWS invokes those asynchronously, and running the function inline
    # would deadlock when it calls moto back. So a caller holding the lock gets Event semantics.
    if inv_type == "Event" or MOTO_LOCK._is_owned():  # type: ignore[attr-defined]
        _submit_async(self.function_arn, payload, qualifier, trace)
        return b""  # must not be None: moto's response turns None into a 404
    if durability.replaying():
        return b"{}"  # never run a function while replaying (its own changes are journaled)
    if _invoker is None:
        raise _no_engine("function runner")
    try:
        result = _invoker.invoke(
            self.function_arn, payload, qualifier=qualifier, trace_header=trace
        )
    except Throttled as exc:
        raise _lambda_error("TooManyRequestsException", str(exc) or "Rate Exceeded.", 429) from None
    except FunctionNotFound:
        from moto.awslambda.exceptions import UnknownFunctionException

        raise UnknownFunctionException(self.function_arn) from None
    except UnsupportedFunction as exc:
        raise _lambda_error("InvalidRuntimeException", str(exc), 502) from None
    response_headers["x-amz-executed-version"] = result.executed_version
    if result.function_error:
        response_headers["x-amz-function-error"] = result.function_error
    if result.log_tail:
        tail = result.log_tail.encode("utf-8")[-LOG_TAIL_BYTES:]
        response_headers["x-amz-log-result"] = base64.b64encode(tail).decode("ascii")
    return result.payload


def _invoke_async_response(self: Any) -> tuple[int, dict[str, Any], bytes]:
    """Replacement for ``LambdaResponse.invoke_async``: InvokeAsync is always an Event."""
    from urllib.parse import unquote

    index = -3 if self.path.endswith("/") else -2
    function_name = unquote(self.path.rsplit("/", 3)[index])
    fn = self.backend.get_function(function_name, None)
    response_headers: dict[str, Any] = {}
    payload = fn.invoke(self.body, {"X-Amz-Invocation-Type": "Event"}, response_headers)
    response_headers["status"] = 202
    return 202, response_headers, payload


@_patch(
    "moto.awslambda.models:LambdaFunction.invoke",
    "moto.awslambda.responses:LambdaResponse.invoke_async",
)
def lambda_invoker_replaced() -> None:
    """Route every moto Lambda invocation to the registered runner / async engine.

    ``LambdaFunction.invoke`` is the single funnel for the Invoke API, InvokeAsync, Step
    Functions (over HTTP), S3 notifications and custom resources.
    """
    from moto.awslambda.models import LambdaFunction
    from moto.awslambda.responses import LambdaResponse

    _replace(LambdaFunction, "invoke", _invoke)
    _replace(LambdaResponse, "invoke_async", _invoke_async_response)


def _sns_lambda_event(
    sub: Any,
    message: str,
    message_id: str,
    subject: str | None,
    message_attributes: Mapping[str, Any] | None,
) -> dict[str, Any]:
    now = (
        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{datetime.now(UTC).microsecond // 1000:03d}Z"
    )
    attributes = {
        name: {"Type": value.get("Type"), "Value": value.get("Value")}
        for name, value in (message_attributes or {}).items()
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": sub.arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": sub.topic.arn,
                    "Subject": subject,
                    "Message": message,
                    "Timestamp": now,
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "EXAMPLE",
                    "UnsubscribeUrl": "EXAMPLE",
                    "MessageAttributes": attributes,
                },
            }
        ]
    }


@_patch("moto.sns.models:Subscription.publish")
def sns_lambda_delivery_async() -> None:
    """SNS -> Lambda: a real SNS event, delivered asynchronously (Event) as AWS does.

    moto builds a fake event (fixed MessageId, TopicArn "arn:aws:sns:EXAMPLE", test attributes)
    and invokes synchronously inside Publish.
    """
    from moto.sns.models import Subscription

    original = _original(Subscription, "publish")

    def publish(
        self: Any,
        message: str,
        message_id: str,
        subject: str | None = None,
        message_attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        if self.protocol != "lambda":
            return original(
                self,
                message,
                message_id,
                subject,
                message_attributes,
                group_id,
                deduplication_id,
                message_structure,
            )
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(message_attributes, message):
            return None
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        parts = self.endpoint.split(":")
        qualifier = parts[7] if len(parts) == 8 else None
        function_arn = ":".join(parts[:7])
        event = _sns_lambda_event(self, message, message_id, subject, message_attributes)
        _submit_async(function_arn, json.dumps(event).encode("utf-8"), qualifier, None)
        return None

    _replace(Subscription, "publish", publish)


# ------------------------------------------------------------------------------------------
# (c) Step Functions


@_patch(
    "moto.stepfunctions.models:stepfunctions_backends",
    "moto.stepfunctions.parser.models:StepFunctionsParserBackend.start_execution",
    "moto.core.config:default_user_config",
)
def stepfunctions_execute_deployed_machines() -> None:
    """CloudFormation state machines go to the executing (ASL interpreter) backend.

    With ``execute_state_machine`` on, the API uses ``stepfunctions_parser_backends`` while
    CloudFormation writes to the module global ``stepfunctions_backends``: CDK machines were
    invisible to StartExecution and ListStateMachines. Only the module global is rebound (the
    package attribute drives URL routing). Lambda tasks call the Invoke API over HTTP at
    localhost:MOTO_PORT (set by MotoServer), which reaches our runner; a function error's
    ``errorType`` becomes the error name through the x-amz-function-error header. Also:
    StartExecution without a name gets a UUID (moto used "None", so a second call failed).
    """
    import moto.stepfunctions.models as sfn_models
    from moto.core.config import default_user_config
    from moto.stepfunctions.parser.models import (
        StepFunctionsParserBackend,
        stepfunctions_parser_backends,
    )

    default_user_config["stepfunctions"]["execute_state_machine"] = True
    _replace(sfn_models, "stepfunctions_backends", stepfunctions_parser_backends)
    original = _original(StepFunctionsParserBackend, "start_execution")

    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: Any = None,
        execution_input: Any = None,
        trace_header: Any = None,
    ) -> Any:
        from moto.moto_api._internal import mock_random

        # moto's seedable random: a replayed StartExecution names the execution the same.
        name = name or str(mock_random.uuid4())
        return original(self, state_machine_arn, name, execution_input, trace_header)

    _replace(StepFunctionsParserBackend, "start_execution", start_execution)


@_patch(
    "moto.stepfunctions.parser.backend.execution:Execution.start",
    "moto.stepfunctions.parser.backend.execution:Execution.to_history_output",
    "moto.stepfunctions.parser.backend.execution:BaseExecutionWorkerCommunication.terminated",
)
def stepfunctions_executions_survive_restarts() -> None:
    """A Step Functions execution's end is journaled, and replay restores it without running it.

    The interpreter runs an execution on a thread of its own, outside any request, so its end
    is a change no API request records: it is journaled as an operation (``sfn.ended``) with its
    status, output and history. Replayed StartExecution requests create the execution but never
    run it (that would invoke functions twice); its journaled end restores how it ended, and one
    still running when the cloud died ends ABORTED (``durability``). A restored execution keeps
    its history for GetExecutionHistory.
    """
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import (
        BaseExecutionWorkerCommunication,
        Execution,
    )

    original_start = _original(Execution, "start")
    original_history = _original(Execution, "to_history_output")
    original_terminated = _original(BaseExecutionWorkerCommunication, "terminated")

    def start(self: Any) -> None:
        if durability.replaying():
            self.exec_status = ExecutionStatus.RUNNING
            return
        original_start(self)

    def to_history_output(self: Any) -> Any:
        restored = getattr(self, "restored_history", None)
        if self.exec_worker is None and restored is not None:
            return restored
        if self.exec_worker is None:
            return {"events": []}
        return original_history(self)

    def terminated(self: Any) -> None:
        original_terminated(self)
        journal = durability.ACTIVE
        if journal is None:
            return
        execution = self.execution
        with contextlib.suppress(Exception):  # journaling an end must never break the run
            journal.run(
                "sfn.ended",
                str(execution.exec_arn),
                execution.exec_status,
                execution.output,
                execution.error,
                execution.cause,
                execution.stop_date,
                original_history(execution),
            )

    _replace(Execution, "start", start)
    _replace(Execution, "to_history_output", to_history_output)
    _replace(BaseExecutionWorkerCommunication, "terminated", terminated)


# ------------------------------------------------------------------------------------------
# (d) SQS hot paths


_CBD_TRUE = 'queue.attributes.get("ContentBasedDeduplication") == "true"'
_CBD_FALSE = 'queue.attributes.get("ContentBasedDeduplication") == "false"'
_CBD_SELF_TRUE = 'self.attributes.get("ContentBasedDeduplication") == "true"'


@_patch(
    "moto.sqs.models:SQSBackend.send_message",
    "moto.sqs.models:SQSBackend._validate_message",
    "moto.sqs.models:SQSBackend.is_message_valid_based_on_retention_period",
    "moto.sqs.models:Queue.add_message",
    "moto.sqs.models:Queue.delete_message",
    "moto.sqs.models:Queue.wait_for_messages",
    "moto.sqs.models:Queue.messages",
    "moto.sqs.models:Queue.approximate_number_of_messages_delayed",
    "moto.sqs.models:Queue.approximate_number_of_messages_not_visible",
)
def sqs_hot_paths_constant_time() -> None:
    """SendMessage, ReceiveMessage and DeleteMessage no longer cost O(queue depth) per message.

    ``Queue.attributes`` rebuilds every attribute, including three counts that scan all
    messages; send read one flag from it and receive read the retention period from it per
    message. We read the typed fields moto already keeps instead. DeleteMessage scanned twice and
    rebuilt the list; now it finds the message once and deletes it in place. Long polling
    releases the moto lock while it waits, so a waiting receive does not block the server.
    """
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue, SQSBackend

    cbd = "queue.content_based_deduplication"
    _replace(
        SQSBackend,
        "send_message",
        _rewrite_method(SQSBackend, "send_message", [(_CBD_TRUE, f"bool({cbd})")]),
    )
    _replace(
        SQSBackend,
        "_validate_message",
        _rewrite_method(SQSBackend, "_validate_message", [(_CBD_FALSE, f"not {cbd}")]),
    )
    _replace(
        Queue,
        "add_message",
        _rewrite_method(
            Queue, "add_message", [(_CBD_SELF_TRUE, "bool(self.content_based_deduplication)")]
        ),
    )

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > unix_time())

    _replace(
        SQSBackend,
        "is_message_valid_based_on_retention_period",
        is_message_valid_based_on_retention_period,
    )

    def delete_message(self: Any, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return  # AWS accepts deleting an already deleted message
        with self._messages_lock:
            for index, message in enumerate(self._messages):  # noqa: B007 (used below)
                if message.had_receipt_handle(receipt_handle):
                    break
            else:
                raise ReceiptHandleIsInvalid()
            del self._messages[index]
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)

    _replace(Queue, "delete_message", delete_message)

    def wait_for_messages(self: Any, timeout: int) -> None:
        # The caller (a long-polling ReceiveMessage) holds MOTO_LOCK; hand it back while we
        # wait, or no SendMessage could ever arrive. The RLock may be held recursively, so use
        # its save/restore pair, exactly as threading.Condition does.
        saved = MOTO_LOCK._release_save() if MOTO_LOCK._is_owned() else None  # type: ignore[attr-defined]
        try:
            with self._messages_lock:
                self._messages_lock.wait_for(lambda: self.messages, timeout=timeout)
        finally:
            if saved is not None:
                MOTO_LOCK._acquire_restore(saved)  # type: ignore[attr-defined]

    _replace(Queue, "wait_for_messages", wait_for_messages)

    def messages(self: Any) -> VisibleMessages:
        return VisibleMessages(self)

    _replace(Queue, "messages", property(messages))

    # GetQueueAttributes counts: one clock read per call, not two per message (operators and
    # dashboards poll these while the queue is deep).
    def delayed(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    def not_visible(self: Any) -> int:
        now = unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    _replace(Queue, "approximate_number_of_messages_delayed", property(delayed))
    _replace(Queue, "approximate_number_of_messages_not_visible", property(not_visible))


class VisibleMessages:
    """A queue's visible messages, computed lazily (moto built a list of all of them).

    ReceiveMessage iterates ``queue.messages`` and stops after MaxNumberOfMessages, so a lazy
    view makes a receive cost what it returns plus the in-flight messages it skips, instead of
    the whole queue depth (two clock reads per message at 10,000 messages). The clock is read
    once per iteration. Truthiness (used by long polling) stops at the first visible message.
    """

    __slots__ = ("_queue",)

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def __iter__(self) -> Iterator[Any]:
        from moto.core.utils import unix_time_millis

        now = unix_time_millis()
        for message in self._queue._messages:
            if now > message.visible_at and not now < message.delayed_until:
                yield message

    def __bool__(self) -> bool:
        return next(iter(self), None) is not None

    def __len__(self) -> int:
        return sum(1 for _ in self)


@_patch("moto.sqs.models:SQSBackend.receive_message")
def sqs_receive_keeps_fifo_group_order() -> None:
    """ReceiveMessage delivers a FIFO group in order and nothing of it while any is in flight.

    moto 5.2.5 recomputed the in-flight groups while it walked the queue: when m1, m2 and m3 of
    one group were visible again together, m1 and m2 were skipped (m3 still counted as in
    flight) and m3 went out first. We settle every timed-out receive before the walk, so a
    group is blocked exactly while one of its messages is in flight, as SQS documents. The
    rest is moto's: the redrive to the dead-letter queue at maxReceiveCount, retention, long
    polling (through ``Queue.wait_for_messages``).
    """
    from copy import deepcopy

    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend, _filter_message_attributes

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        queue = self.get_queue(queue_name)
        polling_end = unix_time() + wait_seconds_timeout
        while True:
            result = _receive_once(
                self, queue, count, visibility_timeout, message_attribute_names or []
            )
            if result or not wait_seconds_timeout or unix_time() > polling_end:
                return result
            queue.wait_for_messages(1)

    def _receive_once(
        backend: Any, queue: Any, count: int, visibility_timeout: int, names: list[str]
    ) -> list[Any]:
        pending = queue.pending_messages
        for message in [m for m in pending if m.visible]:
            pending.discard(message)  # its visibility timed out: no longer in flight
        blocked = {m.group_id for m in pending if m.group_id is not None}
        fifo = bool(queue.fifo_queue)
        policy = queue.redrive_policy if queue.dead_letter_queue is not None else None
        result: list[Any] = []
        to_dlq: list[Any] = []
        for message in queue.messages:
            if fifo and message.group_id in blocked:
                continue
            if policy and message.approximate_receive_count >= policy["maxReceiveCount"]:
                to_dlq.append(message)
                continue
            if not backend.is_message_valid_based_on_retention_period(queue.name, message):
                break
            pending.add(message)
            message.mark_received(visibility_timeout=visibility_timeout)
            copy = deepcopy(message)  # attribute filtering must not change the stored message
            _filter_message_attributes(copy, names)
            result.append(copy)
            if len(result) >= count:
                break
        for message in to_dlq:
            queue._messages.remove(message)
            queue.dead_letter_queue.add_message(message)
        return result

    _replace(SQSBackend, "receive_message", receive_message)


@_patch("moto.sqs.models:SQSBackend.send_message_batch")
def sqs_batch_entries_keep_system_attributes() -> None:
    """SendMessageBatch keeps each entry's MessageSystemAttributes (AWSTraceHeader), as SQS does.

    moto passes them to the message for SendMessage only, so a task sent in a batch lost the
    trace header its consumer continues (orderflow.tracing; SendMessageBatchRequestEntry in the
    SQS API reference documents the attribute per entry).
    """
    from moto.sqs.models import SQSBackend

    _replace(
        SQSBackend,
        "send_message_batch",
        _rewrite_method(
            SQSBackend,
            "send_message_batch",
            [
                (
                    'deduplication_id=entry.get("MessageDeduplicationId"),',
                    'deduplication_id=entry.get("MessageDeduplicationId"),'
                    ' system_attributes=entry.get("MessageSystemAttributes"),',
                )
            ],
        ),
    )


@_patch(
    "moto.sqs.models:SQSBackend.send_message",
    "moto.sqs.models:SQSBackend.receive_message",
    "moto.sqs.models:SQSBackend.delete_message",
)
def sqs_message_counters() -> None:
    """SendMessage, ReceiveMessage and DeleteMessage count into AWS/SQS's message metrics.

    moto keeps no NumberOfMessagesSent/Received/Deleted; the metrics
    publisher samples these counters (``streamline.local.metrics.SQS_ACTIVITY``). Batches go
    through the same backend methods per entry, so they are counted per message, as on AWS.
    Wraps whatever is installed (``sqs_hot_paths_constant_time`` runs first).
    NumberOfEmptyReceives is not published: the local poller's receives share this path, and
    their cadence is not AWS's 20-second long polls, so the count would mislead.
    """
    from moto.sqs.models import SQSBackend

    from streamline.local.metrics import SQS_ACTIVITY

    send, receive, delete = (
        SQSBackend.send_message,
        SQSBackend.receive_message,
        SQSBackend.delete_message,
    )

    def send_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        message = send(self, queue_name, *args, **kwargs)
        SQS_ACTIVITY.add(queue_name, "NumberOfMessagesSent")
        return message

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        messages = receive(self, queue_name, *args, **kwargs)
        if messages:
            SQS_ACTIVITY.add(queue_name, "NumberOfMessagesReceived", len(messages))
        return messages

    def delete_message(self: Any, queue_name: str, receipt_handle: str) -> None:
        delete(self, queue_name, receipt_handle)
        SQS_ACTIVITY.add(queue_name, "NumberOfMessagesDeleted")

    _replace(SQSBackend, "send_message", send_message)
    _replace(SQSBackend, "receive_message", receive_message)
    _replace(SQSBackend, "delete_message", delete_message)


@_patch(
    "moto.awslambda.models:LambdaBackend.create_event_source_mapping",
    "moto.awslambda.models:LambdaBackend.update_event_source_mapping",
    "moto.awslambda.models:LambdaBackend.delete_event_source_mapping",
    "moto.awslambda.models:EventSourceMapping.get_configuration",
)
def lambda_event_source_mapping_validation() -> None:
    """CreateEventSourceMapping and UpdateEventSourceMapping refuse what AWS refuses.

    moto accepted any mapping: a queue whose visibility timeout is below the function timeout,
    BatchSize over 10 without a batching window, a stream mapping without StartingPosition,
    settings our engine cannot honour (TumblingWindowInSeconds). The rules live beside the
    engine in ``esm.validation``; this patch makes both the API and CloudFormation apply them.
    The mapping's StateTransitionReason shows why the engine disabled one it could not run.
    """
    from moto.awslambda.models import EventSourceMapping, LambdaBackend

    from streamline.local.esm.validation import wrap_create, wrap_update

    create = wrap_create(_original(LambdaBackend, "create_event_source_mapping"))
    update = wrap_update(_original(LambdaBackend, "update_event_source_mapping"))
    delete = _original(LambdaBackend, "delete_event_source_mapping")

    # The engine hears of each change from the request that makes it: a disabled mapping
    # receives nothing more once the request returns (AWS: nothing once it reports Disabled).
    def create_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = create(self, spec)
        if _mapping_observer is not None and esm is not None:
            _mapping_observer.mapping_changed(esm.uuid, bool(esm.enabled))
        return esm

    def update_mapping(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
        esm = update(self, uuid, spec)
        if _mapping_observer is not None and esm is not None:
            _mapping_observer.mapping_changed(esm.uuid, bool(esm.enabled))
        return esm

    def delete_mapping(self: Any, uuid: str) -> Any:
        esm = delete(self, uuid)
        if _mapping_observer is not None and esm is not None:
            _mapping_observer.mapping_changed(esm.uuid, False, deleted=True)
        return esm

    _replace(LambdaBackend, "create_event_source_mapping", create_mapping)
    _replace(LambdaBackend, "update_event_source_mapping", update_mapping)
    _replace(LambdaBackend, "delete_event_source_mapping", delete_mapping)

    get_configuration = _original(EventSourceMapping, "get_configuration")

    def configuration(self: Any) -> dict[str, Any]:
        config = dict(get_configuration(self))
        config["StateTransitionReason"] = getattr(
            self, "state_transition_reason", config.get("StateTransitionReason", "User action")
        )
        if _mapping_observer is not None:
            # "Disabling" until the pollers have stopped and in-flight batches are done.
            config["State"] = _mapping_observer.mapping_state(self.uuid, bool(self.enabled))
        return config

    _replace(EventSourceMapping, "get_configuration", configuration)


# ------------------------------------------------------------------------------------------
# (e) public layers, and the Lambda properties CloudFormation drops


@_patch("moto.awslambda.models:LambdaFunction._get_layers_data")
def lambda_public_layers_accepted() -> None:
    """Accept layer ARNs moto does not hold (public layers such as Powertools).

    The runner serves their contents from locally installed distributions; layers published
    into moto are still described with their real size.
    """
    from moto.awslambda.models import LambdaFunction
    from moto.awslambda.utils import get_backend

    def _get_layers_data(self: Any, layers_versions_arns: list[str]) -> list[dict[str, Any]]:
        backend = get_backend(self.account_id, self.region)
        data = []
        for arn in layers_versions_arns:
            layer = backend.layers_versions_by_arn(arn)
            data.append(
                {"Arn": layer.arn, "CodeSize": layer.code_size}
                if layer
                else {"Arn": arn, "CodeSize": 0}
            )
        return data

    _replace(LambdaFunction, "_get_layers_data", _get_layers_data)


def _apply_dropped_function_properties(fn: Any, properties: Mapping[str, Any]) -> None:
    if "Layers" in properties:
        fn.layers = fn._get_layers_data(list(properties["Layers"]))
    if "TracingConfig" in properties:
        fn.tracing_config = dict(properties["TracingConfig"])
    if "Architectures" in properties:
        fn.architectures = list(properties["Architectures"])
    # moto has no field for these; the runner and async engine read them as attributes.
    fn.logging_config = properties.get("LoggingConfig")
    fn.dead_letter_config = properties.get("DeadLetterConfig")


@_patch("moto.awslambda.models:LambdaFunction.get_configuration")
def lambda_logging_config_reported() -> None:
    """GetFunction(Configuration) reports LoggingConfig, as AWS does for every function, and
    the DeadLetterConfig a template set (moto reports neither).

    moto has no such field, so tools that find a function's logs through it (``streamline
    logs``, ``status``, ``cost``) looked in ``/aws/lambda/<name>`` while a function deployed
    with its own log group writes elsewhere. AWS's default is Text in ``/aws/lambda/<name>``.
    """
    from moto.awslambda.models import LambdaFunction

    original = _original(LambdaFunction, "get_configuration")

    def get_configuration(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config = dict(original(self, *args, **kwargs))
        logging_config = dict(getattr(self, "logging_config", None) or {})
        logging_config.setdefault("LogFormat", "Text")
        logging_config.setdefault("LogGroup", f"/aws/lambda/{self.function_name}")
        config["LoggingConfig"] = logging_config
        dead_letter = getattr(self, "dead_letter_config", None)
        if dead_letter and dead_letter.get("TargetArn"):
            config["DeadLetterConfig"] = {"TargetArn": dead_letter["TargetArn"]}
        return config

    _replace(LambdaFunction, "get_configuration", get_configuration)


@_patch(
    "moto.awslambda.models:LambdaFunction.create_from_cloudformation_json",
    "moto.awslambda.models:LambdaFunction.update_from_cloudformation_json",
)
def lambda_cloudformation_properties() -> None:
    """CloudFormation functions keep Layers, TracingConfig, Architectures, LoggingConfig, DLQ.

    moto's CloudFormation model copies only a few properties; the rest were silently dropped.
    """
    from moto.awslambda.models import LambdaFunction

    create = _original(LambdaFunction, "create_from_cloudformation_json").__func__
    update = _original(LambdaFunction, "update_from_cloudformation_json").__func__

    def create_from_cloudformation_json(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        fn = create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        _apply_dropped_function_properties(fn, cloudformation_json.get("Properties", {}))
        return fn

    def update_from_cloudformation_json(
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        fn = update(
            cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        _apply_dropped_function_properties(fn, cloudformation_json.get("Properties", {}))
        return fn

    _replace(
        LambdaFunction,
        "create_from_cloudformation_json",
        classmethod(create_from_cloudformation_json),
    )
    _replace(
        LambdaFunction,
        "update_from_cloudformation_json",
        classmethod(update_from_cloudformation_json),
    )


@_patch(
    "moto.awslambda.models:LambdaBackend.put_function_event_invoke_config",
    "moto.awslambda.models:LambdaBackend.update_function_event_invoke_config",
)
def lambda_event_invoke_config_replaces() -> None:
    """PutFunctionEventInvokeConfig replaces, UpdateFunctionEventInvokeConfig merges.

    moto appended on both and always read the first, so a later config never took effect.
    """
    from moto.awslambda.models import EventInvokeConfig, LambdaBackend

    def put(self: Any, function_name: str, config: dict[str, Any]) -> dict[str, Any]:
        fn = self.get_function(function_name)
        event_config = EventInvokeConfig(fn.function_arn, fn.last_modified, config)
        fn.event_invoke_config = [event_config]
        return event_config.response()

    def update(self: Any, function_name: str, config: dict[str, Any]) -> dict[str, Any]:
        fn = self.get_function(function_name)
        merged = dict(fn.event_invoke_config[0].config) if fn.event_invoke_config else {}
        merged.update(config)
        return put(self, function_name, merged)

    _replace(LambdaBackend, "put_function_event_invoke_config", put)
    _replace(LambdaBackend, "update_function_event_invoke_config", update)


# ------------------------------------------------------------------------------------------
# (f) CloudFormation FIFO queue names


@_patch("moto.sqs.models:Queue.create_from_cloudformation_json")
def sqs_cloudformation_fifo_name() -> None:
    """An unnamed FIFO queue gets a generated name ending in ".fifo", as CloudFormation does.

    moto used ``Stack-Logical-RAND``, which its own Queue then rejected, failing the deploy.
    """
    from moto.sqs.models import Queue

    create = _original(Queue, "create_from_cloudformation_json").__func__

    def create_from_cloudformation_json(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = cloudformation_json.get("Properties", {})
        fifo = str(properties.get("FifoQueue", "")).lower() == "true"
        if fifo and not properties.get("QueueName") and not str(resource_name).endswith(".fifo"):
            resource_name = str(resource_name)[:75] + ".fifo"  # SQS names are at most 80 chars
        return create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    _replace(Queue, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json))


@_patch("moto.events.models:EventBus.create_from_cloudformation_json")
def events_bus_ref_is_its_name() -> None:
    """``Ref`` to an AWS::Events::EventBus resolves to the bus name, as CloudFormation documents.

    moto's EventBus has no physical id, so a Ref (e.g. a Rule's EventBusName) resolved to the
    Python object and put_rule crashed with "'EventBus' object has no attribute 'split'".
    """
    from moto.events.models import EventBus

    _replace(EventBus, "physical_resource_id", property(lambda self: self.name))


@_patch(
    "moto.cloudwatch.models:CloudWatchBackend.put_metric_alarm",
    "moto.cloudformation.parsing:get_model_list",
    "moto.cloudformation.parsing:get_model_map",
)
def cloudwatch_alarm_cloudformation() -> None:  # noqa: C901 - a model class defined in a patch
    """CloudFormation creates AWS::CloudWatch::Alarm (moto skipped it with a warning).

    A skipped alarm broke every template that refers to one: a dashboard's alarm widget takes
    ``Fn::GetAtt Alarm.Arn``, and moto failed the whole stack ("references undefined
    resource"). The model below creates the alarm through moto's own CloudWatch backend, so its
    name and ARN resolve like any other resource's. Metric-math alarms keep their queries.
    """
    from moto.cloudformation import parsing
    from moto.cloudwatch.models import (
        CloudWatchBackend,
        Dimension,
        Metric,
        MetricDataQuery,
        MetricStat,
        cloudwatch_backends,
    )
    from moto.core.common_models import CloudFormationModel

    def queries(metrics: list[dict[str, Any]] | None) -> list[Any] | None:
        if not metrics:
            return None
        out = []
        for query in metrics:
            stat = query.get("MetricStat")
            metric_stat = None
            if stat:
                metric = stat["Metric"]
                metric_stat = MetricStat(
                    metric=Metric(
                        metric_name=metric.get("MetricName"),
                        namespace=metric.get("Namespace"),
                        dimensions=[
                            Dimension(name=d["Name"], value=d["Value"])
                            for d in metric.get("Dimensions", [])
                        ],
                    ),
                    period=stat.get("Period"),
                    stat=stat.get("Stat"),
                    unit=stat.get("Unit"),
                )
            # moto annotates these as str but stores whatever the API sent (None included)
            fields: dict[str, Any] = {
                "query_id": query.get("Id"),
                "label": query.get("Label"),
                "period": query.get("Period"),
                "return_data": query.get("ReturnData"),
                "expression": query.get("Expression"),
                "metric_stat": metric_stat,
            }
            out.append(MetricDataQuery(**fields))
        return out

    class CloudFormationAlarm(CloudFormationModel):
        """The CloudFormation face of a moto CloudWatch alarm (registered by subclassing)."""

        def __init__(self, alarm: Any) -> None:
            self.alarm = alarm

        @property
        def physical_resource_id(self) -> str:
            return str(self.alarm.name)

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Arn"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            if attribute_name == "Arn":
                return str(self.alarm.alarm_arn)
            raise KeyError(attribute_name)

        @classmethod
        def create_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
            **kwargs: Any,
        ) -> CloudFormationAlarm:
            p = cloudformation_json["Properties"]
            backend: CloudWatchBackend = cloudwatch_backends[account_id][region_name]
            alarm = backend.put_metric_alarm(
                name=p.get("AlarmName") or resource_name,
                namespace=p.get("Namespace"),
                metric_name=p.get("MetricName"),
                metric_data_queries=queries(p.get("Metrics")),
                comparison_operator=p["ComparisonOperator"],
                evaluation_periods=int(p["EvaluationPeriods"]),
                datapoints_to_alarm=(
                    int(p["DatapointsToAlarm"]) if p.get("DatapointsToAlarm") else None
                ),
                period=int(p["Period"]) if p.get("Period") else None,  # type: ignore[arg-type]
                threshold=float(p["Threshold"]) if "Threshold" in p else None,  # type: ignore[arg-type]
                statistic=p.get("Statistic"),
                extended_statistic=p.get("ExtendedStatistic"),
                description=p.get("AlarmDescription"),
                dimensions=p.get("Dimensions", []),
                alarm_actions=p.get("AlarmActions", []),
                ok_actions=p.get("OKActions", []),
                insufficient_data_actions=p.get("InsufficientDataActions", []),
                unit=p.get("Unit"),
                actions_enabled=p.get("ActionsEnabled", True),
                treat_missing_data=p.get("TreatMissingData"),
                tags=p.get("Tags", []),
            )
            return cls(alarm)

        @classmethod
        def update_from_cloudformation_json(
            cls,
            original_resource: Any,
            new_resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> CloudFormationAlarm:
            return cls.create_from_cloudformation_json(
                new_resource_name, cloudformation_json, account_id, region_name
            )

        @classmethod
        def delete_from_cloudformation_json(
            cls,
            resource_name: str,
            cloudformation_json: Any,
            account_id: str,
            region_name: str,
        ) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])

    # A module-level name, so a saved cloud state (``persistence``) can pickle the stacks'
    # references to these resources.
    CloudFormationAlarm.__qualname__ = "CloudFormationAlarm"
    globals()["CloudFormationAlarm"] = CloudFormationAlarm

    # moto caches its model list; drop the cache so the new subclass is found.
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    if hasattr(parsing, "get_name_type_map"):
        parsing.get_name_type_map.cache_clear()


# The local endpoint is plain HTTP on loopback; it stands in for AWS's TLS endpoints, so a
# request to it is what aws:SecureTransport=true describes.
LOCAL_REQUEST_CONTEXT = {"aws:SecureTransport": "true"}


@_patch(
    "moto.iam.access_control:IAMPolicyStatement.is_action_permitted",
    "moto.iam.policy_conditions:CONDITION_OPERATIONS",
    "moto.s3.models:FakeBucket.get_permission",
)
def policy_conditions_apply_only_when_true() -> None:
    """A policy statement whose Condition does not hold does not apply (IAM's rule).

    moto turned any statement with an unmet condition into an explicit DENY, so the TLS-only
    statement CDK adds to every bucket ("Deny s3:* if aws:SecureTransport is false") denied all
    object writes. Bucket policies are now evaluated with the request context of the local
    endpoint (LOCAL_REQUEST_CONTEXT), unmet conditions make a statement neutral, and the
    ``Bool`` operator is evaluated (moto treated operators it lacks as always true).
    """
    from moto.iam import policy_conditions
    from moto.iam.access_control import IAMPolicyStatement

    def bool_equals(expected: list[str] | str, actual: str) -> bool:
        values = expected if isinstance(expected, list) else [expected]
        return str(actual).lower() in {str(v).lower() for v in values}

    operations: dict[str, Any] = policy_conditions.CONDITION_OPERATIONS
    operations["Bool"] = bool_equals
    from moto.s3.models import FakeBucket

    _replace(
        IAMPolicyStatement,
        "is_action_permitted",
        _rewrite_method(
            IAMPolicyStatement,
            "is_action_permitted",
            [
                (
                    "if not self._check_conditions(incoming_condition_values):\n"
                    "            return PermissionResult.DENIED",
                    "if not self._check_conditions(incoming_condition_values):\n"
                    "            return PermissionResult.NEUTRAL",
                )
            ],
        ),
    )

    def get_permission(self: Any, action: str, resource: str) -> Any:
        from moto.iam.access_control import IAMPolicy, PermissionResult

        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = IAMPolicy(self.policy.decode())
        return policy.is_action_permitted(
            action, resource, incoming_condition_values=dict(LOCAL_REQUEST_CONTEXT)
        )

    _replace(FakeBucket, "get_permission", get_permission)


@_patch("moto.cloudwatch.responses:CloudWatchResponse.describe_alarms")
def cloudwatch_describe_alarm_history() -> None:
    """DescribeAlarmHistory answers with each alarm's state transitions (moto lacked the API).

    moto keeps, per alarm, the state it had before each update; pairing each entry with the one
    after it (or the current state) gives AWS's StateUpdate items, newest first.
    """
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult

    def describe_alarm_history(self: Any) -> Any:
        name = self._get_param("AlarmName")
        kind = self._get_param("HistoryItemType")
        limit = int(self._get_param("MaxRecords") or 100)
        alarms = self.cloudwatch_backend.describe_alarms()
        items: list[dict[str, Any]] = []
        for alarm in alarms:
            if name and alarm.name != name:
                continue
            snapshots = [h for h in alarm.history if h[0] == "StateUpdate"]
            for index, (_, _, _, old_state, _) in enumerate(snapshots):
                if index + 1 < len(snapshots):
                    _, reason, _, new_state, at = snapshots[index + 1]
                else:
                    reason, new_state = alarm.state_reason, alarm.state_value
                    at = alarm.state_updated_timestamp
                items.append(
                    {
                        "AlarmName": alarm.name,
                        "AlarmType": "MetricAlarm",
                        "Timestamp": at,
                        "HistoryItemType": "StateUpdate",
                        "HistorySummary": f"Alarm updated from {old_state} to {new_state}",
                        "HistoryData": json.dumps(
                            {
                                "version": "1.0",
                                "oldState": {"stateValue": old_state},
                                "newState": {"stateValue": new_state, "stateReason": reason},
                            }
                        ),
                    }
                )
        if kind and kind != "StateUpdate":
            items = []
        items.sort(key=lambda item: item["Timestamp"], reverse=True)
        return ActionResult({"AlarmHistoryItems": items[:limit]})

    CloudWatchResponse.describe_alarm_history = describe_alarm_history  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------
# (g) what an unchanged `cdk deploy` needs


def _find_change_set(backend: Any, name: str, stack_name: str | None) -> Any:
    if name in backend.change_sets:  # an ARN
        return backend.change_sets[name]
    for change_set in backend.change_sets.values():
        if change_set.change_set_name == name and (
            stack_name is None or stack_name in (change_set.stack_name, change_set.stack_id)
        ):
            return change_set
    return None


@_patch(
    "moto.cloudformation.models:CloudFormationBackend.execute_change_set",
    "moto.cloudformation.models:CloudFormationBackend.describe_change_set",
    "moto.cloudformation.models:CloudFormationBackend.delete_change_set",
    "moto.cloudformation.responses:CloudFormationResponse.describe_change_set",
    "moto.cloudformation.responses:CloudFormationResponse.delete_change_set",
)
def cloudformation_change_sets() -> None:
    """Change sets (how cdk deploy works) keep outputs/exports and are scoped by stack.

    moto's execute_change_set never built outputs or exports (Fn::ImportValue failed), looked
    change sets up by name across all stacks (CDK names every one ``cdk-deploy-change-set``),
    crashed deleting a missing one and reported a missing one as a missing stack, so the second
    deploy of any stack failed.
    """
    from moto.cloudformation import responses as cfn_responses
    from moto.cloudformation.exceptions import CloudFormationError
    from moto.cloudformation.models import CloudFormationBackend

    class ChangeSetNotFound(CloudFormationError):
        code = "ChangeSetNotFound"

        def __init__(self, name: str) -> None:
            super().__init__(f"ChangeSet [{name}] does not exist")

    execute = _original(CloudFormationBackend, "execute_change_set")

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = _find_change_set(self, change_set_name, stack_name)
        if change_set is None:
            return execute(self, change_set_name, stack_name)
        stack = self.stacks[change_set.stack_id]
        stack.cross_stack_resources = self.exports
        stack.resource_map.cross_stack_resources = self.exports
        execute(self, change_set.change_set_id, stack_name)
        stack._parse_template()
        stack.output_map = stack._create_output_map()
        for export in stack.exports:
            self.exports[export.name] = export
        return None

    def describe_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> Any:
        change_set = _find_change_set(self, change_set_name, stack_name)
        if change_set is None:
            raise ChangeSetNotFound(change_set_name)
        return change_set

    def delete_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = _find_change_set(self, change_set_name, stack_name)
        if change_set is not None:
            del self.change_sets[change_set.change_set_id]

    def describe_response(self: Any) -> Any:
        return cfn_responses.ActionResult(
            self.cloudformation_backend.describe_change_set(
                self._get_param("ChangeSetName"), self._get_param("StackName")
            )
        )

    def delete_response(self: Any) -> Any:
        self.cloudformation_backend.delete_change_set(
            self._get_param("ChangeSetName"), self._get_param("StackName")
        )
        return cfn_responses.EmptyResult()

    _replace(CloudFormationBackend, "execute_change_set", execute_change_set)
    _replace(CloudFormationBackend, "describe_change_set", describe_change_set)
    _replace(CloudFormationBackend, "delete_change_set", delete_change_set)
    _replace(cfn_responses.CloudFormationResponse, "describe_change_set", describe_response)
    _replace(cfn_responses.CloudFormationResponse, "delete_change_set", delete_response)


@_patch("moto.cloudformation.parsing:ResourceMap.parse_ssm_parameter")
def cloudformation_ssm_previous_value() -> None:
    """An SSM-typed parameter whose stored value is already resolved passes through.

    On update CDK sends BootstrapVersion with UsePreviousValue; moto stored the resolved "33"
    and looked it up as a parameter name again (AttributeError -> HTTP 500).
    """
    from moto.cloudformation.parsing import ResourceMap
    from moto.ssm import ssm_backends

    original = _original(ResourceMap, "parse_ssm_parameter")

    def parse_ssm_parameter(self: Any, value: str, value_type: str) -> Any:
        ssm = ssm_backends[self._account_id][self._region_name]
        if ssm.get_parameter(value) is None:
            return value.split(",") if value_type.find("List") > 0 else value
        return original(self, value, value_type)

    _replace(ResourceMap, "parse_ssm_parameter", parse_ssm_parameter)


@_patch(
    "moto.cloudformation.utils:get_stack_from_s3_url",
    "moto.cloudformation.models:get_stack_from_s3_url",
    "moto.cloudformation.responses:get_stack_from_s3_url",
)
def cloudformation_template_url_loopback() -> None:
    """Template URLs on 127.0.0.1 are path-style too (moto only knew "localhost")."""
    import moto.cloudformation.models as cfn_models
    import moto.cloudformation.responses as cfn_responses
    import moto.cloudformation.utils as cfn_utils

    original = _original(cfn_utils, "get_stack_from_s3_url")

    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        return original(
            template_url.replace("//127.0.0.1:", "//localhost:", 1), account_id, partition
        )

    for module in (cfn_utils, cfn_models, cfn_responses):
        _replace(module, "get_stack_from_s3_url", get_stack_from_s3_url)


@_patch("moto.settings:moto_server_host")
def custom_resource_callback_host() -> None:
    """Custom-resource ResponseURLs point at the loopback server, not host.docker.internal."""
    import moto.settings

    _replace(moto.settings, "moto_server_host", lambda: "http://localhost")


@_patch("moto.moto_server.werkzeug_app:DISABLE_GLOBAL_CORS")
def cors_off() -> None:
    """No CORS headers from moto: the server answers browsers only for allowed origins.

    moto wraps every service app in flask-cors, reflecting any Origin with every method and
    header: any web page the user visited could call the local cloud. The access policy
    (``server.AccessPolicy``) adds CORS headers for the origins ``--allow-origin`` names.
    """
    import moto.moto_server.werkzeug_app as werkzeug_app
    import moto.settings

    _replace(werkzeug_app, "DISABLE_GLOBAL_CORS", True)
    _replace(moto.settings, "DISABLE_GLOBAL_CORS", True)


class _NotCounted(Exception):
    """Leaves the counting block of a replayed request (counted when it first ran)."""


@_patch("moto.core.responses:BaseResponse.call_action")
def api_call_counting() -> None:
    """Count each API request by caller, service and operation for the cost model.

    The caller is the function whose credentials signed the request, else ``client``; see
    :mod:`streamline.local.api_calls`. Every JSON, query and REST service ends in
    ``BaseResponse.call_action`` (DynamoDB's override calls it); S3 does not and is not counted.
    """
    import time

    from moto.core.responses import BaseResponse

    from streamline.local.api_calls import API_CALLS, caller_of, request_shape

    original = _original(BaseResponse, "call_action")

    def call_action(self: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self)
        finally:
            # Counting must never fail a request: a request we cannot read is not counted.
            # A replayed request was counted when it first ran.
            with contextlib.suppress(Exception):
                if durability.replaying():
                    raise _NotCounted
                service = self.boto3_service_name or "unknown"
                operation = self._get_action() or "unknown"
                API_CALLS.record(
                    caller_of(self.headers, self.querystring),
                    service,
                    operation,
                    server_ms=(time.perf_counter() - started) * 1000,
                    **request_shape(service, operation, self.body),
                )

    _replace(BaseResponse, "call_action", call_action)


# ------------------------------------------------------------------------------------------
# (h) smaller fidelity gaps: SQS ids, alarm states, percentiles, email subscriptions

# SQS: 1 to 128 alphanumeric and punctuation characters (the SendMessage reference).
_SQS_ID = re.compile(r"[A-Za-z0-9!-/:-@\[-`{-~]{1,128}")


def _invalid_sqs_id(group_id: str | None, deduplication_id: str | None) -> str | None:
    for name, value in (("MessageGroupId", group_id), ("MessageDeduplicationId", deduplication_id)):
        if value is not None and not _SQS_ID.fullmatch(value):
            return (
                f"Value {value[:200]} for parameter {name} is invalid. Reason: {name} can only "
                "include alphanumeric and punctuation characters. 1 to 128 in length."
            )
    return None


@_patch(
    "moto.sqs.models:SQSBackend._validate_message",
    "moto.sqs.models:SQSBackend.send_message_batch",
)
def sqs_message_group_and_deduplication_ids_validated() -> None:
    """SendMessage refuses a MessageGroupId or MessageDeduplicationId that SQS refuses, and
    SendMessageBatch fails that entry alone (SenderFault) and sends the others, as SQS does
    (moto took any string: an empty one, 300 characters, spaces, non-ASCII)."""
    from moto.sqs.exceptions import InvalidParameterValue
    from moto.sqs.models import MAXIMUM_MESSAGE_LENGTH, SQSBackend

    # The installed ones: the hot-path rewrite and the batch that keeps system attributes.
    validate = SQSBackend._validate_message
    send_batch = SQSBackend.send_message_batch

    def _validate_message(
        self: Any,
        queue: Any,
        message_body: str,
        delay_seconds: int,
        deduplication_id: str | None = None,
        group_id: str | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        refusal = _invalid_sqs_id(group_id, deduplication_id)
        if refusal is not None:
            raise InvalidParameterValue(refusal)
        validate(
            self, queue, message_body, delay_seconds, deduplication_id, group_id, *args, **kwargs
        )

    def send_message_batch(
        self: Any, queue_name: str, entries: dict[str, dict[str, Any]]
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        refused: list[dict[str, Any]] = []
        kept: dict[str, dict[str, Any]] = {}
        for key, entry in entries.items():
            refusal = _invalid_sqs_id(
                entry.get("MessageGroupId"), entry.get("MessageDeduplicationId")
            )
            if refusal is None:
                kept[key] = entry
            else:
                refused.append(
                    {
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": "InvalidParameterValue",
                        "Message": refusal,
                    }
                )
        if not refused or not _batch_is_well_formed(entries):
            # moto's batch-level errors (entry ids, count, size) come before any entry's.
            return send_batch(self, queue_name, entries)
        self.get_queue(queue_name)
        sent, failed = send_batch(self, queue_name, kept) if kept else ([], [])
        return sent, [*failed, *refused]

    def _batch_is_well_formed(entries: dict[str, dict[str, Any]]) -> bool:
        ids = [entry["Id"] for entry in entries.values()]
        return (
            len(ids) <= 10
            and len(set(ids)) == len(ids)
            and all(re.fullmatch(r"[\w-]{1,80}", i) for i in ids)
            and sum(len(e["MessageBody"]) for e in entries.values()) <= MAXIMUM_MESSAGE_LENGTH
        )

    _replace(SQSBackend, "_validate_message", _validate_message)
    _replace(SQSBackend, "send_message_batch", send_message_batch)


@_patch("moto.cloudwatch.models:CloudWatchBackend.put_metric_alarm")
def cloudwatch_alarms_start_insufficient_data() -> None:
    """A new alarm starts in INSUFFICIENT_DATA, as on AWS (moto: OK); updating an alarm keeps
    its state and history (moto replaced it with a new alarm in OK)."""
    from moto.cloudwatch.models import CloudWatchBackend

    put = _original(CloudWatchBackend, "put_metric_alarm")

    def put_metric_alarm(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        previous = self.alarms.get(name)
        alarm = put(self, name, *args, **kwargs)
        if previous is None:
            alarm.state_value = "INSUFFICIENT_DATA"
        else:
            for attr in (
                "state_value",
                "state_reason",
                "state_reason_data",
                "state_updated_timestamp",
                "history",
            ):
                setattr(alarm, attr, getattr(previous, attr))
        return alarm

    _replace(CloudWatchBackend, "put_metric_alarm", put_metric_alarm)


def _percentile_or_none(values: list[float], statistic: str) -> float | None:
    from streamline.local.alarm_evaluator import percentile

    try:
        return percentile(values, statistic)
    except ValueError:
        return None


@_patch(
    "moto.cloudwatch.models:Statistics.get_statistics_for_type",
    "moto.cloudwatch.responses:CloudWatchResponse.get_metric_statistics",
)
def cloudwatch_percentiles() -> None:
    """GetMetricStatistics answers ExtendedStatistics (p99, p99.9, ...) and GetMetricData a
    ``pNN`` Stat (moto answered the first with a 500 and the second with no values), so
    percentile widgets and alarms work locally. Percentiles need raw values, as on AWS: data
    sent as a StatisticSet has none."""
    from moto.cloudwatch.models import Statistics
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.responses import ActionResult

    by_type = _original(Statistics, "get_statistics_for_type")

    def raw_values(self: Any) -> list[float]:
        # PutMetricData's Values/Counts arrive here as single values; a StatisticSet has none.
        return [float(v) for v in self.metric_single_values_list]

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        if isinstance(stat, str) and stat.startswith("p"):
            return _percentile_or_none(raw_values(self), stat)
        return by_type(self, stat)

    def extended_statistics(self: Any) -> dict[str, float] | None:
        wanted = [s for s in self.stats if isinstance(s, str) and s.startswith("p")]
        if not wanted:
            return None
        values = raw_values(self)
        found = {s: _percentile_or_none(values, s) for s in wanted}
        return {s: v for s, v in found.items() if v is not None} or None

    _replace(Statistics, "get_statistics_for_type", get_statistics_for_type)
    Statistics.extended_statistics = property(extended_statistics)  # type: ignore[attr-defined]

    def get_metric_statistics(self: Any) -> Any:
        from moto.cloudwatch.exceptions import InvalidParameterCombination, InvalidParameterValue

        statistics = self._get_param("Statistics", [])
        extended = self._get_param("ExtendedStatistics", [])
        if not statistics and not extended:
            raise InvalidParameterCombination(
                "Must specify either Statistics or ExtendedStatistics"
            )
        for name in extended:
            if _percentile_or_none([0.0], name) is None:
                raise InvalidParameterValue(
                    f"The value {name} for parameter ExtendedStatistics is not supported."
                )
        datapoints = self.cloudwatch_backend.get_metric_statistics(
            self._get_param("Namespace"),
            self._get_param("MetricName"),
            self._get_param("StartTime"),
            self._get_param("EndTime"),
            self._get_int_param("Period"),
            [*statistics, *extended],
            unit=self._get_param("Unit"),
            dimensions=self._get_param("Dimensions", []),
        )
        return ActionResult({"Label": self._get_param("MetricName"), "Datapoints": datapoints})

    _replace(CloudWatchResponse, "get_metric_statistics", get_metric_statistics)


_NEEDS_CONFIRMATION = ("email", "email-json")


@_patch(
    "moto.sns.models:SNSBackend.subscribe",
    "moto.sns.responses:SNSResponse.subscribe",
    "moto.sns.responses:SNSResponse.list_subscriptions",
    "moto.sns.responses:SNSResponse.list_subscriptions_by_topic",
)
def sns_email_subscriptions_pending_confirmation() -> None:
    """An email subscription waits for a confirmation nobody can click here: Subscribe answers
    ``pending confirmation``, the lists show ``PendingConfirmation`` and its attributes say so,
    as on AWS (moto showed a confirmed subscription's ARN)."""
    from moto.sns.models import SNSBackend
    from moto.sns.responses import SNSResponse

    subscribe = _original(SNSBackend, "subscribe")

    def backend_subscribe(self: Any, topic_arn: str, endpoint: str, protocol: str) -> Any:
        known = self._find_subscription(topic_arn, endpoint, protocol)
        subscription = subscribe(self, topic_arn, endpoint, protocol)
        if known is None and protocol in _NEEDS_CONFIRMATION:
            subscription.attributes["PendingConfirmation"] = "true"
            subscription.attributes["ConfirmationWasAuthenticated"] = "false"
        return subscription

    _replace(SNSBackend, "subscribe", backend_subscribe)

    def pending(subscription: Any) -> bool:
        return str(subscription.attributes.get("PendingConfirmation")).lower() == "true"

    response_subscribe = _original(SNSResponse, "subscribe")

    def subscribe_response(self: Any) -> Any:
        result = response_subscribe(self)
        arn = result.result["SubscriptionArn"]
        subscription = self.backend.subscriptions.get(arn)
        wants_arn = str(self._get_param("ReturnSubscriptionArn")).lower() == "true"
        if subscription is not None and pending(subscription) and not wants_arn:
            result.result["SubscriptionArn"] = "pending confirmation"
        return result

    def listed(subscriptions: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "SubscriptionArn": "PendingConfirmation" if pending(s) else s.arn,
                "Owner": s.owner,
                "Protocol": s.protocol,
                "Endpoint": s.endpoint,
                "TopicArn": s.topic_arn,
            }
            for s in subscriptions
        ]

    list_all = _original(SNSResponse, "list_subscriptions")
    list_by_topic = _original(SNSResponse, "list_subscriptions_by_topic")

    def list_subscriptions(self: Any) -> Any:
        result = list_all(self)
        result.result["Subscriptions"] = listed(result.result["Subscriptions"])
        return result

    def list_subscriptions_by_topic(self: Any) -> Any:
        result = list_by_topic(self)
        result.result["Subscriptions"] = listed(result.result["Subscriptions"])
        return result

    _replace(SNSResponse, "subscribe", subscribe_response)
    _replace(SNSResponse, "list_subscriptions", list_subscriptions)
    _replace(SNSResponse, "list_subscriptions_by_topic", list_subscriptions_by_topic)


# ------------------------------------------------------------------------------------------
# (i) function credentials and the IAM audit


@_patch("moto.sts.models:STSBackend.get_caller_identity")
def sts_caller_identity_of_function_keys() -> None:
    """GetCallerIdentity with a function's keys answers ``assumed-role/<role>/<function>`` and
    the role's id, as STS does for an execution role (moto knew only its own keys and answered
    ``user/moto``). See :mod:`streamline.local.identities`."""
    from moto.sts.models import STSBackend

    from streamline.local.identities import IDENTITIES

    original = _original(STSBackend, "get_caller_identity")

    def get_caller_identity(self: Any, access_key_id: str, region: str) -> tuple[str, str, str]:
        identity = IDENTITIES.by_key(access_key_id)
        if identity is None:
            return original(self, access_key_id, region)
        role_id = "AROA" + identity.access_key_id[4:]
        with contextlib.suppress(Exception):
            from moto.iam.models import iam_backends

            role = iam_backends[identity.account]["aws"].get_role_by_arn(identity.role_arn)
            role_id = role.id
        return f"{role_id}:{identity.function}", identity.assumed_role_arn, identity.account

    _replace(STSBackend, "get_caller_identity", get_caller_identity)


_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/")


@_patch("moto.core.authorization:ActionAuthenticatorMixin._authenticate_and_authorize_action")
def iam_audit_of_function_calls() -> None:
    """Each request a function signs is checked against its execution role's policies, report
    only (see :mod:`streamline.local.iam_audit`): moto's own enforcement stays off. Every JSON,
    query and REST service (``call_action``) and S3 pass here, before moto serves them."""
    from moto.core.authorization import ActionAuthenticatorMixin

    original = _original(ActionAuthenticatorMixin, "_authenticate_and_authorize_action")

    def _authenticate_and_authorize_action(
        self: Any, iam_request_cls: type, resource: str = "*"
    ) -> None:
        # The audit never fails or delays a request beyond reading the role's policies.
        with contextlib.suppress(Exception):
            _audit_request(self, iam_request_cls, resource)
        original(self, iam_request_cls, resource)

    _replace(
        ActionAuthenticatorMixin,
        "_authenticate_and_authorize_action",
        _authenticate_and_authorize_action,
    )


def _audit_request(response: Any, iam_request_cls: type, resource: str) -> None:
    from streamline.local import iam_audit
    from streamline.local.identities import IDENTITIES, access_key_of

    if durability.replaying():
        return  # audited when it first ran
    identity = IDENTITIES.by_key(access_key_of(response.headers, response.querystring))
    if identity is None:
        return  # not a function: the CLI, CDK, tests, the engines
    authorization = _header(response.headers, "Authorization") or ""
    scope = _SCOPE.search(authorization)
    is_s3 = iam_request_cls.__name__ == "S3IAMRequest"
    service = "s3" if is_s3 else (scope.group(2) if scope else response.service_name)
    operation = response.data.get("Action") if is_s3 else response._get_action()
    region = response.region
    account = identity.account or ACCOUNT_ID

    def param(name: str) -> Any:
        try:
            return response._get_param(name)
        except Exception:
            return None

    call = iam_audit.Call(
        service=str(service),
        operation=str(operation),
        params=param,
        region=region,
        account=account,
        path=getattr(response, "path", "") or "",
        target=_header(response.headers, "X-Amz-Target") or "",
        resource=resource,
    )
    requests = iam_audit.requests_for(call)
    from moto.iam.models import iam_backends

    iam_audit.aws_managed_documents()  # parsed once, outside the lock

    with MOTO_LOCK:
        try:
            documents = iam_audit.role_documents(iam_backends[account]["aws"], identity.role_arn)
        except Exception:
            return  # the role is gone (replaced by a redeploy): nothing to judge by
    context = {
        "aws:SecureTransport": "true",  # AWS's endpoints are TLS; the local one stands in
        "aws:PrincipalArn": identity.role_arn,
        "aws:PrincipalAccount": account,
        "aws:RequestedRegion": region,
    }
    iam_audit.audit(identity.function, requests, documents, context)


# ------------------------------------------------------------------------------------------
# (j) template properties moto's CloudFormation stores wrongly (see streamline.local.properties)


def _cfn_wrapper(owner: Any, adjust: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Wrap ``owner.create_from_cloudformation_json`` so it sees ``adjust``ed properties."""
    create = _original(owner, "create_from_cloudformation_json").__func__

    def create_from_cloudformation_json(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = dict(cloudformation_json.get("Properties") or {})
        adjusted = {**cloudformation_json, "Properties": adjust(properties)}
        return create(cls, resource_name, adjusted, account_id, region_name, **kwargs)

    _replace(owner, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json))


@_patch("moto.dynamodb.models.table:Table.create_from_cloudformation_json")
def dynamodb_cloudformation_sse_specification() -> None:
    """A table's ``SSESpecification`` (``SSEEnabled``) is applied and DescribeTable reports it
    (moto's table reads the API's ``Enabled``: the template's setting was stored unread)."""
    from moto.dynamodb.models.table import Table

    def adjust(properties: dict[str, Any]) -> dict[str, Any]:
        sse = properties.get("SSESpecification")
        if isinstance(sse, dict) and "SSEEnabled" in sse:
            api = {"Enabled": str(sse["SSEEnabled"]).lower() == "true"}
            for key in ("SSEType", "KMSMasterKeyId"):
                if sse.get(key):
                    api[key] = sse[key]
            properties["SSESpecification"] = api if api["Enabled"] else None
        return properties

    _cfn_wrapper(Table, adjust)


@_patch("moto.awslambda.models:EventSourceMapping.create_from_cloudformation_json")
def lambda_event_source_mapping_cloudformation_tags() -> None:
    """A mapping's template ``Tags`` (a list of Key/Value) are stored as the tag map the Lambda
    tagging APIs use (moto kept the list, and ListTags/TagResource on the mapping failed)."""
    from moto.awslambda.models import EventSourceMapping

    def adjust(properties: dict[str, Any]) -> dict[str, Any]:
        tags = properties.get("Tags")
        if isinstance(tags, list):
            properties["Tags"] = {str(t["Key"]): str(t.get("Value", "")) for t in tags}
        return properties

    _cfn_wrapper(EventSourceMapping, adjust)


# ------------------------------------------------------------------------------------------
# (k) custom resources: invoked at deploy time, waited for, updated and deleted

#: How long a stack operation waits for a custom resource's answer (the CDK CLI gives up on a
#: request after 300 s; CloudFormation's own default is an hour).
CUSTOM_RESOURCE_TIMEOUT = 240.0
#: After the function returned an error without answering, how long an answer may still come.
_ANSWER_GRACE = 2.0


class _Answers:
    """Bodies PUT to custom resources' ResponseURLs, by RequestId, each with its waiter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[str, dict[str, Any]] = {}
        self._events: dict[str, threading.Event] = {}

    def expect(self, request_id: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(request_id, threading.Event())

    def deliver(self, body: dict[str, Any]) -> bool:
        """Keep an answer; True when a stack operation is waiting for it."""
        request_id = str(body.get("RequestId", ""))
        with self._lock:
            event = self._events.get(request_id)
            if event is None:
                return False
            self._bodies.setdefault(request_id, body)  # the first answer counts, as in CFN
            event.set()
            return True

    def take(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._events.pop(request_id, None)
            return self._bodies.pop(request_id, None)


CUSTOM_RESOURCE_ANSWERS = _Answers()


class CustomResourceFailed(Exception):
    """A custom resource answered FAILED, never answered, or could not be invoked."""


def stringified(value: Any) -> Any:
    """Resource properties as CloudFormation sends them to a custom resource: every scalar a
    string (``true`` -> ``"true"``, ``7`` -> ``"7"``), lists and maps kept."""
    if isinstance(value, dict):
        return {k: stringified(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringified(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _ask_custom_resource(function_arn: str, event: dict[str, Any]) -> dict[str, Any]:
    """Send ``event`` to a custom resource's function and return its answer (the body it PUT
    to the ResponseURL). moto's lock is released meanwhile, as the function calls moto back;
    the random source is kept, so ids drawn after it are the ones a replay draws."""
    from moto.moto_api._internal import mock_random

    request_id = event["RequestId"]
    if durability.replaying():  # never run a function while replaying: reuse its answer
        recorded = durability.recorded_cfn_answer(request_id)
        if recorded is None:
            return {"Status": "FAILED", "Reason": "the local cloud stopped before it answered"}
        return recorded
    if _invoker is None:
        raise _no_engine("function runner")
    waiter = CUSTOM_RESOURCE_ANSWERS.expect(request_id)
    state = mock_random.getstate()
    owned = MOTO_LOCK._is_owned()  # type: ignore[attr-defined]
    saved = MOTO_LOCK._release_save() if owned else None  # type: ignore[attr-defined]
    failure = None
    try:
        with durability.snapshots_held():
            try:
                result = _invoker.invoke(function_arn, json.dumps(event).encode())
            except Exception as exc:
                failure = f"invoking {function_arn} failed: {exc}"
            else:
                if result.function_error:
                    if not waiter.wait(_ANSWER_GRACE):
                        failure = f"its function failed: {_error_text(result.payload)}"
                elif not waiter.wait(CUSTOM_RESOURCE_TIMEOUT):
                    failure = f"no answer within {CUSTOM_RESOURCE_TIMEOUT:.0f} s"
    finally:
        if owned:
            MOTO_LOCK._acquire_restore(saved)  # type: ignore[attr-defined]
        mock_random.setstate(state)
    answer = CUSTOM_RESOURCE_ANSWERS.take(request_id)
    if answer is None:
        return {"Status": "FAILED", "Reason": failure or "no answer"}
    return answer


def _error_text(payload: bytes) -> str:
    try:
        document = json.loads(payload)
        return f"{document.get('errorType')}: {document.get('errorMessage')}"
    except (ValueError, AttributeError):
        return payload.decode("utf-8", "replace")[:300]


def _custom_event(model: Any, request_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    import moto.settings
    from moto.moto_api._internal import mock_random

    host = f"{moto.settings.moto_server_host()}:{moto.settings.moto_server_port()}"
    event = {
        "RequestType": request_type,
        "ServiceToken": properties["ServiceToken"],
        "ResponseURL": f"{host}/cloudformation_{model.region_name}/cfnresponse"
        f"?stack={model.stack_id}",
        "StackId": model.stack_id,
        "RequestId": str(mock_random.uuid4()),
        "LogicalResourceId": model.logical_id,
        "ResourceType": model.resource_type,
        "ResourceProperties": stringified(properties),
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = model.physical_resource_id
    return event


def _settle(model: Any, request_type: str, answer: dict[str, Any]) -> None:
    if answer.get("Status") != "SUCCESS":
        raise CustomResourceFailed(
            f"{model.logical_id} ({model.resource_type}) {request_type} failed: "
            f"{answer.get('Reason') or 'no reason given'}"
        )
    physical = answer.get("PhysicalResourceId")
    if physical:
        model.physical_id = str(physical)
    data = answer.get("Data")
    model.set_data(data if isinstance(data, dict) else {})


def _function_arn(account_id: str, region_name: str, token: str) -> str:
    from moto.awslambda.utils import get_backend

    try:
        return str(get_backend(account_id, region_name).get_function(token).function_arn)
    except Exception:
        raise CustomResourceFailed(
            f"ServiceToken {token} names no function the local cloud holds (the local cloud "
            "runs Lambda-backed custom resources only)"
        ) from None


# How a custom resource is created, updated and deleted (installed on moto's CustomModel).


def _custom_create(
    cls: Any,
    resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    from moto.cloudformation import cloudformation_backends
    from moto.cloudformation.custom_model import CustomModel

    properties = dict(cloudformation_json.get("Properties") or {})
    factory: Any = CustomModel
    model = factory(region_name, "", kwargs["LogicalId"], resource_name)
    model.stack_id = kwargs["StackId"]
    model.resource_type = kwargs["ResourceType"]
    model.account_id = account_id
    model.properties = properties
    function_arn = _function_arn(account_id, region_name, properties.get("ServiceToken", ""))
    event = _custom_event(model, "Create", properties)
    model.request_id = event["RequestId"]
    stack = cloudformation_backends[account_id][region_name].get_stack(model.stack_id)
    stack.add_custom_resource(model)
    _settle(model, "Create", _ask_custom_resource(function_arn, event))
    return model


def _custom_update(
    cls: Any,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> Any:
    model = original_resource
    properties = dict(cloudformation_json.get("Properties") or {})
    old = dict(getattr(model, "properties", {}) or {})
    if old.get("ServiceToken") not in (None, properties.get("ServiceToken")):
        raise CustomResourceFailed(
            f"{model.logical_id}: a custom resource's ServiceToken cannot change"
        )
    function_arn = _function_arn(account_id, region_name, properties.get("ServiceToken", ""))
    event = _custom_event(model, "Update", properties)
    event["OldResourceProperties"] = stringified(old)
    previous_id = model.physical_resource_id
    _settle(model, "Update", _ask_custom_resource(function_arn, event))
    model.properties = properties
    if model.physical_resource_id != previous_id:
        # A new physical resource replaced the old one: CloudFormation deletes the old.
        cleanup = _custom_event(model, "Delete", old)
        cleanup["PhysicalResourceId"] = previous_id
        answer = _ask_custom_resource(function_arn, cleanup)
        if answer.get("Status") != "SUCCESS":
            _log.warning(
                "custom resource %s: deleting the replaced %s failed: %s",
                model.logical_id,
                previous_id,
                answer.get("Reason"),
            )
    return model


def _custom_delete(self: Any, account_id: str, region_name: str) -> None:
    properties = dict(getattr(self, "properties", {}) or {})
    if not properties.get("ServiceToken"):
        return  # made before this patch: nothing to tell
    try:
        function_arn = _function_arn(account_id, region_name, properties["ServiceToken"])
    except CustomResourceFailed:
        return  # its function is gone: CloudFormation would wait an hour, then go on
    event = _custom_event(self, "Delete", properties)
    _settle(self, "Delete", _ask_custom_resource(function_arn, event))


@_patch(
    "moto.cloudformation.parsing:resource_class_from_type",
    "moto.cloudformation.custom_model:CustomModel.create_from_cloudformation_json",
    "moto.cloudformation.custom_model:CustomModel.physical_resource_id",
    "moto.cloudformation.responses:CloudFormationResponse.process_cfn_response",
    "moto.cloudformation.parsing:ResourceMap.delete",
    "moto.cloudformation.models:CloudFormationBackend.execute_change_set",
)
def custom_resources_run_at_deploy_time() -> None:
    """Custom resources behave as CloudFormation documents: a stack operation sends Create,
    Update and Delete to the resource's function, waits for its answer, and fails naming the
    reason when it answers FAILED (or not at all); the answer's PhysicalResourceId and Data are
    what Ref and Fn::GetAtt read; scalar properties arrive as strings; ``AWS::CloudFormation::
    CustomResource`` counts too. moto sent Create only, from a thread that ran after the
    deploy had returned COMPLETE (outputs read None), ignored FAILED, never sent Update or
    Delete, and skipped the plain type."""
    import moto.cloudformation.parsing as parsing
    from moto.cloudformation.custom_model import CustomModel
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.models import CloudFormationBackend
    from moto.cloudformation.responses import CloudFormationResponse

    class_for = _original(parsing, "resource_class_from_type")

    def resource_class_from_type(resource_type: str) -> Any:
        if resource_type == "AWS::CloudFormation::CustomResource":
            return CustomModel
        return class_for(resource_type)

    _replace(parsing, "resource_class_from_type", resource_class_from_type)
    _replace(
        CustomModel,
        "physical_resource_id",
        property(lambda self: getattr(self, "physical_id", None) or self.resource_name),
    )

    _replace(CustomModel, "create_from_cloudformation_json", classmethod(_custom_create))
    _replace(CustomModel, "update_from_cloudformation_json", classmethod(_custom_update))
    _replace(CustomModel, "delete", _custom_delete)

    # Custom resources go first when a stack is deleted: their functions (and what those
    # clean up, like a bucket's objects) must still exist when Delete arrives.
    delete_map = _original(parsing.ResourceMap, "delete")

    def delete_resources(self: Any) -> None:
        for logical_id, resource in list(self._parsed_resources.items()):
            body = self._resource_json_map.get(logical_id, {})
            if isinstance(resource, CustomModel) and body.get("DeletionPolicy") != "Retain":
                custom: Any = resource
                custom.delete(self._account_id, self._region_name)
                self._parsed_resources.pop(logical_id, None)
        delete_map(self)

    _replace(parsing.ResourceMap, "delete", delete_resources)

    def process_cfn_response(self: Any) -> Any:
        try:
            body = json.loads(self.body or "{}")
        except ValueError:
            body = None
        if isinstance(body, dict):
            CUSTOM_RESOURCE_ANSWERS.deliver(body)
        return 200, {"status": 200}, ""

    _replace(CloudFormationResponse, "process_cfn_response", process_cfn_response)

    # A custom resource that failed fails the deploy, naming it and its reason.
    execute = CloudFormationBackend.execute_change_set  # the installed one (change sets patch)

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> Any:
        change_set = _find_change_set(self, change_set_name, stack_name)
        stack = self.stacks.get(change_set.stack_id) if change_set is not None else None
        new = stack is None or stack.status == "REVIEW_IN_PROGRESS"
        try:
            return execute(self, change_set_name, stack_name)
        except CustomResourceFailed as exc:
            if stack is not None:
                stack.status = "ROLLBACK_COMPLETE" if new else "UPDATE_ROLLBACK_COMPLETE"
            raise ValidationError(stack_name or change_set_name, str(exc)) from None

    _replace(CloudFormationBackend, "execute_change_set", execute_change_set)


_creating = threading.local()


@_patch("moto.cloudformation.parsing:ResourceMap.__getitem__")
def cloudformation_depends_on_first() -> None:
    """A resource is created after everything its ``DependsOn`` names, as CloudFormation
    orders them. moto created resources in template order (Ref and GetAtt targets on demand)
    and ignored DependsOn, so a custom resource ran before the IAM policy it depends on existed
    (CDK's LogRetention and AwsCustomResource add exactly that dependency)."""
    import moto.cloudformation.parsing as parsing

    get = _original(parsing.ResourceMap, "__getitem__")

    def __getitem__(self: Any, key: str) -> Any:
        if key not in self._parsed_resources:
            depends = (self._resource_json_map.get(key) or {}).get("DependsOn") or []
            pending = getattr(_creating, "keys", None)
            if pending is None:
                pending = _creating.keys = set()
            if depends and key not in pending:
                pending.add(key)  # a cycle (invalid in CloudFormation) must not recurse forever
                try:
                    for dependency in [depends] if isinstance(depends, str) else depends:
                        if dependency in self._resource_json_map and dependency not in pending:
                            __getitem__(self, dependency)
                finally:
                    pending.discard(key)
        return get(self, key)

    _replace(parsing.ResourceMap, "__getitem__", __getitem__)


@_patch(
    "moto.iam.models:Role.create_from_cloudformation_json",
    "moto.iam.models:Role.update_from_cloudformation_json",
)
def iam_role_managed_policy_arns_kept() -> None:
    """A role's template ``ManagedPolicyArns`` (CDK gives every Lambda role
    AWSLambdaBasicExecutionRole) are kept on the role, for the IAM audit to evaluate; moto
    dropped them (and AWS-managed policies exist in moto only as bundled documents)."""
    from moto.iam.models import Role

    create = _original(Role, "create_from_cloudformation_json").__func__
    update = _original(Role, "update_from_cloudformation_json").__func__

    def keep(role: Any, cloudformation_json: Any) -> Any:
        arns = (cloudformation_json.get("Properties") or {}).get("ManagedPolicyArns") or []
        role.template_managed_policy_arns = [str(a) for a in arns if isinstance(a, str)]
        return role

    def create_from_cloudformation_json(
        cls: Any, resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
    ) -> Any:
        role = create(cls, resource_name, cloudformation_json, *args, **kwargs)
        return keep(role, cloudformation_json)

    def update_from_cloudformation_json(
        cls: Any, original: Any, new_name: str, cloudformation_json: Any, *args: Any
    ) -> Any:
        role = update(cls, original, new_name, cloudformation_json, *args)
        return keep(role, cloudformation_json)

    _replace(Role, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json))
    _replace(Role, "update_from_cloudformation_json", classmethod(update_from_cloudformation_json))
