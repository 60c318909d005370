"""The producer commands: ``streamline produce``, ``streamline events generate`` and ``invoke``.

``produce`` sends order events into one of the pipeline's entry points on the target (the local
cloud, or an AWS account with ``--profile``/``--region``), named by the stage's stack outputs:

- ``kinesis``: the events into ``order-events`` (the whole pipeline runs);
- ``sqs``: the tasks the pipeline would derive, into ``notifications`` (``--queue``, default)
  or ``fulfilment.fifo``;
- ``dynamodb``: the order states into the ``orders`` table (its stream drives changes onward).

Events are generated (``--count``, with ``--poison-rate`` / ``--transient-rate`` fault
injection and ``--seed``) or read from a JSON-lines file (``--file``, validated; an invalid line
is a one-line error naming it). A progress bar shows on stderr when it is a terminal; the last
line on stdout sums up. Exit status: 0, 1 if any event failed, 2 for a bad argument or target.

Example::

    streamline produce kinesis --count 1000 --rate 200 --poison-rate 0.01 --transient-rate 0.02
    streamline produce sqs --queue fulfilment --count 50 --seed 7
    streamline produce dynamodb --file events.jsonl
    streamline events generate kinesis --count 3 > event.json
    streamline invoke ingest --event event.json
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from orderflow.errors import PoisonRecordError
from orderflow.events import parse_event, read_json

from streamline.arguments import InputTooLarge, number, read_input
from streamline.ops.target import Target, TargetError, add_target_arguments
from streamline.producers.base import Producer
from streamline.producers.dynamodb import DynamoDbProducer
from streamline.producers.generate import Fault, PlannedEvent, generate_events
from streamline.producers.invoke import add_invoke_parser
from streamline.producers.kinesis import KinesisProducer
from streamline.producers.prepare import InvalidEventError
from streamline.producers.progress import Progress
from streamline.producers.report import ProduceReport
from streamline.producers.samples import SOURCES, sample_event
from streamline.producers.sqs import SqsProducer

__all__ = ["read_events_file", "register", "run_events", "run_produce"]

DESTINATIONS = ("kinesis", "sqs", "dynamodb")
QUEUES = {"notifications": "NotificationsQueueUrl", "fulfilment": "FulfilmentQueueUrl"}
_SHOWN_FAILURES = 10


class ProduceArgsError(Exception):
    """A combination of arguments that cannot work: one line, exit 2."""


#: Events a command generates at most (a bigger run is `streamline demo` or several produces).
MAX_EVENTS = 1_000_000
#: A --file larger than this is refused before it is read (about 2,000 bytes an event).
MAX_FILE_BYTES = 512 * 1024 * 1024
_count = number(int, lambda v: 1 <= v <= MAX_EVENTS, f"a whole number from 1 to {MAX_EVENTS:,}")
_sample_count = number(int, lambda v: 1 <= v <= 10_000, "a whole number from 1 to 10,000")
_rate = number(float, lambda v: 0 < v < 1e9, "a number of records/s above 0")
_fraction = number(float, lambda v: 0.0 <= v <= 1.0, "a fraction between 0 and 1")
_seconds = number(float, lambda v: 0 < v < 86400, "seconds above 0 (under a day)")
_attempts = number(int, lambda v: 1 <= v <= 100, "a whole number from 1 to 100")


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add ``produce``, ``events`` and ``invoke`` to the top-level subparsers ``commands``.

    Example::

        commands = parser.add_subparsers(dest="command", parser_class=_Parser)
        register(commands, _Parser)
    """
    _add_produce_parser(commands)
    _add_events_parser(commands, parser_class)
    add_invoke_parser(commands)


def _add_produce_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "produce",
        help="send order events into the pipeline (Kinesis, SQS tasks or orders items)",
        description=(
            "Send order events into the pipeline: kinesis (the order-events stream), sqs (the "
            "tasks the pipeline would derive, into notifications or fulfilment.fifo) or dynamodb "
            "(order states into the orders table). Exit 1 if any event failed."
        ),
    )
    parser.add_argument("destination", choices=DESTINATIONS, help="where the events go")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("-n", "--count", type=_count, metavar="N", help="generate N events")
    source.add_argument(
        "--file", metavar="FILE", help="send the events of a JSON-lines file (- for stdin)"
    )
    parser.add_argument("--rate", type=_rate, metavar="R", help="at most R records per second")
    parser.add_argument(
        "--poison-rate", type=_fraction, default=0.0, metavar="P", help="fraction of poison events"
    )
    parser.add_argument(
        "--transient-rate",
        type=_fraction,
        default=0.0,
        metavar="T",
        help="fraction of events failing transiently in ingest (kinesis only)",
    )
    parser.add_argument(
        "--transient-for",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="how long a transient event keeps failing (default 2)",
    )
    parser.add_argument("--seed", type=int, help="make the generated events reproducible")
    parser.add_argument(
        "--queue", choices=tuple(QUEUES), help="sqs: the task queue (default notifications)"
    )
    parser.add_argument(
        "--max-attempts",
        type=_attempts,
        default=8,
        metavar="N",
        help="tries per record before it is reported failed (default 8)",
    )
    add_target_arguments(parser)
    parser.set_defaults(func=run_produce)


def _add_events_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("events", help="sample Lambda events for the pipeline's sources")
    sub = parser.add_subparsers(dest="events_command", required=True, parser_class=parser_class)
    generate = sub.add_parser(
        "generate",
        help="print a sample Lambda event, like `sam local generate-event`",
        description="Print a Lambda event of SOURCE's exact shape carrying order-event payloads.",
    )
    generate.add_argument("source", choices=SOURCES, help="the event source")
    generate.add_argument(
        "-n", "--count", type=_sample_count, default=3, metavar="N", help="records (default 3)"
    )
    generate.add_argument("--seed", type=int, help="make the sample reproducible")
    generate.set_defaults(func=run_events)


def run_events(args: argparse.Namespace) -> int:
    """Print one sample event as JSON."""
    print(json.dumps(sample_event(args.source, args.count, seed=args.seed), indent=2))
    return 0


def read_events_file(source: str) -> list[PlannedEvent]:
    """Events from a JSON-lines file (``-``: stdin), each validated; blank lines are skipped.

    An event with ``chaos`` is planned as ``transient``; every other one as ``none``.

    Raises:
        InvalidEventError: ``<file>:<line>: <reason>`` for the first bad line.
    """
    if not source:
        raise InvalidEventError("--file must name a file (or - for stdin)")
    name = "stdin" if source == "-" else source
    try:
        text = read_input(source, MAX_FILE_BYTES).decode("utf-8")
    except InputTooLarge:
        raise InvalidEventError(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MiB") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InvalidEventError(f"cannot read {name}: {reason}") from None
    events = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            # Bounded like the pipeline's own parsers: any line is an event or a reason.
            payload = read_json(line, what="line")
            if not isinstance(payload, dict):
                raise InvalidEventError("not a JSON object")
            event = parse_event(line)
        except (ValueError, PoisonRecordError) as exc:
            raise InvalidEventError(f"{name}:{line_no}: {exc}") from None
        fault: Fault = "transient" if event.chaos else "none"
        events.append(
            PlannedEvent(event.event_id, event.order_id, event.version, event.type, fault, payload)
        )
    if not events:
        raise InvalidEventError(f"{name} holds no events")
    return events


def _check(args: argparse.Namespace) -> None:
    if args.count is None and args.file is None:
        raise ProduceArgsError("give --count N to generate events, or --file FILE to send some")
    if args.file is not None and (args.poison_rate or args.transient_rate or args.seed is not None):
        raise ProduceArgsError(
            "--poison-rate, --transient-rate and --seed apply to generated events, not --file"
        )
    if args.transient_rate and args.destination != "kinesis":
        raise ProduceArgsError(
            "--transient-rate needs kinesis: only ingest honours fault injection "
            "(tasks and orders items carry no chaos field)"
        )
    if args.queue and args.destination != "sqs":
        raise ProduceArgsError("--queue applies to produce sqs only")


def _producer(args: argparse.Namespace, target: Target, progress: Progress) -> tuple[Producer, str]:
    outputs = target.stack_outputs()
    if args.destination == "kinesis":
        key = "OrderEventsStreamName"
    elif args.destination == "dynamodb":
        key = "OrdersTableName"
    else:
        key = QUEUES[args.queue or "notifications"]
    if key not in outputs:
        raise TargetError(f"stage {target.stage} has no stack output {key}")
    name = outputs[key]
    options: dict[str, Any] = {
        "rate": args.rate,
        "max_attempts": args.max_attempts,
        "on_progress": progress.update,
    }
    if args.destination == "kinesis":
        return KinesisProducer(target.client("kinesis"), name, **options), f"stream {name}"
    if args.destination == "dynamodb":
        return DynamoDbProducer(target.client("dynamodb"), name, **options), f"table {name}"
    return SqsProducer(target.client("sqs"), name, **options), f"queue {name}"


def run_produce(args: argparse.Namespace, target: Target | None = None) -> int:
    """Send the events and sum up; see the module docstring for the exit status.

    ``target`` replaces the one the target flags describe (tests pass the local cloud's).
    """
    try:
        _check(args)
        if args.file is not None:
            events = read_events_file(args.file)  # a bad file is the first thing to say
            target = target or Target.from_args(args)
        else:
            # The target first: no cloud is a one-line answer, not the end of a long generation.
            target = target or Target.from_args(args)
            events = generate_events(
                args.count,
                poison_rate=args.poison_rate,
                transient_rate=args.transient_rate,
                transient_for=timedelta(seconds=args.transient_for),
                seed=args.seed,
            )
        with Progress(len(events), label=f"produce {args.destination}") as progress:
            producer, where = _producer(args, target, progress)
            report = producer.send(events)
    except (ProduceArgsError, InvalidEventError, TargetError) as exc:
        print(f"streamline: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # botocore: no region, no credentials, endpoint down
        if type(exc).__module__.split(".")[0] not in {"botocore", "boto3"}:
            raise
        print(f"streamline: cannot produce: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    _print_failures(report)
    print(_summary(args.destination, where, events, report))
    return 1 if report.failed else 0


def _summary(
    destination: str, where: str, events: list[PlannedEvent], report: ProduceReport
) -> str:
    faults = [
        f"{n} {kind}"
        for kind in ("poison", "transient")
        if (n := sum(e.fault == kind for e in events))
    ]
    planned = f" ({', '.join(faults)} planned)" if faults else ""
    return (
        f"produce {destination} -> {where}: {len(events)} events{planned}; sent {report.sent}, "
        f"failed {len(report.failed)}, skipped {report.skipped}; {report.calls} calls, "
        f"{report.retried_entries} retries, {report.seconds:.2f} s"
    )


def _print_failures(report: ProduceReport) -> None:
    if report.aborted:
        print(f"streamline: stopped early: {report.aborted}", file=sys.stderr)
    for failure in report.failed[:_SHOWN_FAILURES]:
        print(
            f"failed {failure.event_id}: {failure.code} {failure.message}".rstrip(),
            file=sys.stderr,
        )
    if len(report.failed) > _SHOWN_FAILURES:
        print(f"... and {len(report.failed) - _SHOWN_FAILURES} more failed", file=sys.stderr)
