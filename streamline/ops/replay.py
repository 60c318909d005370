"""``streamline replay``: re-publish stream records by shard and sequence range, or the ranges that
AWS on-failure records in a failure queue point at.

Stream failure records hold only metadata (``KinesisBatchInfo`` / ``DDBStreamBatchInfo``: the
stream, shard and sequence range), so both modes re-read the records from the stream with the
recovery workflow's own :class:`orderflow.dal.StreamReader` and publish them the way its replay
task does: Kinesis records go back to the same stream with their original partition key;
DynamoDB stream records are handed to the stream's consumer (the ``changes`` function for the
``orders`` table) as a one-record synthetic stream event, synchronously, so a failure is seen.
Removals are skipped, as in the workflow: the changes function ignores them.

``--failure-queue`` deletes a message only when every record of its range was re-published;
other messages (poison envelopes, ranges past the stream's retention) are made visible again
for the recovery workflow, which quarantines them.

Exit status: 0 when everything was published (or ``--dry-run``), 1 when some record failed,
2 on a one-line error (bad arguments, no such stream, AWS unreachable).

Example::

    streamline replay --stream order-events --shard shardId-000000000000 \\
        --from 49650000000000000000000000000000000000000000000000000002 --dry-run
    streamline replay --stream orders --shard shardId-00000001-abc --from 100 --to 180
    streamline replay --failure-queue ingest --max 20
    streamline replay --failure-queue changes --profile prod --region eu-west-1

Why one module of ~600 lines: one subcommand, end to end (its arguments, resolving a stream and
its consumer from the stack outputs, reading and publishing a range, the failure-queue mode and
the report), like the other ``ops`` commands. The reading and publishing it shares with the
recovery workflow is already ``orderflow.dal``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamline.ops.target import (
    Target,
    add_command,
    add_target_arguments,
    command_error,
)
from streamline.topology import STREAM_ALIASES, replayable_failure_outputs

if TYPE_CHECKING:
    from orderflow.dal import StreamRecord
    from orderflow.recovery import StreamBatchFailure
    from orderflow.recovery_contract import ReplayTarget

__all__ = [
    "FAILURE_QUEUES",
    "STREAM_ALIASES",
    "PublishError",
    "ReplayError",
    "StreamRef",
    "dal_bound_to",
    "parse_sequence",
    "publish",
    "register",
    "run",
    "stream_of_arn",
]

#: ``--failure-queue`` names and the stack output holding each queue's URL.
FAILURE_QUEUES: dict[str, str] = replayable_failure_outputs()
DEFAULT_MAX_RECORDS = 1000
DEFAULT_MAX_MESSAGES = 10
# Past any real sequence number (Kinesis: 56 digits, DynamoDB Streams: up to 40): "to the end".
_OPEN_END = "9" * 128
# A failure message stays invisible this long while its range is replayed; long enough for a
# large range of synchronous invokes, short enough that a crashed run frees it soon.
_VISIBILITY_SECONDS = 300


class ReplayError(Exception):
    """A one-line, user-facing problem (bad arguments, unknown stream): exit status 2."""


class PublishError(Exception):
    """Publishing one record failed (the target refused or failed it)."""


@dataclass(frozen=True)
class StreamRef:
    """A stream to replay and where its records go.

    ``kind`` is ``kinesis`` (records go back to ``name``) or ``dynamodb`` (records go to the
    consumer function ``function``).
    """

    kind: str
    arn: str
    name: str
    function: str | None = None

    def publish_target(self) -> ReplayTarget:
        """The workflow's target spec for this stream (``orderflow.recovery_contract``)."""
        if self.kind == "kinesis":
            return {"type": "kinesis", "streamName": self.name, "streamArn": self.arn}
        return {"type": "lambda", "functionName": str(self.function), "streamArn": self.arn}


@dataclass
class ReplayReport:
    """What one replay did: records read, published and failed (with the reason)."""

    read: int = 0
    published: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    messages_deleted: int = 0
    messages_kept: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "published": self.published,
            "skipped": self.skipped,
            "failures": self.failures,
            "messagesDeleted": self.messages_deleted,
            "messagesKept": self.messages_kept,
            "notes": self.notes,
        }


# -- arguments ----------------------------------------------------------------------------


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add the ``replay`` command to the top-level subparsers object ``commands``."""
    parser = add_command(
        commands,
        parser_class,
        "replay",
        help="re-publish stream records by shard and sequence range, or a failure queue's ranges",
        doc=__doc__,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--stream",
        metavar="STREAM",
        help="order-events, orders, or a Kinesis / DynamoDB stream ARN",
    )
    source.add_argument(
        "--failure-queue",
        choices=sorted(FAILURE_QUEUES),
        help="replay the ranges of the AWS on-failure records in this failure queue",
    )
    parser.add_argument("--shard", metavar="SHARD_ID", help="shard id (with --stream)")
    parser.add_argument(
        "--from", dest="start", metavar="SEQ", help="first sequence number (with --stream)"
    )
    parser.add_argument(
        "--to",
        dest="end",
        metavar="SEQ",
        help="last sequence number, inclusive (default: the newest record)",
    )
    parser.add_argument(
        "--max",
        type=int,
        metavar="N",
        help=f"at most N records with --stream (default {DEFAULT_MAX_RECORDS}), "
        f"N messages with --failure-queue (default {DEFAULT_MAX_MESSAGES})",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="read and list the records; publish nothing"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_target_arguments(parser)
    parser.set_defaults(func=run)


def parse_sequence(value: str, flag: str) -> str:
    """A sequence number as given (decimal digits: both Kinesis and DynamoDB use them).

    Example::

        >>> parse_sequence(" 4960 ", "--from")
        '4960'
    """
    text = (value or "").strip()
    if not text.isdigit():
        raise ReplayError(f"{flag} must be a sequence number (digits only), got {value!r}")
    return text


def _check_arguments(args: argparse.Namespace) -> tuple[str, str] | None:
    """The (start, end) range for --stream mode, None for --failure-queue; ReplayError if bad."""
    if args.max is not None and args.max < 1:
        raise ReplayError(f"--max must be a positive number, got {args.max}")
    if args.failure_queue:
        extra = [flag for flag, v in (("--shard", args.shard), ("--from", args.start)) if v]
        if args.end:
            extra.append("--to")
        if extra:
            raise ReplayError(f"{', '.join(extra)} go with --stream, not --failure-queue")
        return None
    if args.stream not in STREAM_ALIASES:
        stream_of_arn(args.stream)  # a malformed name fails here, before any AWS call
    missing = [flag for flag, v in (("--shard", args.shard), ("--from", args.start)) if not v]
    if missing:
        raise ReplayError(f"--stream needs {' and '.join(missing)}")
    start = parse_sequence(args.start, "--from")
    end = parse_sequence(args.end, "--to") if args.end else _OPEN_END
    if int(end) < int(start):
        raise ReplayError(f"--to ({end}) is before --from ({start})")
    return start, end


# -- resolving streams --------------------------------------------------------------------


def stream_of_arn(arn: str) -> tuple[str, str]:
    """``(kind, name)`` of a stream ARN: ``("kinesis", stream)`` or ``("dynamodb", table)``.

    Example::

        >>> stream_of_arn("arn:aws:kinesis:eu-west-1:123456789012:stream/order-events")
        ('kinesis', 'order-events')
        >>> stream_of_arn("arn:aws:dynamodb:eu-west-1:1:table/orders/stream/2024-01-01T00:00:00")
        ('dynamodb', 'orders')
    """
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn":
        service, resource = parts[2], parts[5]
        if service == "kinesis" and resource.startswith("stream/"):
            return "kinesis", resource.removeprefix("stream/")
        pieces = resource.split("/")
        if service == "dynamodb" and len(pieces) >= 4 and pieces[::2][:2] == ["table", "stream"]:
            return "dynamodb", pieces[1]
    raise ReplayError(
        f"--stream must be {', '.join(STREAM_ALIASES)} or a Kinesis / DynamoDB stream ARN, "
        f"got {arn!r}"
    )


def _orders_stream_arn(target: Target, outputs: dict[str, str]) -> str:
    table = outputs.get("OrdersTableName")
    if not table:
        raise ReplayError("the stage's stacks have no OrdersTableName output")
    arn = target.client("dynamodb").describe_table(TableName=table)["Table"].get("LatestStreamArn")
    if not arn:
        raise ReplayError(f"table {table} has no stream")
    return str(arn)


def _consumer_of(target: Target, arn: str) -> str:
    lam = target.client("lambda")
    functions = sorted(
        {
            str(m["FunctionArn"]).split(":")[6]
            for page in lam.get_paginator("list_event_source_mappings").paginate(EventSourceArn=arn)
            for m in page.get("EventSourceMappings", [])
        }
    )
    if len(functions) != 1:
        found = ", ".join(functions) or "none"
        raise ReplayError(f"{arn} needs exactly one consuming function to replay into ({found})")
    return functions[0]


def resolve_stream(target: Target, outputs: dict[str, str], value: str) -> StreamRef:
    """The stream ``--stream`` names: a pipeline alias or an ARN."""
    if value == "order-events":
        return StreamRef(
            "kinesis", outputs["OrderEventsStreamArn"], outputs["OrderEventsStreamName"]
        )
    if value == "orders":
        arn = _orders_stream_arn(target, outputs)
        return StreamRef(
            "dynamodb", arn, outputs["OrdersTableName"], outputs["ChangesFunctionName"]
        )
    kind, name = stream_of_arn(value)
    if kind == "kinesis":
        return StreamRef("kinesis", value, name)
    orders = outputs.get("OrdersTableName")
    if orders and name == orders and value == _orders_stream_arn(target, outputs):
        return StreamRef("dynamodb", value, name, outputs["ChangesFunctionName"])
    return StreamRef("dynamodb", value, name, _consumer_of(target, value))


# -- the recovery code, pointed at the target ---------------------------------------------

_DAL_ENVIRONMENT = (
    "AWS_ENDPOINT_URL",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "_X_AMZN_TRACE_ID",
    "POWERTOOLS_TRACE_DISABLED",
    "AWS_ACCOUNT_ID_ENDPOINT_MODE",
)


@contextmanager
def dal_bound_to(target: Target) -> Iterator[None]:
    """Point ``orderflow.dal``'s clients at ``target`` while the block runs.

    The recovery adapters build their boto3 clients from the environment (as in Lambda), so the
    same code the workflow runs serves the CLI once the environment names the target: the local
    endpoint with test credentials, or the profile/region of a real account. The environment and
    the adapters' client cache are restored afterwards.

    Example::

        with dal_bound_to(target):
            records = StreamReader().kinesis_range(arn, shard, start, end, 100)
    """
    from orderflow.dal import reset_clients

    saved = {name: os.environ.get(name) for name in _DAL_ENVIRONMENT}
    env: dict[str, str | None] = {
        # No invocation to continue a trace from; and no X-Ray SDK import for a CLI run.
        "_X_AMZN_TRACE_ID": None,
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    if target.endpoint_url is not None:
        from streamline.local.cloud import TEST_CREDENTIALS

        env.update(TEST_CREDENTIALS)
        env.update(
            {
                "AWS_ENDPOINT_URL": target.endpoint_url,
                "AWS_PROFILE": None,
                "AWS_SESSION_TOKEN": None,
                # as `streamline local env`: account-based endpoints would bypass the local one
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            }
        )
    else:
        if target.profile:
            # Key variables would win over AWS_PROFILE; Target.client uses the profile alone.
            env.update(
                {
                    "AWS_PROFILE": target.profile,
                    "AWS_ACCESS_KEY_ID": None,
                    "AWS_SECRET_ACCESS_KEY": None,
                    "AWS_SESSION_TOKEN": None,
                }
            )
        if target.region:
            env.update({"AWS_REGION": target.region, "AWS_DEFAULT_REGION": target.region})
    _apply(env)
    reset_clients()
    try:
        yield
    finally:
        _apply(saved)
        reset_clients()


def _apply(env: dict[str, str | None]) -> None:
    for name, value in env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def publish(
    spec: ReplayTarget,
    payload: str | bytes,
    *,
    dedup_suffix: str,
    partition_key: str | None = None,
) -> str:
    """Publish one payload to a workflow target spec, as the recovery workflow's replay does.

    Call inside :func:`dal_bound_to`. ``spec`` is a workflow target (``kinesis``, ``sqs``,
    ``lambda`` or ``lambda-async``); ``dedup_suffix`` makes the FIFO deduplication id fresh
    (``<task id>:<suffix>``: the original id may still be inside FIFO's 5-minute window);
    ``partition_key`` keeps a re-read Kinesis record's own key (default: the order id, as the
    workflow derives it). Returns where it went, for the report.

    The workflow's replay task calls the same ``orderflow.dal.replay.publish_replay``.

    Raises:
        PublishError: the target failed the record (a sync invoke error or batch item failure).
    """
    from orderflow.dal.replay import ReplayPublishError, publish_replay

    try:
        return publish_replay(spec, payload, dedup_suffix=dedup_suffix, partition_key=partition_key)
    except (ReplayPublishError, ValueError) as exc:
        raise PublishError(str(exc)) from exc


# -- replaying ----------------------------------------------------------------------------


def read_range(
    stream: StreamRef, shard: str, start: str, end: str, limit: int
) -> list[StreamRecord]:
    """The records of ``shard`` from ``start`` to ``end`` (inclusive), at most ``limit``.

    Call inside :func:`dal_bound_to`.
    """
    from orderflow.dal import StreamReader

    reader = StreamReader()
    read = reader.kinesis_range if stream.kind == "kinesis" else reader.dynamodb_range
    return list(read(stream.arn, shard, start, end, limit))


def replay_records(
    stream: StreamRef, records: Sequence[StreamRecord], report: ReplayReport, *, label: str
) -> bool:
    """Publish ``records`` to where ``stream``'s records go; True when every one was published."""
    spec = stream.publish_target()
    ok = True
    for record in records:
        if stream.kind == "dynamodb" and record.event_name == "REMOVE":
            report.skipped += 1  # the changes function ignores removals (as the workflow does)
            continue
        try:
            publish(
                spec,
                record.data,
                dedup_suffix=f"replay:{record.sequence_number}",
                partition_key=record.partition_key if stream.kind == "kinesis" else None,
            )
        except Exception as exc:
            ok = False
            reason = " ".join(str(exc).split()) or type(exc).__name__
            report.failures.append(f"{label} sequence {record.sequence_number}: {reason}")
            continue
        report.published += 1
    return ok


def _replay_stream(
    target: Target, args: argparse.Namespace, start: str, end: str
) -> tuple[ReplayReport, list[dict[str, Any]]]:
    outputs = target.stack_outputs()
    stream = resolve_stream(target, outputs, args.stream)
    limit = args.max or DEFAULT_MAX_RECORDS
    report = ReplayReport()
    with dal_bound_to(target):
        try:
            records = read_range(stream, args.shard, start, end, limit)
        except Exception as exc:
            if type(exc).__module__.split(".")[0] != "botocore":
                raise
            # A wrong shard or sequence number is the user's to fix: one line, exit 2.
            raise ReplayError(
                f"cannot read {stream.name} shard {args.shard}: {' '.join(str(exc).split())}"
            ) from None
        report.read = len(records)
        if len(records) >= limit:
            report.notes.append(
                f"stopped at --max {limit}; continue after {records[-1].sequence_number}"
            )
        if not args.dry_run:
            replay_records(stream, records, report, label=f"{stream.name} {args.shard}")
    listed = [
        {
            "sequenceNumber": r.sequence_number,
            "partitionKey": r.partition_key,
            "eventName": r.event_name,
            "bytes": len(r.data),
        }
        for r in records
    ]
    return report, listed


def _replay_failure_queue(target: Target, args: argparse.Namespace) -> ReplayReport:
    from orderflow.dal import FailureQueue
    from orderflow.recovery import StreamBatchFailure, parse_failure_message

    outputs = target.stack_outputs()
    url = outputs.get(FAILURE_QUEUES[args.failure_queue])
    if not url:
        raise ReplayError(f"the stage's stacks have no {FAILURE_QUEUES[args.failure_queue]}")
    wanted = args.max or DEFAULT_MAX_MESSAGES
    report = ReplayReport()
    streams: dict[str, StreamRef] = {}
    with dal_bound_to(target):
        queue = FailureQueue(url)
        # Kept messages are released only at the end: released at once, the next receive would
        # hand the same ones back and they would fill --max.
        kept: list[str] = []
        try:
            taken = 0
            while taken < wanted:
                messages = queue.receive(min(10, wanted - taken), _VISIBILITY_SECONDS)
                if not messages:
                    break
                taken += len(messages)
                done: list[str] = []
                for message in messages:
                    parsed = parse_failure_message(message["Body"])
                    if not isinstance(parsed, StreamBatchFailure):
                        # Poison envelopes carry their record: the workflow quarantines them.
                        kept.append(message["ReceiptHandle"])
                        report.notes.append(
                            f"message {message['MessageId']}: not a stream range; kept"
                        )
                    elif _replay_range(target, outputs, streams, parsed, report):
                        done.append(message["ReceiptHandle"])
                    else:
                        kept.append(message["ReceiptHandle"])  # the whole range, for later
                if done:
                    deleted, undeleted = queue.delete(done)
                    report.messages_deleted += deleted
                    kept.extend(undeleted)
        finally:
            for handle in kept:
                queue.release(handle)
            report.messages_kept += len(kept)
    return report


def _replay_range(
    target: Target,
    outputs: dict[str, str],
    streams: dict[str, StreamRef],
    failure: StreamBatchFailure,
    report: ReplayReport,
) -> bool:
    """Re-read and publish one on-failure record's range; True when all of it was published."""
    label = f"{failure.shard_id} {failure.start_sequence}..{failure.end_sequence}"
    try:
        if failure.stream_arn not in streams:
            streams[failure.stream_arn] = resolve_stream(target, outputs, failure.stream_arn)
        stream = streams[failure.stream_arn]
        label = f"{stream.name} {label}"
        records = read_range(
            stream,
            failure.shard_id,
            failure.start_sequence,
            failure.end_sequence,
            DEFAULT_MAX_RECORDS,
        )
    except Exception as exc:  # one unreadable range must not strand the other messages
        if not isinstance(exc, ReplayError) and type(exc).__module__.split(".")[0] != "botocore":
            raise
        report.failures.append(f"{label}: cannot read: {' '.join(str(exc).split())}")
        return False
    report.read += len(records)
    if not records:
        report.notes.append(
            f"{label}: no records left in the stream (past retention?); "
            "kept for the recovery workflow"
        )
        return False
    return replay_records(stream, records, report, label=label)


# -- the command --------------------------------------------------------------------------


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Replay a range or a failure queue; exit 0 ok, 1 when a record failed, 2 on an error."""
    listed: list[dict[str, Any]] = []
    try:
        bounds = _check_arguments(args)
        target = target or Target.from_args(args)
        if bounds is None:
            report = _replay_failure_queue(target, args)
        else:
            report, listed = _replay_stream(target, args, *bounds)
    except Exception as exc:
        return command_error(exc, "cannot replay", ReplayError)
    if args.json:
        print(json.dumps({**report.to_json(), "records": listed}, indent=2))
    else:
        _print_report(args, report, listed)
    return 1 if report.failures else 0


def _print_report(
    args: argparse.Namespace, report: ReplayReport, listed: list[dict[str, Any]]
) -> None:
    if args.failure_queue:
        print(
            f"{args.failure_queue} failure queue: {report.read} records read, "
            f"{report.published} re-published, {report.skipped} removals skipped; "
            f"{report.messages_deleted} messages deleted, {report.messages_kept} kept"
        )
    else:
        span = (
            f" ({listed[0]['sequenceNumber']} .. {listed[-1]['sequenceNumber']})" if listed else ""
        )
        print(f"{args.stream} shard {args.shard}: {report.read} records{span}")
        if args.dry_run:
            for record in listed:
                key = record["partitionKey"] or record["eventName"] or ""
                print(f"  {record['sequenceNumber']}  {key}  {record['bytes']} bytes")
            print("dry run: nothing published")
        else:
            print(f"re-published {report.published}, skipped {report.skipped} removals")
    for note in report.notes:
        print(f"note: {note}")
    for failure in report.failures:
        print(f"failed: {failure}", file=sys.stderr)
