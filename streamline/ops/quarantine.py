"""``streamline quarantine list|show|release``: the records the recovery workflow quarantined.

The workflow keeps each poison record (and each one whose replays ran out) as an S3 object
(reason, classification, its failure queue and target, payload) indexed in the ``recovery``
table with ``state = QUARANTINED``.

- ``list``: the quarantined records: id, failure queue, when, reason, and the event or task id
  the record names when it names one (``--id`` keeps only those).
- ``show RECORD_ID``: the S3 document, with the payload decoded (``base64:`` bytes and Kinesis
  ``data`` fields) and pretty-printed.
- ``release RECORD_ID``: publish the payload (or a fixed one, ``--payload FILE``) back to the
  record's target exactly as the workflow's replay does, then mark the ledger item RELEASED
  with who and when, and give it a fresh set of replay attempts. Refused when the record is not
  QUARANTINED, or when the payload is still invalid for its target (it would only come back).
  Asks for confirmation on a terminal; elsewhere it needs ``--yes``.

Exit status: 0 done, 1 the publish failed (the record stays QUARANTINED) or the ledger changed
meanwhile, 2 on a one-line error or refusal.

Example::

    streamline quarantine list
    streamline quarantine list --id 0b6f...        # the records that name this event id
    streamline quarantine show 'ingest-failures#envelope#1c9e...'
    streamline quarantine release 'ingest-failures#envelope#1c9e...' --payload fixed.json --yes
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import json
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from streamline.ops.replay import dal_bound_to, publish
from streamline.ops.target import (
    Target,
    add_command,
    add_target_arguments,
    command_error,
)

if TYPE_CHECKING:
    from orderflow.recovery_contract import QuarantineDocument

__all__ = ["QuarantineError", "register", "render_payload", "run"]

QUARANTINED = "QUARANTINED"
RELEASED = "RELEASED"


class QuarantineError(Exception):
    """A one-line refusal or argument problem: exit status 2."""


def register(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add ``quarantine list|show|release`` to the top-level subparsers object ``commands``."""
    parser = add_command(
        commands,
        parser_class,
        "quarantine",
        help="list, show and release quarantined records",
        doc=__doc__,
    )
    actions = parser.add_subparsers(
        dest="quarantine_command", required=True, parser_class=parser_class
    )
    listing = actions.add_parser("list", help="the quarantined records, newest first")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.add_argument(
        "--id", dest="business_id", metavar="ID", help="only records naming this event/task id"
    )
    show = actions.add_parser("show", help="one record's reason, source and decoded payload")
    show.add_argument("record_id", metavar="RECORD_ID")
    show.add_argument("--json", action="store_true", help="print the S3 document as JSON")
    release = actions.add_parser(
        "release", help="re-publish a record to its source and mark it RELEASED"
    )
    release.add_argument("record_id", metavar="RECORD_ID")
    release.add_argument(
        "--payload",
        metavar="FILE",
        help="publish this file's contents instead of the quarantined payload (a fixed record)",
    )
    release.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    for sub in (listing, show, release):
        add_target_arguments(sub)
    parser.set_defaults(func=run)


# -- payloads (pure) ----------------------------------------------------------------------


def render_payload(payload: str) -> str:
    """A quarantined payload for a human: bytes decoded, JSON pretty-printed.

    ``base64:...`` (bytes that were not UTF-8) is decoded and shown as text when it is text;
    a Kinesis record's ``data`` field (base64) is decoded in place; a DynamoDB change gets its
    ``NewImage`` as plain values beside the typed one.

    Example::

        >>> print(render_payload('{"kinesis": {"data": "eyJhIjogMX0="}}'))
        {
          "kinesis": {
            "data": {
              "a": 1
            }
          }
        }
    """
    text = payload
    if payload.startswith("base64:"):
        try:
            raw = base64.b64decode(payload.removeprefix("base64:"), validate=True)
        except (binascii.Error, ValueError):
            return payload
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return f"binary ({len(raw)} bytes, base64): {payload.removeprefix('base64:')}"
    try:
        document = json.loads(text)
    except ValueError:
        return text
    return json.dumps(_decoded(document), indent=2, default=_json_value)


def _json_value(value: Any) -> Any:
    # DynamoDB numbers deserialize to Decimal: show 3, not "3".
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def _decoded(document: Any) -> Any:
    if not isinstance(document, dict):
        return document
    out = dict(document)
    kinesis = out.get("kinesis")
    if isinstance(kinesis, dict) and isinstance(kinesis.get("data"), str):
        out["kinesis"] = {**kinesis, "data": _decode_data(kinesis["data"])}
    change = out.get("dynamodb")
    if isinstance(change, dict) and isinstance(change.get("NewImage"), dict):
        out["newImage (plain)"] = _plain(change["NewImage"])
    return out


def _decode_data(data: str) -> Any:
    try:
        text = base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return data
    try:
        return json.loads(text)
    except ValueError:
        return text


def _plain(image: dict[str, Any]) -> Any:
    from boto3.dynamodb.types import TypeDeserializer

    try:
        return {key: TypeDeserializer().deserialize(value) for key, value in image.items()}
    except (TypeError, ValueError, AttributeError):
        return image


def _flat(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item's attributes without their type keys (S, N, ...)."""
    return {key: next(iter(value.values())) for key, value in item.items()}


# -- reading ------------------------------------------------------------------------------


def _names(target: Target) -> tuple[str, str]:
    outputs = target.stack_outputs()
    table, bucket = outputs.get("RecoveryTableName"), outputs.get("QuarantineBucketName")
    if not table or not bucket:
        raise QuarantineError(f"stage {target.stage} has no recovery table or quarantine bucket")
    return table, bucket


def list_quarantined(target: Target, table: str) -> list[dict[str, Any]]:
    """The ledger items in state QUARANTINED, newest first."""
    ddb = target.client("dynamodb")
    items: list[dict[str, Any]] = []
    # A scan: operators list rarely and the ledger holds only failed records.
    for page in ddb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="#state = :q",
        ExpressionAttributeNames={"#state": "state"},
        ExpressionAttributeValues={":q": {"S": QUARANTINED}},
    ):
        items.extend(_flat(item) for item in page.get("Items", []))
    items.sort(key=lambda i: str(i.get("updated_at", "")), reverse=True)
    return items


def _ledger_item(target: Target, table: str, record_id: str) -> dict[str, Any]:
    item = (
        target.client("dynamodb")
        .get_item(TableName=table, Key={"record_id": {"S": record_id}}, ConsistentRead=True)
        .get("Item")
    )
    if not item:
        raise QuarantineError(f"no record {record_id!r} in the recovery table {table}")
    return _flat(item)


def _document(target: Target, bucket: str, item: dict[str, Any]) -> QuarantineDocument:
    key = item.get("s3_key")
    if not key:
        raise QuarantineError(
            f"record {item['record_id']!r} is {item.get('state')} and has no quarantine object"
        )
    s3 = target.client("s3")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise QuarantineError(f"the quarantine object s3://{bucket}/{key} is gone") from None
    document = json.loads(body)
    if not isinstance(document, dict):
        raise QuarantineError(f"s3://{bucket}/{key} is not a quarantine document")
    # written by the workflow's quarantine task; read defensively (.get) all the same
    return cast("QuarantineDocument", document)


# -- the subcommands ----------------------------------------------------------------------


def _list(args: argparse.Namespace, target: Target) -> int:
    table, _ = _names(target)
    items = list_quarantined(target, table)
    if args.business_id:
        items = [item for item in items if item.get("business_id") == args.business_id]
    if args.json:
        print(json.dumps(items, indent=2, default=str))
        return 0
    if not items:
        print("no quarantined records")
        return 0
    for item in items:
        reason = " ".join(str(item.get("reason", "")).split())
        named = f"  (id {item['business_id']})" if item.get("business_id") else ""
        print(
            f"{item['record_id']}  {item.get('source', '-')}  {item.get('updated_at', '-')}{named}"
        )
        print(f"    {reason[:200]}")
    print(f"{len(items)} quarantined")
    return 0


def _show(args: argparse.Namespace, target: Target) -> int:
    table, bucket = _names(target)
    item = _ledger_item(target, table, args.record_id)
    document = _document(target, bucket, item)
    if args.json:
        print(json.dumps({"ledger": item, "document": document}, indent=2, default=str))
        return 0
    source = document.get("source") or {}
    spec = source.get("target") or {}
    where = spec.get("streamName") or spec.get("functionName") or spec.get("queueUrl") or "?"
    rows = [
        ("record", item["record_id"]),
        ("state", f"{item.get('state')} (attempts {item.get('attempts', 0)})"),
        ("reason", document.get("reason", item.get("reason", ""))),
        ("class", document.get("classification") or "-"),
        ("source", f"{source.get('name', '-')} ({source.get('kind', '-')})"),
        ("target", f"{spec.get('type', '?')} {where}"),
        ("when", document.get("quarantinedAt") or item.get("updated_at", "-")),
        ("object", f"s3://{bucket}/{item['s3_key']}"),
    ]
    if item.get("released_at"):
        rows.append(("released", f"{item['released_at']} by {item.get('released_by', '?')}"))
    if document.get("payloadRef"):
        rows.append(("kept", f"{document['payloadRef']} (the whole payload, too large to carry)"))
    for label, value in rows:
        print(f"{label:<8} {value}")
    print("payload")
    for line in render_payload(_payload(target, document)).splitlines():
        print(f"  {line}")
    return 0


def _payload(target: Target, document: QuarantineDocument) -> str:
    """The record's whole payload: from the object ``payloadRef`` names when it was too large
    for the workflow's state (the document then holds only its beginning)."""
    ref = document.get("payloadRef")
    if not isinstance(ref, str) or not ref.startswith("s3://"):
        return str(document.get("payload", ""))
    bucket, _, key = ref.removeprefix("s3://").partition("/")
    s3 = target.client("s3")
    try:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        raise QuarantineError(f"the payload object {ref} is gone") from None
    return data.decode("utf-8", "surrogateescape")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        raise QuarantineError("not a terminal: pass --yes to release without a prompt")
    try:
        return input(f"{prompt} [y/N] ").strip().lower() in {"y", "yes"}
    except EOFError:
        return False


def _release(args: argparse.Namespace, target: Target) -> int:
    from orderflow.errors import ErrorKind
    from orderflow.recovery import classify_payload

    table, bucket = _names(target)
    item = _ledger_item(target, table, args.record_id)
    if item.get("state") != QUARANTINED:
        raise QuarantineError(
            f"record {args.record_id!r} is {item.get('state') or 'not quarantined'}; "
            "only QUARANTINED records are released"
        )
    document = _document(target, bucket, item)
    spec = (document.get("source") or {}).get("target")
    if not isinstance(spec, dict) or "type" not in spec:
        raise QuarantineError(f"the quarantine document of {args.record_id!r} names no target")
    if args.payload:
        try:
            payload = Path(args.payload).read_text(encoding="utf-8").rstrip("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise QuarantineError(f"cannot read --payload {args.payload}: {exc}") from None
    else:
        payload = _payload(target, document)
    # The workflow's own check: a payload its target rejects would only be quarantined again.
    verdict = classify_payload(payload, str(spec["type"]))
    if verdict.kind is ErrorKind.POISON:
        raise QuarantineError(
            f"the payload is still invalid for its target ({verdict.reason}); "
            "fix it and pass --payload FILE"
        )
    where = spec.get("streamName") or spec.get("functionName") or spec.get("queueUrl")
    if not args.yes and not _confirm(f"release {args.record_id} to {spec['type']} {where}?"):
        print("not released")
        return 1
    identity = target.client("sts").get_caller_identity().get("Arn", "?")
    with dal_bound_to(target):
        try:
            # A fresh FIFO dedup id: the workflow's `replay:<n>` ids may still be in the window.
            published = publish(spec, payload, dedup_suffix=f"release:{int(time.time())}")
        except Exception as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            print(f"streamline: release failed ({reason}); still QUARANTINED", file=sys.stderr)
            return 1
    # Who: the person at the keyboard and the AWS identity the publish was made with.
    released_by = f"{_os_user()} ({identity})"
    if not _mark_released(target, table, item, released_by, fixed=bool(args.payload)):
        print(
            f"streamline: published to {published}, but the ledger item changed meanwhile; "
            "not marked RELEASED",
            file=sys.stderr,
        )
        return 1
    print(f"released {args.record_id}: published to {published}; marked RELEASED by {released_by}")
    return 0


def _mark_released(
    target: Target, table: str, item: dict[str, Any], released_by: str, *, fixed: bool
) -> bool:
    """RELEASED with who and when, if the item is still the one read (no race with a run).

    attempts goes back to 0: a release is a human's "try again", so a transient failure of the
    released record gets the workflow's full set of replays instead of straight quarantine.
    """
    ddb = target.client("dynamodb")
    now = datetime.now(UTC).isoformat()
    values: dict[str, Any] = {
        ":released": {"S": RELEASED},
        ":quarantined": {"S": QUARANTINED},
        ":by": {"S": released_by[:500]},
        ":now": {"S": now},
        ":zero": {"N": "0"},
        ":fixed": {"BOOL": fixed},
    }
    condition = "#state = :quarantined"
    if item.get("updated_at"):
        condition += " AND updated_at = :seen"
        values[":seen"] = {"S": str(item["updated_at"])}
    try:
        ddb.update_item(
            TableName=table,
            Key={"record_id": {"S": str(item["record_id"])}},
            UpdateExpression=(
                "SET #state = :released, released_by = :by, released_at = :now,"
                " updated_at = :now, attempts = :zero, released_fixed = :fixed"
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=values,
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True


_ACTIONS = {"list": _list, "show": _show, "release": _release}


def run(args: argparse.Namespace, target: Target | None = None) -> int:
    """Run ``quarantine <action>``; one-line errors exit 2."""
    try:
        return _ACTIONS[args.quarantine_command](args, target or Target.from_args(args))
    except Exception as exc:
        return command_error(exc, None, QuarantineError)
