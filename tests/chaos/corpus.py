"""Malformed records for every entry point of the pipeline, each findable in the quarantine.

Every record carries a unique ASCII token somewhere the quarantine keeps it (an id field, a
string in the body, bytes inside binary data), so the suite can say of each one whether it ended
quarantined with a reason. The kinds are what a hostile or broken producer sends: wrong types,
coerced numbers, missing or unknown fields, deep nesting, binary and non-UTF-8 bytes, oversize
payloads, non-objects, and forged failure-queue messages.

Example::

    attacks = malformed(1000, seed=7)
    send_all(attacks, cloud, outputs)
    missing = not_quarantined(attacks, quarantine_texts(cloud, outputs))
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENTRY_WEIGHTS",
    "Attack",
    "malformed",
    "not_quarantined",
    "quarantine_texts",
    "send_all",
    "unexplained",
]

#: Share of the malformed records per entry point (recovery inputs: forged failure messages).
ENTRY_WEIGHTS: Mapping[str, int] = {
    "kinesis": 30,
    "orders-table": 20,
    "fulfilment": 10,
    "notifications": 10,
    "notifier": 10,
    "ingest-failures": 4,
    "changes-failures": 4,
    "fulfilment-dlq": 4,
    "notifications-dlq": 4,
    "notify-failures": 4,
}


@dataclass(frozen=True)
class Attack:
    """One malformed record: where it goes, what kind of bad it is, and how to find it.

    ``payload`` is bytes for Kinesis data, a str for SQS bodies and invoke payloads, and a typed
    DynamoDB item (dict) for the orders table.
    """

    entry: str
    kind: str
    token: str
    payload: Any


def _event(token: str, **override: Any) -> dict[str, Any]:
    event = {
        "event_id": str(uuid.uuid4()),
        "order_id": f"chaos-{token}",
        "version": 1,
        "type": "OrderCreated",
        "occurred_at": "2026-12-07T00:00:00+00:00",
        "customer_id": "c-chaos",
        "amount_cents": 100,
    }
    event.update(override)
    return {key: value for key, value in event.items() if value is not _DROP}


def _task(token: str, task_kind: str, **override: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "kind": task_kind,
        "task_id": str(uuid.uuid4()),
        "order_id": f"chaos-{token}",
        "customer_id": "c-chaos",
        "version": 1,
        "event_id": str(uuid.uuid4()),
    }
    if task_kind == "fulfil":
        task["amount_cents"] = 100
    else:
        task["status"] = "PAID"
    task.update(override)
    return {key: value for key, value in task.items() if value is not _DROP}


_DROP = object()


def _deep(token: str, levels: int) -> str:
    return json.dumps({"token": token, "a": None}).replace("null", "[" * levels + "]" * levels)


def _json(value: Any) -> str:
    return json.dumps(value)


# Field-level faults shared by events and tasks: (kind, override).
_FIELD_FAULTS: Sequence[tuple[str, dict[str, Any]]] = (
    ("version-string", {"version": "1"}),
    ("version-bool", {"version": True}),
    ("version-float", {"version": 1.5}),
    ("version-zero", {"version": 0}),
    ("version-huge", {"version": 2**40}),
    ("amount-string", {"amount_cents": "100"}),
    ("amount-negative", {"amount_cents": -5}),
    ("customer-number", {"customer_id": 7}),
    ("customer-empty", {"customer_id": ""}),
    ("customer-long", {"customer_id": "c" * 300}),
    ("event-id-not-uuid", {"event_id": "not-a-uuid"}),
    ("unknown-field", {"coupon_code": "FREE"}),
    ("missing-customer", {"customer_id": _DROP}),
    ("null-version", {"version": None}),
)


def _kinesis(token: str, rng: random.Random) -> tuple[str, bytes]:
    choice = rng.randrange(12)
    if choice == 0:
        return "deep-5000", _deep(token, 5000).encode()
    if choice == 1:
        return "deep-300", _deep(token, 300).encode()
    if choice == 2:
        return "not-utf8", b"\xff\xfe" + token.encode() + b"\xc3\x28\xa0\xa1"
    if choice == 3:
        return "binary", bytes(rng.randrange(256) for _ in range(64)) + token.encode()
    if choice == 4:
        return "not-json", f"order {token} paid".encode()
    if choice == 5:
        return "json-array", _json([token, 1, 2]).encode()
    if choice == 6:
        return "oversize", _json(_event(token, customer_id="x" * 200_000)).encode()
    if choice == 7:
        return "epoch-time", _json(_event(token, occurred_at=1765065600)).encode()
    if choice == 8:
        return "unknown-type", _json(_event(token, type="OrderTeleported")).encode()
    if choice == 9:
        return "long-order-id", _json(
            _event(token, order_id=f"chaos-{token}-" + "o" * 300)
        ).encode()
    kind, override = rng.choice(_FIELD_FAULTS)
    return kind, _json(_event(token, **override)).encode()


def _item(token: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A typed orders item a careless writer could put: the key always holds the token."""
    item: dict[str, Any] = {
        "order_id": {"S": f"chaos-{token}"},
        "status": {"S": "PAID"},
        "version": {"N": "1"},
        "last_event_id": {"S": str(uuid.uuid4())},
        "amount_cents": {"N": "100"},
        "customer_id": {"S": "c-chaos"},
        "updated_at": {"S": "2026-12-07T00:00:00+00:00"},
    }
    faults: Sequence[tuple[str, dict[str, Any]]] = (
        ("version-string", {"version": {"S": "1"}}),
        ("version-bool", {"version": {"BOOL": True}}),
        ("version-float", {"version": {"N": "1.5"}}),
        ("amount-null", {"amount_cents": {"NULL": True}}),
        ("customer-binary", {"customer_id": {"B": b"\x00\xff" + token.encode()}}),
        ("binary-set", {"customer_id": {"BS": [b"\x01", b"\x02"]}}),
        ("string-set", {"status": {"SS": ["PAID", "SHIPPED"]}}),
        ("nested-map", {"customer_id": {"M": _nested_map(30)}}),
        ("list", {"amount_cents": {"L": [{"N": "1"}, {"S": "2"}]}}),
        ("unknown-status", {"status": {"S": "LOST"}}),
        ("extra-attribute", {"coupon": {"S": "FREE"}}),
        ("bad-seen-mark", {"seen_PAID": {"S": "garbage"}}),
        ("epoch-time", {"updated_at": {"N": "1765065600"}}),
        ("big-item", {"notes": {"S": "n" * 300_000}}),
        ("missing-status", {"status": None}),
    )
    kind, override = rng.choice(faults)
    item.update(override)
    return kind, {key: value for key, value in item.items() if value is not None}


def _nested_map(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": {"S": "x"}}
    for _ in range(levels):
        value = {"m": {"M": value}}
    return value


def _body(token: str, task_kind: str, rng: random.Random) -> tuple[str, str]:
    choice = rng.randrange(9)
    if choice == 0:
        return "not-json", f"task {token} please"
    if choice == 1:
        return "deep-5000", _deep(token, 5000)
    if choice == 2:
        return "missing-kind", _json(_task(token, task_kind, kind=_DROP))
    if choice == 3:
        other = "notify" if task_kind == "fulfil" else "fulfil"
        return "other-kind", _json(_task(token, task_kind, kind=other))
    if choice == 4:
        return "oversize", _json(_task(token, task_kind, customer_id="x" * 90_000))
    if choice == 5:
        return "json-string", _json(f"task {token}")
    if choice == 6:
        # 257 characters: one over the bound, in multi-byte text
        return "unicode-long", _json(_task(token, task_kind, customer_id="\u202e" + "é" * 256))
    kind, override = rng.choice(_FIELD_FAULTS)
    return kind, _json(_task(token, task_kind, **override))


def _invoke_payload(token: str, rng: random.Random) -> tuple[str, str]:
    choice = rng.randrange(8)
    if choice == 6:
        # notify's batch shape around a task that fails the schema: that task is quarantined
        kind, override = rng.choice(_FIELD_FAULTS)
        return f"batch-{kind}", _json(
            {
                "kind": "notify-batch",
                "notifications": [{"task": _task(token, "notify", **override)}],
            }
        )
    if choice == 7:
        return "batch-malformed", _json({"kind": "notify-batch", "notifications": token})
    if choice == 0:
        return "json-list", _json([token])
    if choice == 1:
        return "deep-300", _deep(token, 300)
    if choice == 2:
        return "fulfil-task", _json(_task(token, "fulfil"))
    if choice == 3:
        return "missing-kind", _json(_task(token, "notify", kind=_DROP))
    kind, override = rng.choice(_FIELD_FAULTS)
    return kind, _json(_task(token, "notify", **override))


def _forged(token: str, entry: str, rng: random.Random) -> tuple[str, str]:
    """A message nobody but an attacker (or a bug) would put on a failure queue."""
    choice = rng.randrange(7)
    if choice == 0:
        return "garbage", f"\u00bfqu\u00e9? {token}"
    if choice == 1:
        return "deep-5000", _deep(token, 5000)
    if choice == 2:
        info = {
            "shardId": "shardId-000000000000",
            "startSequenceNumber": "1",
            "endSequenceNumber": "2",
            "streamArn": f"arn:aws:kinesis:us-east-1:123456789012:stream/gone-{token}",
        }
        key = "KinesisBatchInfo" if entry != "changes-failures" else "DDBStreamBatchInfo"
        if key == "DDBStreamBatchInfo":
            info["streamArn"] = (
                f"arn:aws:dynamodb:us-east-1:123456789012:table/gone-{token}/stream/2026"
            )
        return "stream-gone", _json({"version": "1.0", key: info, "requestContext": {}})
    if choice == 3:
        key = "KinesisBatchInfo" if entry != "changes-failures" else "DDBStreamBatchInfo"
        return "batch-info-incomplete", _json({key: {"shardId": token}})
    if choice == 4:
        return "envelope-without-record", _json(
            {"streamline": "poison/1", "reason": f"forged {token}", "record": "nope"}
        )
    if choice == 5:
        return "destination-poison", _json(
            {
                "version": "1.0",
                "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
                "requestPayload": _task(token, "notify", version="1"),
                "responsePayload": {"errorType": "PoisonRecordError", "errorMessage": "forged"},
            }
        )
    return "json-number", _json(123456789) + f" {token}"


def malformed(count: int, seed: int) -> list[Attack]:
    """``count`` malformed records spread over the entry points by :data:`ENTRY_WEIGHTS`."""
    rng = random.Random(seed)
    entries = list(ENTRY_WEIGHTS)
    weights = [ENTRY_WEIGHTS[e] for e in entries]
    # Every entry point gets at least one record, whatever the count.
    chosen = entries[: min(count, len(entries))]
    chosen += rng.choices(entries, weights, k=max(0, count - len(chosen)))
    attacks = []
    for number, entry in enumerate(chosen):
        token = f"tok{seed:x}x{number:05d}{rng.getrandbits(24):06x}"
        if entry == "kinesis":
            kind, payload = _kinesis(token, rng)
        elif entry == "orders-table":
            kind, payload = _item(token, rng)
        elif entry in ("fulfilment", "notifications"):
            kind, payload = _body(token, "fulfil" if entry == "fulfilment" else "notify", rng)
        elif entry == "notifier":
            kind, payload = _invoke_payload(token, rng)
        else:
            kind, payload = _forged(token, entry, rng)
        attacks.append(Attack(entry, kind, token, payload))
    return attacks


# --- sending ---------------------------------------------------------------------------------

_QUEUE_OUTPUTS = {
    "fulfilment": "FulfilmentQueueUrl",
    "notifications": "NotificationsQueueUrl",
    "ingest-failures": "IngestFailureQueueUrl",
    "changes-failures": "ChangesFailureQueueUrl",
    "fulfilment-dlq": "FulfilmentDlqUrl",
    "notifications-dlq": "NotificationsDlqUrl",
    "notify-failures": "NotifyFailuresQueueUrl",
}


def send_all(
    attacks: Iterable[Attack],
    client: Callable[[str], Any],
    outputs: Mapping[str, str],
    *,
    copies: Callable[[Attack], int] = lambda attack: 1,
) -> int:
    """Send every attack through the public APIs (``copies(attack)`` times); returns sends."""
    kinesis, ddb, sqs, lam = (client(s) for s in ("kinesis", "dynamodb", "sqs", "lambda"))
    sent = 0
    for attack in attacks:
        for _ in range(copies(attack)):
            _send(attack, kinesis, ddb, sqs, lam, outputs)
            sent += 1
    return sent


def _send(
    attack: Attack, kinesis: Any, ddb: Any, sqs: Any, lam: Any, out: Mapping[str, str]
) -> None:
    if attack.entry == "kinesis":
        kinesis.put_record(
            StreamName=out["OrderEventsStreamName"], Data=attack.payload, PartitionKey=attack.token
        )
    elif attack.entry == "orders-table":
        ddb.put_item(TableName=out["OrdersTableName"], Item=attack.payload)
    elif attack.entry == "notifier":
        lam.invoke(
            FunctionName=out["NotifierFunctionName"],
            InvocationType="Event",
            Payload=attack.payload.encode(),
        )
    else:
        url = out[_QUEUE_OUTPUTS[attack.entry]]
        fields: dict[str, Any] = {"QueueUrl": url, "MessageBody": attack.payload}
        if url.endswith(".fifo"):
            fields["MessageGroupId"] = f"g-{attack.token}"
            fields["MessageDeduplicationId"] = f"d-{attack.token}"
        sqs.send_message(**fields)


# --- finding them in the quarantine ----------------------------------------------------------


def quarantine_texts(client: Callable[[str], Any], outputs: Mapping[str, str]) -> list[str]:
    """Every quarantined record as searchable text: the document, its decoded ``base64:``
    strings, and the S3 objects its ``payloadRef`` points to. Only records with a reason."""
    ddb, s3 = client("dynamodb"), client("s3")
    texts = []
    for page in ddb.get_paginator("scan").paginate(TableName=outputs["RecoveryTableName"]):
        for item in page.get("Items", []):
            if item.get("state", {}).get("S") != "QUARANTINED" or "s3_key" not in item:
                continue
            body = s3.get_object(Bucket=outputs["QuarantineBucketName"], Key=item["s3_key"]["S"])
            document = json.loads(body["Body"].read())
            if not str(document.get("reason") or "").strip():
                continue
            parts = [json.dumps(document)]
            parts += list(_decoded_strings(document))
            ref = document.get("payloadRef")
            if isinstance(ref, str) and ref.startswith("s3://"):
                bucket, key = ref.removeprefix("s3://").split("/", 1)
                raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("latin-1")
                parts += [raw, *_decoded_strings(raw)]
            texts.append("\n".join(parts))
    return texts


def _decoded_strings(value: Any, depth: int = 0) -> Iterator[str]:
    if depth > 6:
        return
    if isinstance(value, dict):
        for item in value.values():
            yield from _decoded_strings(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _decoded_strings(item, depth + 1)
    elif isinstance(value, str):
        encoded = value.removeprefix("base64:") if value.startswith("base64:") else None
        if encoded is None and len(value) >= 8 and len(value) % 4 == 0 and " " not in value:
            encoded = value  # Kinesis data and B attributes travel as bare base64
        if encoded:
            try:
                yield base64.b64decode(encoded, validate=True).decode("latin-1")
            except ValueError:
                return


def unexplained(attacks: Iterable[Attack], texts: Sequence[str], marker: str) -> list[str]:
    """Quarantined records of this run (they hold ``marker``, its valid orders' id prefix) that
    hold no attack's token: valid data taken for poison. Other runs' records are ignored."""
    tokens = [attack.token for attack in attacks]
    return [
        text[:300]
        for text in texts
        if marker in text and not any(token in text for token in tokens)
    ]


def not_quarantined(attacks: Iterable[Attack], texts: Sequence[str]) -> list[Attack]:
    """The attacks whose token is in no quarantined record."""
    haystack = "\n".join(texts)
    return [attack for attack in attacks if attack.token not in haystack]
