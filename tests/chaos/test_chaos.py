"""The attack suite: hostile input, duplicates and disorder on every path, then the verdict.

Valid order events go through every path (Kinesis, the orders table, both task queues), each
order's events shuffled into separate calls and some sent twice; valid notifications are also
invoked again on the notifier directly. Malformed records go to every entry point: Kinesis, the
orders table, both task queues, the asynchronous notifier, and the recovery workflow's own
inputs (forged messages on all five failure queues). Then the pipeline runs to idle and the
recovery workflow until every failure queue is empty.

The verdict: every valid event is in the sink exactly once (the conservation check of the
demo, on the written effects contract), every malformed record is quarantined with a reason
and nothing else is (no valid record taken for poison), every failure queue is empty, and no
mapping is stalled (enabled, no backlog).

Scale: ``CHAOS_RECORDS`` malformed records (default 120, the small run inside ``make test``;
``make chaos`` runs 1,000) beside ``CHAOS_VALID`` valid events (default the same number).
The figures go to ``tests/.artifacts/chaos.json`` and the terminal.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamline.demo.conservation import SQS, Effect, check
from streamline.demo.observe import failure_queue_depths, quarantined_records, scan_table
from streamline.demo.run import PATH_SHARES, path_producers, process_and_recover, split_paths
from streamline.producers import (
    generate_events,
)
from tests.chaos.corpus import (
    malformed,
    not_quarantined,
    quarantine_texts,
    send_all,
    unexplained,
)
from tests.conftest import E2E

pytestmark = pytest.mark.chaos

RECORDS = int(os.environ.get("CHAOS_RECORDS", "120"))
VALID = int(os.environ.get("CHAOS_VALID", str(RECORDS)))
SEED = int(os.environ.get("CHAOS_SEED", "20261207"))
ARTIFACT = Path(__file__).resolve().parents[1] / ".artifacts" / "chaos.json"


def _disordered(events: list[Any], rng: random.Random) -> list[list[Any]]:
    """Calls to make: every event in a call of its own, each order's versions shuffled, about
    one event in five sent twice (a producer retry that had already landed)."""
    by_order: dict[str, list[Any]] = {}
    for event in events:
        by_order.setdefault(event.order_id, []).append(event)
    queue: list[Any] = []
    for versions in by_order.values():
        shuffled = rng.sample(versions, len(versions))
        queue += shuffled + [e for e in shuffled if rng.random() < 0.2]
    # Orders interleave too; each order's shuffled sequence keeps its (random) relative order.
    rng.shuffle(queue)
    return [[event] for event in queue]


def _advance_async_retries(cloud: Any) -> None:
    """The notifier's retries wait a minute and two: let that clock time pass at once."""
    engine = cloud.async_engine
    status = engine.status() if engine is not None else {}
    if status.get("queued") and not status.get("in_flight"):
        cloud.clock.advance(61)


def _stalled(cloud: Any) -> list[str]:
    stalled = []
    for mapping in cloud.esm.status():
        if mapping.get("backlog") or str(mapping.get("state")) not in ("Enabled", "Disabled"):
            stalled.append(
                f"{mapping.get('uuid')}: {mapping.get('state')} {mapping.get('backlog')}"
            )
    return stalled


def test_hostile_input_duplicates_and_disorder_on_every_path(e2e: E2E) -> None:
    cloud, outputs = e2e.cloud, e2e.outputs
    rng = random.Random(SEED)
    started = time.monotonic()

    # Given valid events on every path, shuffled per order and partly duplicated
    valid = generate_events(VALID, seed=SEED)
    by_path = split_paths(valid, PATH_SHARES, random.Random(SEED))
    producers = path_producers(cloud, outputs)
    calls = 0
    for path, events in by_path.items():
        for call in _disordered(list(events), rng):
            for producer in producers[path]:
                report = producer.send(call)
                assert report.failed == [], report.failed
                calls += 1
    # ... and the notifier invoked again with notifications it already had
    notify = [json.loads(m) for m in _notifications(by_path[SQS])][: max(5, VALID // 20)]
    lam = cloud.client("lambda")
    for body in notify:
        lam.invoke(
            FunctionName=outputs["NotifierFunctionName"],
            InvocationType="Event",
            Payload=json.dumps(body).encode(),
        )

    # ... and malformed records on every entry point, some twice
    attacks = malformed(RECORDS, seed=SEED)
    sends = send_all(
        attacks, cloud.client, outputs, copies=lambda a: 2 if int(a.token[-6:], 16) % 7 == 0 else 1
    )
    produced_at = time.monotonic()

    # When the pipeline runs to idle and the recovery workflow empties every failure queue
    tally = process_and_recover(
        cloud,
        outputs,
        timeout=900,
        out=print,  # progress, shown with -s (make chaos)
        max_idle_passes=40,
        on_wait=_advance_async_retries,
    )
    recovered_at = time.monotonic()

    # Then: valid events exactly once, every malformed record quarantined with a reason, ...
    effects = [
        Effect(str(i["effect_id"]), str(i.get("event_id", "")))
        for i in scan_table(cloud, outputs["EffectsTableName"])
    ]
    verdict = check(by_path, effects, quarantined_records(cloud, outputs))
    texts = quarantine_texts(cloud.client, outputs)
    lost = not_quarantined(attacks, texts)
    # The valid events here have no fault: nothing of theirs may be taken for poison.
    mistaken = unexplained(attacks, texts, marker=valid[0].order_id.rsplit("-", 1)[0])
    depths = failure_queue_depths(cloud, outputs)
    stalled = _stalled(cloud)

    figures = {
        "valid_events": len(valid),
        "valid_calls": calls,
        "notifier_duplicates": len(notify),
        "malformed_records": len(attacks),
        "malformed_sends": sends,
        "malformed_by_entry": dict(Counter(a.entry for a in attacks)),
        "malformed_by_kind": dict(Counter(f"{a.entry}/{a.kind}" for a in attacks)),
        "delivered_exactly_once": verdict.delivered,
        "conservation_ok": verdict.ok,
        "problems": verdict.problems(20),
        "malformed_quarantined": len(attacks) - len(lost),
        "malformed_not_quarantined": [f"{a.entry}/{a.kind} {a.token}" for a in lost[:20]],
        "quarantine_documents": len(texts),
        "quarantined_but_valid": mistaken[:10],
        "quarantined_by_source": _quarantined_by_source(cloud, outputs),
        "recovery_executions": tally.executions,
        "recovery_executions_failed": len(tally.failed),
        "replayed": tally.replayed,
        "left_in_failure_queues": depths,
        "stalled_mappings": stalled,
        "seconds": {
            "produce": round(produced_at - started, 1),
            "process_and_recover": round(recovered_at - produced_at, 1),
        },
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"\nchaos verdict: {verdict.delivered}/{len(valid)} valid events in the sink exactly once,"
        f" {len(attacks) - len(lost)}/{len(attacks)} malformed records quarantined with a reason,"
        f" failure queues {'empty' if not any(depths.values()) else depths},"
        f" stalled mappings {len(stalled)}; details in {ARTIFACT}"
    )

    assert verdict.ok, verdict.problems(20)
    assert verdict.delivered == len(valid)
    assert not lost, figures["malformed_not_quarantined"]
    assert not mistaken, mistaken[:5]
    assert not any(depths.values()), depths
    assert not stalled, stalled


def _quarantined_by_source(cloud: Any, outputs: dict[str, str]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for item in scan_table(cloud, outputs["RecoveryTableName"]):
        if item.get("state") == "QUARANTINED":
            counts[str(item.get("source"))] += 1
    return dict(counts)


def _notifications(events: list[Any]) -> list[str]:
    """Notification task bodies for events of the SQS path, as notify hands them on."""
    from orderflow.events import parse_event
    from orderflow.logic import record_event, tasks_for_change

    records: dict[str, Any] = {}
    bodies = []
    for planned in events:
        event = parse_event(planned.payload)
        new = record_event(records.get(event.order_id), event)
        if new is None:
            continue
        bodies += [
            t.model_dump_json()
            for t in tasks_for_change(records.get(event.order_id), new)
            if t.kind == "notify"
        ]
        records[event.order_id] = new
    return bodies
