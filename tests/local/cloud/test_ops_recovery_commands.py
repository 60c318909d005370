"""`streamline status|redrive|quarantine|replay` on the deployed pipeline in the session cloud.

One produce run is shared by the module: three good orders (created, then paid), one poison
event (its version is not a number) and one flaky event (transient failures for a few seconds,
so its retries run out and AWS's on-failure record lands in the ingest failure queue).
The commands run through ``streamline.cli.main`` with ``--state-dir`` pointing at the session
cloud, the way a user runs them. The operations build on each other (status sees the failure
queue, replay takes the flaky range out of it, redrive quarantines the poison record, the
quarantine commands release it), so each step is a module fixture the later ones depend on.

The cloud is shared with other tests: ids are unique, and queues are compared, not assumed empty.
Those chained module fixtures are why this is one module of ~560 lines.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streamline.cli import main
from streamline.local.cloud import LocalCloud
from streamline.local.state import StateDir
from tests.local.cloud.deployed import eventually
from tests.orders import order_event

pytestmark = pytest.mark.local

# Long enough for the flaky record to exhaust its retries inside the window on a loaded machine.
CHAOS_SECONDS = 15.0


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Scenario:
    cloud: LocalCloud
    outputs: dict[str, str]
    state_dir: str
    prefix: str
    good: list[dict[str, Any]]  # put_records entries (Data, PartitionKey) with ShardId/Sequence
    poison: dict[str, Any]
    flaky_order: str
    flaky_sequence: str
    chaos_until: float
    effects_before: set[str] = field(default_factory=set)

    def cli(self, *argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, "--state-dir", self.state_dir])
        return Result(code, out.getvalue(), err.getvalue())


def _scan(cloud: LocalCloud, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in cloud.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return items


def _orders(scenario: Scenario) -> dict[str, dict[str, Any]]:
    return {
        i["order_id"]["S"]: i
        for i in _scan(scenario.cloud, scenario.outputs["OrdersTableName"])
        if i["order_id"]["S"].startswith(scenario.prefix)
    }


def _effects_of(cloud: LocalCloud, outputs: dict[str, str], prefix: str) -> list[str]:
    return [
        i["effect_id"]["S"]
        for i in _scan(cloud, outputs["EffectsTableName"])
        if prefix in i["effect_id"]["S"]
    ]


def _effects(scenario: Scenario) -> list[str]:
    return _effects_of(scenario.cloud, scenario.outputs, scenario.prefix)


def _peek(cloud: LocalCloud, url: str) -> list[dict[str, Any]]:
    """Messages visible now, made visible again at once (the commands under test take them)."""
    sqs = cloud.client("sqs")
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in messages:
            seen[message["MessageId"]] = json.loads(message["Body"])
        for message in messages:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        if not messages:
            break
    return list(seen.values())


def _ours(scenario: Scenario, bodies: list[dict[str, Any]]) -> tuple[bool, bool]:
    """Whether the poison envelope and the flaky range are among the failure messages."""
    poison_id = scenario.poison["event"]["event_id"]
    has_poison = any(
        b.get("streamline") == "poison/1"
        and poison_id in base64.b64decode(b["record"]["kinesis"]["data"]).decode()
        for b in bodies
    )
    flaky = int(scenario.flaky_sequence)
    has_flaky = any(
        int(b["KinesisBatchInfo"]["startSequenceNumber"])
        <= flaky
        <= int(b["KinesisBatchInfo"]["endSequenceNumber"])
        for b in bodies
        if "KinesisBatchInfo" in b
    )
    return has_poison, has_flaky


@pytest.fixture(scope="module")
def scenario(
    cloud: LocalCloud, pipeline: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Scenario:
    # The session cloud is not published to a state dir; point one at it (this process is
    # alive, so the CLI's Target.from_args accepts it).
    state = StateDir(tmp_path_factory.mktemp("ops-state")).ensure()
    state.write_endpoint(cloud.endpoint_url, int(cloud.endpoint_url.rsplit(":", 1)[1]), os.getpid())
    prefix = f"ops-{uuid.uuid4().hex[:6]}"
    events = [
        order_event(f"{prefix}-{n}", v, kind)
        for n in range(3)
        for v, kind in ((1, "OrderCreated"), (2, "OrderPaid"))
    ]
    kinesis = cloud.client("kinesis")

    def put(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        entries = [{"Data": json.dumps(r).encode(), "PartitionKey": r["order_id"]} for r in records]
        response = kinesis.put_records(
            StreamName=pipeline["OrderEventsStreamName"], Records=entries
        )
        assert response["FailedRecordCount"] == 0
        return [
            {**entry, "ShardId": r["ShardId"], "SequenceNumber": r["SequenceNumber"]}
            for entry, r in zip(entries, response["Records"], strict=True)
        ]

    good = put(events)
    expected = {f"fulfil#{prefix}-{n}" for n in range(3)} | {
        f"notify#{prefix}-{n}#{status}" for n in range(3) for status in ("CREATED", "PAID")
    }
    eventually(lambda: expected <= set(_effects_of(cloud, pipeline, prefix)), timeout=90)
    # ingest is warm now: the flaky record's retries run out well inside its chaos window
    poison_event = {**order_event(f"{prefix}-poison", 1, "OrderCreated"), "version": "not a number"}
    chaos_until = time.time() + CHAOS_SECONDS
    flaky_order = f"{prefix}-flaky"
    flaky = order_event(
        flaky_order,
        1,
        "OrderCreated",
        chaos={"transient_until": datetime.fromtimestamp(chaos_until, UTC).isoformat()},
    )
    poison, flaky_placed = put([poison_event, flaky])
    result = Scenario(
        cloud=cloud,
        outputs=pipeline,
        state_dir=str(state.root),
        prefix=prefix,
        good=good,
        poison={**poison, "event": poison_event},
        flaky_order=flaky_order,
        flaky_sequence=flaky_placed["SequenceNumber"],
        chaos_until=chaos_until,
    )
    seen: list[dict[str, Any]] = []

    def both_failed() -> tuple[bool, bool] | None:
        seen.extend(_peek(cloud, pipeline["IngestFailureQueueUrl"]))
        found = _ours(result, seen)
        return None if not all(found) else found

    try:
        eventually(both_failed, timeout=60)
    except AssertionError:
        raise AssertionError(
            f"(poison, flaky) failure messages seen: {_ours(result, seen)}"
        ) from None
    cloud.wait_idle(60)
    result.effects_before = set(_effects(result))
    return result


@pytest.fixture(scope="module")
def status_before(scenario: Scenario) -> tuple[Result, Result]:
    """`status --check --json` and the text table, while the failure queue holds our messages."""
    checked = scenario.cli("status", "--check", "--json", "--errors", "200")
    table = scenario.cli("status")
    return checked, table


@pytest.fixture(scope="module")
def queue_replayed(scenario: Scenario, status_before: Any) -> Result:
    """`replay --failure-queue ingest` once the flaky record's chaos window has closed."""
    time.sleep(max(0.0, scenario.chaos_until + 0.5 - time.time()))
    result = scenario.cli("replay", "--failure-queue", "ingest", "--max", "50", "--json")
    scenario.cloud.wait_idle(60)
    return result


@pytest.fixture(scope="module")
def redriven(scenario: Scenario, queue_replayed: Result) -> Result:
    """`redrive` after the queue replay: the poison record is left for it to quarantine."""
    result = scenario.cli("redrive", "--timeout", "240", "--interval", "0.5")
    scenario.cloud.wait_idle(60)
    return result


@pytest.fixture()
def poison_id(scenario: Scenario, redriven: Result) -> str:
    """The quarantined record of the poison event, found by the event id it names."""
    event_id = scenario.poison["event"]["event_id"]
    listed = scenario.cli("quarantine", "list", "--id", event_id, "--json")
    assert listed.code == 0, listed.err
    (item,) = listed.json()
    assert item["business_id"] == event_id
    assert str(item["record_id"]).startswith("ingest-failures#")
    return str(item["record_id"])


# -- status -------------------------------------------------------------------------------


def test_status_reports_the_non_empty_failure_queue_and_check_exits_1(
    scenario: Scenario, status_before: tuple[Result, Result]
) -> None:
    checked, table = status_before
    assert checked.code == 1, checked.err
    report = checked.json()
    by_name = {p["name"]: p for p in report["processors"]}
    assert list(by_name) == ["ingest", "changes", "fulfil", "notify", "notifier"]
    ingest = by_name["ingest"]
    assert ingest["failures"]["visible"] + ingest["failures"]["inFlight"] >= 2
    assert ingest["failureQueue"] in report["nonEmptyFailureQueues"]
    assert ingest["backlog"]["metric"] == "IteratorAge"
    for queue_fed in ("fulfil", "notify"):
        assert set(by_name[queue_fed]["backlog"]) == {"visible", "inFlight"}
    assert isinstance(report["recovery"]["quarantined"], int)

    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert lines[0] == "stage dev"
    assert lines[1].split()[:3] == ["PROCESSOR", "SOURCE", "BACKLOG"]
    assert [line.split()[0] for line in lines[2:7]] == list(by_name)
    depth = lines[2].split("  ingest-failures  ", 1)[1].split()[0]
    assert int(depth) + int(ingest["failures"]["inFlight"]) >= 1
    assert ingest["failureQueueUrl"] == scenario.outputs["IngestFailureQueueUrl"]
    assert any(line.startswith("attention") for line in lines)
    assert any(line.startswith("quarantine") for line in lines)


def test_status_shows_the_last_errors_from_the_function_log_group(
    scenario: Scenario, status_before: tuple[Result, Result]
) -> None:
    ingest = status_before[0].json()["processors"][0]
    config = scenario.cloud.client("lambda").get_function_configuration(
        FunctionName=scenario.outputs["IngestFunctionName"]
    )
    # CDK gives each function its own log group (LoggingConfig.LogGroup), not /aws/lambda/<name>
    assert not config["LoggingConfig"]["LogGroup"].startswith("/aws/lambda/")
    assert ingest["logGroup"] == config["LoggingConfig"]["LogGroup"]
    # the poison record's warning
    assert any("Poison record" in e["line"] for e in ingest["errors"]), ingest["errors"]


# -- replay -------------------------------------------------------------------------------


def test_replay_failure_queue_republishes_the_flaky_range_and_keeps_the_poison_envelope(
    scenario: Scenario, queue_replayed: Result
) -> None:
    assert queue_replayed.code == 0, queue_replayed.err
    report = queue_replayed.json()
    assert report["messagesDeleted"] >= 1 and report["published"] >= 1
    assert report["messagesKept"] >= 1  # our poison envelope, at least
    eventually(lambda: scenario.flaky_order in _orders(scenario), timeout=30)
    has_poison, has_flaky = _ours(
        scenario, _peek(scenario.cloud, scenario.outputs["IngestFailureQueueUrl"])
    )
    assert has_poison and not has_flaky


def test_replay_shard_range_republishes_with_the_same_keys_and_no_duplicate_effects(
    scenario: Scenario,
) -> None:
    shard = scenario.good[0]["ShardId"]
    ours = [r for r in scenario.good if r["ShardId"] == shard]
    first, last = ours[0]["SequenceNumber"], ours[-1]["SequenceNumber"]
    args = ("replay", "--stream", "order-events", "--shard", shard, "--from", first, "--to", last)

    dry = scenario.cli(*args, "--dry-run", "--json")
    assert dry.code == 0, dry.err
    listed = dry.json()
    assert listed["published"] == 0
    sequences = [r["sequenceNumber"] for r in listed["records"]]
    assert {r["SequenceNumber"] for r in ours} <= set(sequences)
    assert sequences[0] == first and sequences[-1] == last

    done = scenario.cli(*args, "--json")
    assert done.code == 0, done.err
    assert done.json()["published"] == len(sequences)
    # the copies are on the stream after the range, with their own partition keys
    kinesis = scenario.cloud.client("kinesis")
    iterator = kinesis.get_shard_iterator(
        StreamName=scenario.outputs["OrderEventsStreamName"],
        ShardId=shard,
        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        StartingSequenceNumber=last,
    )["ShardIterator"]
    copies = {
        (r["Data"], r["PartitionKey"])
        for r in kinesis.get_records(ShardIterator=iterator)["Records"]
    }
    assert {(r["Data"], r["PartitionKey"]) for r in ours} <= copies

    scenario.cloud.wait_idle(60)
    effects = _effects(scenario)
    assert len(effects) == len(set(effects))
    assert scenario.effects_before <= set(effects)
    good_orders = {r["PartitionKey"] for r in scenario.good}
    assert {o: i["version"]["N"] for o, i in _orders(scenario).items() if o in good_orders} == {
        o: "2" for o in good_orders
    }
    new = set(effects) - scenario.effects_before
    assert not {e for e in new if any(o in e for o in good_orders)}, new


def _orders_stream_range(scenario: Scenario) -> tuple[str, str, str, int]:
    """(shard, first, last, count) of the orders stream records of our good orders."""
    streams = scenario.cloud.client("dynamodbstreams")
    arn = scenario.cloud.client("dynamodb").describe_table(
        TableName=scenario.outputs["OrdersTableName"]
    )["Table"]["LatestStreamArn"]
    good_orders = {r["PartitionKey"] for r in scenario.good}
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        sequences: list[str] = []
        for _ in range(50):
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            sequences += [
                r["dynamodb"]["SequenceNumber"]
                for r in page["Records"]
                if r["dynamodb"].get("Keys", {}).get("order_id", {}).get("S") in good_orders
            ]
            iterator = page.get("NextShardIterator")
            if not page["Records"] or not iterator:
                break
        if sequences:
            return shard["ShardId"], sequences[0], sequences[-1], len(sequences)
    raise AssertionError("no orders stream records for our orders")


def test_replay_orders_stream_range_goes_to_the_changes_function_idempotently(
    scenario: Scenario,
) -> None:
    shard, first, last, ours = _orders_stream_range(scenario)

    result = scenario.cli(
        "replay", "--stream", "orders", "--shard", shard, "--from", first, "--to", last, "--json"
    )

    assert result.code == 0, result.err
    report = result.json()
    assert report["read"] >= ours and report["published"] + report["skipped"] == report["read"]
    scenario.cloud.wait_idle(60)
    effects = _effects(scenario)
    assert len(effects) == len(set(effects))
    good_orders = {r["PartitionKey"] for r in scenario.good}
    new = set(effects) - scenario.effects_before
    assert not {e for e in new if any(o in e for o in good_orders)}, new


def test_replay_runs_in_its_own_process_with_a_clean_environment(scenario: Scenario) -> None:
    """The CLI as users run it: no in-process cloud settings, no AWS variables to lean on."""
    shard, first, last, ours = _orders_stream_range(scenario)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    argv = ["--stream", "orders", "--shard", shard, "--from", first, "--to", last, "--dry-run"]

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamline",
            "replay",
            *argv,
            "--json",
            "--state-dir",
            scenario.state_dir,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["read"] >= ours and report["published"] == 0


# -- redrive and quarantine ---------------------------------------------------------------


def test_redrive_follows_the_workflow_to_succeeded_and_prints_its_states(
    redriven: Result,
) -> None:
    assert redriven.code == 0, redriven.out + redriven.err
    lines = redriven.out.splitlines()
    assert lines[0].startswith("started arn:aws:states:")
    assert any(line.endswith("enter  BuildSources") for line in lines)
    assert any(line.endswith("exit   Drain") for line in lines)
    assert any(line.endswith("enter  Quarantine") for line in lines)
    assert "SUCCEEDED" in lines
    summary = next(line for line in lines if line.startswith("replayed "))
    assert int(summary.split("quarantined ")[1].split(",")[0]) >= 1
    assert any(line.startswith("  ingest-failures:") for line in lines)


def test_redrive_no_wait_returns_the_started_execution(
    scenario: Scenario, redriven: Result
) -> None:
    result = scenario.cli("redrive", "--no-wait", "--json")

    assert result.code == 0, result.err
    started = result.json()
    assert started["status"] == "RUNNING"
    sfn = scenario.cloud.client("stepfunctions")
    described = eventually(
        lambda: (
            (d := sfn.describe_execution(executionArn=started["executionArn"]))["status"]
            != "RUNNING"
            and d
        ),
        timeout=120,
    )
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["input"]) == {"trigger": "streamline redrive"}


def test_quarantine_list_and_show_the_poison_record_with_its_reason_and_payload(
    scenario: Scenario, redriven: Result, poison_id: str
) -> None:
    listed = scenario.cli("quarantine", "list", "--json")
    assert listed.code == 0, listed.err
    item = next(i for i in listed.json() if i["record_id"] == poison_id)
    assert item["source"] == "ingest-failures" and "version" in item["reason"]
    assert poison_id in scenario.cli("quarantine", "list").out

    shown = scenario.cli("quarantine", "show", poison_id)
    assert shown.code == 0, shown.err
    assert shown.out.splitlines()[0] == f"record   {poison_id}"
    assert "version" in shown.out.split("payload")[0]
    payload = json.loads(shown.out.split("\npayload\n", 1)[1])
    assert payload["order_id"] == f"{scenario.prefix}-poison"


def test_quarantine_release_refuses_without_yes_a_still_poison_payload_and_unknown_ids(
    scenario: Scenario, redriven: Result, poison_id: str, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**scenario.poison["event"], "version": 1}))

    no_tty = scenario.cli("quarantine", "release", poison_id, "--payload", str(fixed))
    still_poison = scenario.cli("quarantine", "release", poison_id, "--yes")
    unknown = scenario.cli("quarantine", "release", "ingest-failures#event#nope", "--yes")

    for result, text in (
        (no_tty, "pass --yes"),
        (still_poison, "still invalid"),
        (unknown, "no record"),
    ):
        assert result.code == 2 and result.out == ""
        assert len(result.err.strip().splitlines()) == 1 and text in result.err
    assert scenario.cli("quarantine", "show", poison_id, "--json").json()["ledger"]["state"] == (
        "QUARANTINED"
    )


def test_quarantine_release_with_a_fixed_payload_reaches_the_orders_table(
    scenario: Scenario, redriven: Result, poison_id: str, tmp_path: Path
) -> None:
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**scenario.poison["event"], "version": 1}) + "\n")

    released = scenario.cli("quarantine", "release", poison_id, "--payload", str(fixed), "--yes")

    assert released.code == 0, released.err
    assert "published to kinesis" in released.out
    ledger = scenario.cli("quarantine", "show", poison_id, "--json").json()["ledger"]
    assert ledger["state"] == "RELEASED" and ledger["released_by"] and ledger["released_at"]
    order = f"{scenario.prefix}-poison"
    eventually(lambda: order in _orders(scenario), timeout=60)
    again = scenario.cli("quarantine", "release", poison_id, "--yes")
    assert again.code == 2 and "RELEASED" in again.err


# -- one-line errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (("replay", "--stream", "orders", "--shard", "s-1", "--from", "12x"), "digits only"),
        (("replay", "--stream", "nope", "--shard", "s", "--from", "1"), "--stream must be"),
        (("replay", "--failure-queue", "ingest", "--from", "1"), "go with --stream"),
        (("status", "--since", "ten minutes"), "--since must be"),
        (("redrive", "--timeout", "0"), "--timeout must be 1 s to a day"),
    ],
)
def test_bad_arguments_print_one_line_and_exit_2(
    scenario: Scenario, argv: tuple[str, ...], text: str
) -> None:
    result = scenario.cli(*argv)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and text in result.err, result.err


def test_replay_of_an_unknown_shard_is_one_line(scenario: Scenario) -> None:
    result = scenario.cli(
        "replay", "--stream", "order-events", "--shard", "shardId-999999999999", "--from", "1"
    )
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and "cannot read" in result.err


@pytest.fixture(autouse=True)
def _no_leaked_environment() -> Iterator[None]:
    before = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")}
    yield
    assert {k: os.environ.get(k) for k in before} == before
