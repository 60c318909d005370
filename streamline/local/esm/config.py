"""An immutable snapshot of one moto EventSourceMapping, as the engine reads it each poll.

moto 5.2.5 stores every field we need on ``moto.awslambda.models.EventSourceMapping`` (checked:
batch_size, enabled, starting_position(_timestamp), function_response_types, filter_criteria,
max_batch_window, bisect_on_error, max_retry_attempts, max_record_age, destination_config,
parallelization_factor, tumbling_window, scaling_config), both from the API and from
CloudFormation. Snapshots are compared to decide whether a worker must be reconfigured.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from streamline.local.esm.filters import FilterError, FilterMatcher

__all__ = ["DEFAULT_SQS_CONCURRENCY", "MappingConfig", "SourceKind", "source_kind_of"]

#: Concurrent batches per SQS mapping without ScalingConfig (AWS starts with five pollers).
DEFAULT_SQS_CONCURRENCY = 5
#: Upper bound on poller threads per SQS mapping; MaximumConcurrency above it is still honoured as
#: a cap (we never exceed it), we just do not run a thousand threads on a laptop.
MAX_SQS_POLLER_THREADS = 32


class SourceKind(enum.Enum):
    SQS = "sqs"
    KINESIS = "kinesis"
    DYNAMODB = "dynamodb"


def source_kind_of(arn: str) -> SourceKind:
    """The event source kind of an ARN (``arn:aws:sqs:...``, ``...:kinesis:...``, ``dynamodb``)."""
    service = arn.split(":")[2].lower() if arn.count(":") >= 2 else ""
    try:
        return SourceKind(service)
    except ValueError as exc:
        raise ValueError(f"unsupported event source ARN {arn!r}") from exc


@dataclass(frozen=True, slots=True)
class MappingConfig:
    """What the engine needs to know about one mapping, read under the backends lock."""

    uuid: str
    function_arn: str
    source_arn: str
    kind: SourceKind
    enabled: bool = True
    batch_size: int = 10
    batching_window: float = 0.0
    starting_position: str | None = None
    starting_position_timestamp: float | None = None
    report_item_failures: bool = False
    filter_criteria: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    filter_key: str = ""
    bisect: bool = False
    max_retry_attempts: int = -1
    max_record_age: int = -1
    on_failure_arn: str | None = None
    parallelization: int = 1
    tumbling_window: int = 0
    max_concurrency: int | None = None
    created_at: float | None = field(default=None, compare=False)

    @property
    def fifo(self) -> bool:
        return self.kind is SourceKind.SQS and self.source_arn.endswith(".fifo")

    @property
    def sqs_concurrency(self) -> int:
        wanted = self.max_concurrency or DEFAULT_SQS_CONCURRENCY
        return max(1, min(wanted, MAX_SQS_POLLER_THREADS))

    def matcher(self) -> FilterMatcher:
        return FilterMatcher.from_criteria(self.filter_criteria)

    def refusal(self) -> str | None:
        """Why the engine cannot honour this mapping, or None.

        CreateEventSourceMapping validation (esm.validation) normally refuses these first; this
        is the engine's own guard so a setting is never silently ignored (item 24).
        """
        if self.tumbling_window:
            return (
                f"TumblingWindowInSeconds={self.tumbling_window} is not supported by the local "
                "cloud; remove it (the mapping was not started)"
            )
        try:
            self.matcher()
        except FilterError as exc:
            return f"invalid FilterCriteria: {exc}"
        if self.kind is not SourceKind.SQS:
            if self.starting_position not in ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"):
                return f"unsupported StartingPosition {self.starting_position!r}"
            if self.starting_position == "AT_TIMESTAMP" and self.kind is SourceKind.DYNAMODB:
                return "StartingPosition AT_TIMESTAMP is not supported for DynamoDB Streams"
            if not 1 <= self.parallelization <= 10:
                return f"ParallelizationFactor {self.parallelization} is outside 1-10"
        return None

    @classmethod
    def from_moto(cls, esm: Any) -> MappingConfig:
        """Snapshot a ``moto.awslambda.models.EventSourceMapping`` (call under the lock)."""
        kind = source_kind_of(esm.event_source_arn)
        scaling = esm.scaling_config or {}
        destination = ((esm.destination_config or {}).get("OnFailure") or {}).get("Destination")
        criteria = esm.filter_criteria or None
        timestamp = esm.starting_position_timestamp
        if timestamp is not None and not isinstance(timestamp, int | float):
            # datetimes (CloudFormation) or ISO strings; botocore sends epoch numbers.
            timestamp = _to_epoch(timestamp)
        return cls(
            uuid=esm.uuid,
            function_arn=esm.function_arn,
            source_arn=esm.event_source_arn,
            kind=kind,
            enabled=_truthy(esm.enabled),
            batch_size=int(esm.batch_size or (10 if kind is SourceKind.SQS else 100)),
            batching_window=float(esm.max_batch_window or 0),
            starting_position=esm.starting_position,
            starting_position_timestamp=timestamp,
            report_item_failures="ReportBatchItemFailures" in (esm.function_response_types or []),
            filter_criteria=criteria,
            filter_key=repr(criteria),
            bisect=_truthy(esm.bisect_on_error),
            max_retry_attempts=_int(esm.max_retry_attempts, -1),
            max_record_age=_int(esm.max_record_age, -1),
            on_failure_arn=destination,
            parallelization=_int(esm.parallelization_factor, 1),
            tumbling_window=_int(esm.tumbling_window, 0),
            max_concurrency=_int(scaling.get("MaximumConcurrency"), 0) or None,
            created_at=getattr(esm, "streamline_created_at", None),
        )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    return int(value)


def _to_epoch(value: Any) -> float | None:
    from datetime import datetime

    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
