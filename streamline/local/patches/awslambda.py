"""Lambda: invocations reach our runner, moto's own event-source triggers are off, and what
moto's Lambda model drops or accepts wrongly is fixed.

- ``builtin_triggers_off``: moto fires SQS, Kinesis and DynamoDB-stream mappings itself,
  synchronously inside the producer's request; our ESM engine polls instead. One patch over
  the three services' models, here because what it silences is Lambda's event source mappings.
- ``lambda_invoker_replaced``: every invocation (Invoke API, InvokeAsync, Step Functions tasks,
  S3 notifications, custom resources) goes to the runner or async engine registered in
  :mod:`.invokers`, where moto would start a Docker container.
- ``lambda_event_source_mapping_validation``: mappings AWS refuses are refused
  (``esm.validation``), and the ESM engine hears of each change as it is made.
- Public layers accepted; LoggingConfig and DeadLetterConfig reported; the function properties
  and mapping tags moto's CloudFormation drops kept; event invoke configs replaced, not appended.
"""

from __future__ import annotations

import base64
import inspect
from collections.abc import Mapping
from typing import Any

from streamline.local import durability
from streamline.local.contracts import FunctionNotFound, Throttled, UnsupportedFunction
from streamline.local.patches.invokers import (
    current_invoker,
    lambda_error,
    mapping_observer,
    no_engine,
    submit_async,
)
from streamline.local.patches.registry import (
    PatchError,
    cfn_wrapper,
    install,
    moto_original,
    moto_patch,
    request_header,
)
from streamline.local.server import MOTO_LOCK

LOG_TAIL_BYTES = 4096


def _as_bytes(body: str | bytes | None) -> bytes:
    if not body:
        return b"{}"
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


@moto_patch(
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
        install(cls, "lambda_event_source_mappings", sink)


def _invoke(
    self: Any, body: str | bytes, request_headers: Any, response_headers: dict[str, Any]
) -> bytes:
    """Replacement for ``LambdaFunction.invoke`` (moto would start a Docker container)."""
    inv_type = request_header(request_headers, "X-Amz-Invocation-Type") or "RequestResponse"
    if inv_type == "DryRun":
        return b""
    payload = _as_bytes(body)
    version = str(getattr(self, "version", "$LATEST"))
    qualifier = None if version == "$LATEST" else version
    trace = request_header(request_headers, "X-Amzn-Trace-Id")
    # Internal callers (S3 notifications, log subscription filters) invoke from inside a request
    # that holds the moto lock; AWS invokes those asynchronously, and running the function inline
    # would deadlock when it calls moto back. So a caller holding the lock gets Event semantics.
    if inv_type == "Event" or MOTO_LOCK._is_owned():  # type: ignore[attr-defined]
        submit_async(self.function_arn, payload, qualifier, trace)
        return b""  # must not be None: moto's response turns None into a 404
    if durability.replaying():
        return b"{}"  # never run a function while replaying (its own changes are journaled)
    invoker = current_invoker()
    if invoker is None:
        raise no_engine("function runner")
    try:
        result = invoker.invoke(self.function_arn, payload, qualifier=qualifier, trace_header=trace)
    except Throttled as exc:
        raise lambda_error("TooManyRequestsException", str(exc) or "Rate Exceeded.", 429) from None
    except FunctionNotFound:
        from moto.awslambda.exceptions import UnknownFunctionException

        raise UnknownFunctionException(self.function_arn) from None
    except UnsupportedFunction as exc:
        raise lambda_error("InvalidRuntimeException", str(exc), 502) from None
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


@moto_patch(
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

    install(LambdaFunction, "invoke", _invoke)
    install(LambdaResponse, "invoke_async", _invoke_async_response)


@moto_patch(
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

    create = wrap_create(moto_original(LambdaBackend, "create_event_source_mapping"))
    update = wrap_update(moto_original(LambdaBackend, "update_event_source_mapping"))
    delete = moto_original(LambdaBackend, "delete_event_source_mapping")

    # The engine hears of each change from the request that makes it: a disabled mapping
    # receives nothing more once the request returns (AWS: nothing once it reports Disabled).
    def create_mapping(self: Any, spec: dict[str, Any]) -> Any:
        esm = create(self, spec)
        observer = mapping_observer()
        if observer is not None and esm is not None:
            observer.mapping_changed(esm.uuid, bool(esm.enabled))
        return esm

    def update_mapping(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
        esm = update(self, uuid, spec)
        observer = mapping_observer()
        if observer is not None and esm is not None:
            observer.mapping_changed(esm.uuid, bool(esm.enabled))
        return esm

    def delete_mapping(self: Any, uuid: str) -> Any:
        esm = delete(self, uuid)
        observer = mapping_observer()
        if observer is not None and esm is not None:
            observer.mapping_changed(esm.uuid, False, deleted=True)
        return esm

    install(LambdaBackend, "create_event_source_mapping", create_mapping)
    install(LambdaBackend, "update_event_source_mapping", update_mapping)
    install(LambdaBackend, "delete_event_source_mapping", delete_mapping)

    get_configuration = moto_original(EventSourceMapping, "get_configuration")

    def configuration(self: Any) -> dict[str, Any]:
        config = dict(get_configuration(self))
        config["StateTransitionReason"] = getattr(
            self, "state_transition_reason", config.get("StateTransitionReason", "User action")
        )
        observer = mapping_observer()
        if observer is not None:
            # "Disabling" until the pollers have stopped and in-flight batches are done.
            config["State"] = observer.mapping_state(self.uuid, bool(self.enabled))
        return config

    install(EventSourceMapping, "get_configuration", configuration)


@moto_patch("moto.awslambda.models:LambdaFunction._get_layers_data")
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

    install(LambdaFunction, "_get_layers_data", _get_layers_data)


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


@moto_patch("moto.awslambda.models:LambdaFunction.get_configuration")
def lambda_logging_config_reported() -> None:
    """GetFunction(Configuration) reports LoggingConfig, as AWS does for every function, and
    the DeadLetterConfig a template set (moto reports neither).

    moto has no such field, so tools that find a function's logs through it (``streamline
    logs``, ``status``, ``cost``) looked in ``/aws/lambda/<name>`` while a function deployed
    with its own log group writes elsewhere. AWS's default is Text in ``/aws/lambda/<name>``.
    """
    from moto.awslambda.models import LambdaFunction

    original = moto_original(LambdaFunction, "get_configuration")

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

    install(LambdaFunction, "get_configuration", get_configuration)


@moto_patch(
    "moto.awslambda.models:LambdaFunction.create_from_cloudformation_json",
    "moto.awslambda.models:LambdaFunction.update_from_cloudformation_json",
)
def lambda_cloudformation_properties() -> None:
    """CloudFormation functions keep Layers, TracingConfig, Architectures, LoggingConfig, DLQ.

    moto's CloudFormation model copies only a few properties; the rest were silently dropped.
    """
    from moto.awslambda.models import LambdaFunction

    create = moto_original(LambdaFunction, "create_from_cloudformation_json").__func__
    update = moto_original(LambdaFunction, "update_from_cloudformation_json").__func__

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

    install(
        LambdaFunction,
        "create_from_cloudformation_json",
        classmethod(create_from_cloudformation_json),
    )
    install(
        LambdaFunction,
        "update_from_cloudformation_json",
        classmethod(update_from_cloudformation_json),
    )


@moto_patch(
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

    install(LambdaBackend, "put_function_event_invoke_config", put)
    install(LambdaBackend, "update_function_event_invoke_config", update)


@moto_patch("moto.awslambda.models:EventSourceMapping.create_from_cloudformation_json")
def lambda_event_source_mapping_cloudformation_tags() -> None:
    """A mapping's template ``Tags`` (a list of Key/Value) are stored as the tag map the Lambda
    tagging APIs use (moto kept the list, and ListTags/TagResource on the mapping failed)."""
    from moto.awslambda.models import EventSourceMapping

    def adjust(properties: dict[str, Any]) -> dict[str, Any]:
        tags = properties.get("Tags")
        if isinstance(tags, list):
            properties["Tags"] = {str(t["Key"]): str(t.get("Value", "")) for t in tags}
        return properties

    cfn_wrapper(EventSourceMapping, adjust)
