"""CreateEventSourceMapping / UpdateEventSourceMapping validation moto does not do.

moto 5.2.5 only checks the source type and the per-source BatchSize maximum. AWS also refuses,
and so must we (items 7, 11, 13, 20, 24):

* SQS: BatchSize 1-10,000 (FIFO 1-10); BatchSize over 10 needs MaximumBatchingWindowInSeconds >= 1;
  the queue's VisibilityTimeout must not be below the function's timeout (item 11);
  ScalingConfig.MaximumConcurrency 2-1000; no stream-only settings.
* Kinesis / DynamoDB Streams: StartingPosition required (AT_TIMESTAMP for Kinesis only, with a
  timestamp); BatchSize 1-10,000; ParallelizationFactor 1-10; MaximumRetryAttempts -1..10,000;
  MaximumRecordAgeInSeconds -1 or 60-604,800; OnFailure destination an SQS, SNS or S3 ARN.
* All: MaximumBatchingWindowInSeconds 0-300; FunctionResponseTypes only ReportBatchItemFailures;
  FilterCriteria valid pattern syntax; TumblingWindowInSeconds refused (not implemented locally).

The patch point (``lambda_event_source_mapping_validation`` in
:mod:`streamline.local.patches.awslambda`) wraps moto's
``LambdaBackend.create_event_source_mapping`` and ``update_event_source_mapping``;
:func:`wrap_create` and :func:`wrap_update` build the wrappers.
Both paths (API and CloudFormation) go through those methods, so a bad template fails the deploy.

Example::

    problems = validate_spec({"EventSourceArn": arn, "FunctionName": "f", "BatchSize": 50},
                             queue_visibility_timeout=30, function_timeout=3)
    # ["BatchSize 50 requires MaximumBatchingWindowInSeconds of at least 1 second ..."]
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

from streamline.local.esm.config import SourceKind, source_kind_of
from streamline.local.esm.filters import FilterError, FilterMatcher

__all__ = [
    "MappingValidationError",
    "check_create",
    "check_update",
    "validate_spec",
    "wrap_create",
    "wrap_update",
]


class MappingValidationError(ValueError):
    """A mapping setting AWS would refuse (or the local cloud cannot honour)."""


def validate_spec(
    spec: Mapping[str, Any],
    *,
    queue_visibility_timeout: int | None = None,
    function_timeout: int | None = None,
) -> list[str]:
    """Every problem with a CreateEventSourceMapping request body ``spec`` (empty list if none).

    ``queue_visibility_timeout`` and ``function_timeout`` enable the item-11 check for SQS.
    """
    problems: list[str] = []
    arn = str(spec.get("EventSourceArn") or "")
    try:
        kind = source_kind_of(arn)
    except ValueError as exc:
        return [str(exc)]
    fifo = kind is SourceKind.SQS and arn.endswith(".fifo")
    stream = kind is not SourceKind.SQS

    batch = _number(spec, "BatchSize", problems)
    window = _number(spec, "MaximumBatchingWindowInSeconds", problems)
    if batch is not None:
        limit = 10 if fifo else 10_000
        if not 1 <= batch <= limit:
            problems.append(f"BatchSize {batch} is outside 1-{limit} for this event source")
    if window is not None and not 0 <= window <= 300:
        problems.append(f"MaximumBatchingWindowInSeconds {window} is outside 0-300")
    if kind is SourceKind.SQS and batch is not None and batch > 10 and (window or 0) < 1:
        problems.append(
            f"BatchSize {batch} requires MaximumBatchingWindowInSeconds of at least 1 second "
            "(SQS batches over 10 need a batching window)"
        )

    types = spec.get("FunctionResponseTypes") or []
    unknown = [t for t in types if t != "ReportBatchItemFailures"]
    if unknown:
        problems.append(f"unsupported FunctionResponseTypes {unknown}")

    try:
        FilterMatcher.from_criteria(spec.get("FilterCriteria"))
    except FilterError as exc:
        problems.append(f"invalid FilterCriteria: {exc}")

    tumbling = _number(spec, "TumblingWindowInSeconds", problems)
    if tumbling:
        problems.append(
            f"TumblingWindowInSeconds {tumbling} is not supported by the local cloud "
            "(state-carrying windows are not implemented; remove the setting)"
        )

    stream_only = (
        "StartingPosition",
        "StartingPositionTimestamp",
        "ParallelizationFactor",
        "BisectBatchOnFunctionError",
        "MaximumRetryAttempts",
        "MaximumRecordAgeInSeconds",
        "DestinationConfig",
    )
    if stream:
        _validate_stream(spec, kind, problems)
        if spec.get("ScalingConfig"):
            problems.append("ScalingConfig is only supported for Amazon SQS event sources")
    else:
        present = [k for k in stream_only if spec.get(k) not in (None, {}, False)]
        if present:
            problems.append(f"{', '.join(present)} not supported for Amazon SQS event sources")
        concurrency = (spec.get("ScalingConfig") or {}).get("MaximumConcurrency")
        if concurrency is not None and not 2 <= int(concurrency) <= 1000:
            problems.append(f"ScalingConfig.MaximumConcurrency {concurrency} is outside 2-1000")
        if (
            queue_visibility_timeout is not None
            and function_timeout is not None
            and queue_visibility_timeout < function_timeout
        ):
            problems.append(
                f"Queue visibility timeout: {queue_visibility_timeout} seconds is less than "
                f"Function timeout: {function_timeout} seconds"
            )
    return problems


def _validate_stream(spec: Mapping[str, Any], kind: SourceKind, problems: list[str]) -> None:
    position = spec.get("StartingPosition")
    allowed = (
        ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
        if kind is SourceKind.KINESIS
        else (
            "TRIM_HORIZON",
            "LATEST",
        )
    )
    if not position:
        problems.append("StartingPosition is required for Kinesis and DynamoDB Streams sources")
    elif position not in allowed:
        problems.append(f"StartingPosition {position} is not valid here; use one of {allowed}")
    elif position == "AT_TIMESTAMP" and spec.get("StartingPositionTimestamp") is None:
        problems.append("StartingPosition AT_TIMESTAMP requires StartingPositionTimestamp")
    factor = _number(spec, "ParallelizationFactor", problems)
    if factor is not None and not 1 <= factor <= 10:
        problems.append(f"ParallelizationFactor {factor} is outside 1-10")
    retries = _number(spec, "MaximumRetryAttempts", problems)
    if retries is not None and not -1 <= retries <= 10_000:
        problems.append(f"MaximumRetryAttempts {retries} is outside -1..10000")
    age = _number(spec, "MaximumRecordAgeInSeconds", problems)
    if age is not None and age != -1 and not 60 <= age <= 604_800:
        problems.append(f"MaximumRecordAgeInSeconds {age} must be -1 or 60-604800")
    destinations = spec.get("DestinationConfig") or {}
    if (destinations.get("OnSuccess") or {}).get("Destination"):
        problems.append("DestinationConfig.OnSuccess is not supported for stream event sources")
    target = (destinations.get("OnFailure") or {}).get("Destination")
    if target:
        service = str(target).split(":")[2] if str(target).count(":") >= 2 else ""
        if service not in ("sqs", "sns", "s3"):
            problems.append(
                f"OnFailure destination {target} must be an SQS queue, SNS topic or S3 bucket ARN"
            )


def _number(spec: Mapping[str, Any], key: str, problems: list[str]) -> int | None:
    value = spec.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        problems.append(f"{key} must be an integer, got {value!r}")
        return None


def _raise(problems: list[str]) -> None:
    if not problems:
        return
    message = "; ".join(problems)
    try:
        from moto.awslambda.exceptions import InvalidParameterValueException
    except ImportError:  # pragma: no cover - moto is a dev dependency
        raise MappingValidationError(message) from None
    raise InvalidParameterValueException(message)


def _lookups(backend: Any, spec: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """The SQS queue's VisibilityTimeout and the function's Timeout, when both exist."""
    arn = str(spec.get("EventSourceArn") or "")
    if not arn.startswith("arn:") or source_kind_of(arn) is not SourceKind.SQS:
        return None, None
    from moto.sqs.models import sqs_backends

    queue_vt = None
    sqs = sqs_backends[backend.account_id][backend.region_name]
    for queue in sqs.queues.values():
        if queue.queue_arn == arn:
            queue_vt = int(getattr(queue, "visibility_timeout", None) or 30)
            break
    function_timeout = None
    name = spec.get("FunctionName")
    if name:
        try:
            function_timeout = int(backend.get_function(name).timeout or 3)
        except Exception:  # moto raises its own not-found error later, with AWS's message
            function_timeout = None
    return queue_vt, function_timeout


def check_create(backend: Any, spec: Mapping[str, Any]) -> None:
    """Validate a CreateEventSourceMapping body against moto's state; raise moto's
    ``InvalidParameterValueException`` (HTTP 400) naming every problem.

    ``backend`` is a ``moto.awslambda.models.LambdaBackend``; call it with the backends lock held.
    """
    try:
        source_kind_of(str(spec.get("EventSourceArn") or ""))
    except ValueError:
        return  # let moto answer for unknown source types, as it does today
    vt, timeout = _lookups(backend, spec)
    _raise(validate_spec(spec, queue_visibility_timeout=vt, function_timeout=timeout))


def check_update(backend: Any, uuid: str, spec: Mapping[str, Any]) -> None:
    """Validate an UpdateEventSourceMapping body merged over the existing mapping."""
    esm = backend.get_event_source_mapping(uuid)
    if esm is None:
        return
    merged: dict[str, Any] = {
        k: v for k, v in esm.get_configuration().items() if k not in ("UUID", "State")
    }
    merged["FunctionName"] = esm.function_arn
    merged.update(spec)
    vt, timeout = _lookups(backend, merged)
    _raise(validate_spec(merged, queue_visibility_timeout=vt, function_timeout=timeout))


def wrap_create(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``LambdaBackend.create_event_source_mapping(self, spec)``: validate, create, then
    stamp ``streamline_created_at`` (LATEST starts from records after this instant)."""

    @functools.wraps(original)
    def create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
        check_create(self, spec)
        created_at = time.time()
        esm = original(self, spec)
        esm.streamline_created_at = created_at
        return esm

    create_event_source_mapping.__streamline_esm_validation__ = True  # type: ignore[attr-defined]
    return create_event_source_mapping


def wrap_update(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``LambdaBackend.update_event_source_mapping(self, uuid, spec)`` with validation."""

    @functools.wraps(original)
    def update_event_source_mapping(self: Any, uuid: str, spec: dict[str, Any]) -> Any:
        check_update(self, uuid, spec)
        return original(self, uuid, spec)

    update_event_source_mapping.__streamline_esm_validation__ = True  # type: ignore[attr-defined]
    return update_event_source_mapping
