"""docs/esm-semantics.md items 1-13 on the deployed conformance app: SQS mappings, end to end.

Queues and mappings are created through the public APIs against functions the fixture app
deployed with `cdk deploy`; what the function saw comes from its S3 journal.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.local.cloud.deployed import (
    Deployed,
    eventually,
    queue_counts,
)

pytestmark = pytest.mark.local


def _queue(
    d: Deployed, *, fifo: bool = False, vt: int = 3, dlq_after: int | None = None
) -> tuple[str, str, str | None]:
    sqs = d.client("sqs")
    name = f"t-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
    attrs: dict[str, str] = {"VisibilityTimeout": str(vt)}
    if fifo:
        attrs["FifoQueue"] = "true"
    dlq_url = None
    if dlq_after:
        dlq_url = sqs.create_queue(
            QueueName=name.replace(".fifo", "") + "-dlq" + (".fifo" if fifo else ""),
            Attributes={"FifoQueue": "true"} if fifo else {},
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        attrs["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": dlq_after}
        )
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn, dlq_url


def _map(d: Deployed, function: str, source_arn: str, **kwargs: Any) -> str:
    kwargs.setdefault("FunctionResponseTypes", ["ReportBatchItemFailures"])
    return d.client("lambda").create_event_source_mapping(
        FunctionName=d.out(function), EventSourceArn=source_arn, **kwargs
    )["UUID"]


def _send(d: Deployed, url: str, bodies: list[dict[str, Any]], **kwargs: Any) -> list[str]:
    sqs = d.client("sqs")
    return [
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(b), **kwargs)["MessageId"]
        for b in bodies
    ]


def _drained(d: Deployed, url: str) -> bool:
    return queue_counts(d.client("sqs"), url) == (0, 0)


@pytest.mark.parametrize(
    "value",
    [{}, None, "", [], {"batchItemFailures": []}, {"batchItemFailures": None}],
    ids=["empty-object", "null", "empty-string", "empty-list", "empty-failures", "null-failures"],
)
def test_item_01_full_success_forms_delete_the_batch(deployed: Deployed, value: Any) -> None:
    url, arn, _ = _queue(deployed)
    scenario = f"item01-{uuid.uuid4().hex[:6]}"
    _map(deployed, "SlowArn", arn, BatchSize=10)
    _send(deployed, url, [{"scenario": scenario, "respond": "literal", "value": value}])
    eventually(lambda: deployed.journal(scenario))
    eventually(lambda: _drained(deployed, url), timeout=15)
    assert len(deployed.journal(scenario)) == 1


@pytest.mark.parametrize("respond", ["raise", "bad-id", "unserialisable"])
def test_item_02_raise_or_malformed_response_fails_the_whole_batch(
    deployed: Deployed, respond: str
) -> None:
    url, arn, _ = _queue(deployed, vt=2)
    scenario = f"item02-{uuid.uuid4().hex[:6]}"
    # Both messages wait before the mapping exists: its first receive takes them together
    # (mapped first, a busy machine let the poller take the first one alone).
    ok, bad = _send(
        deployed, url, [{"scenario": scenario}, {"scenario": scenario, "respond": respond}]
    )
    uuid_ = _map(deployed, "SlowArn", arn, BatchSize=10)
    batches = eventually(
        lambda: deployed.records(scenario)[1:] and deployed.records(scenario), timeout=20
    )
    deployed.client("lambda").delete_event_source_mapping(UUID=uuid_)
    # The whole batch came back, the good message too: nothing was deleted.
    assert {r["messageId"] for r in batches[1]} == {ok, bad}
    assert all(int(r["attributes"]["ApproximateReceiveCount"]) == 2 for r in batches[1])


def test_item_03_failures_are_ignored_without_report_batch_item_failures(
    deployed: Deployed,
) -> None:
    url, arn, _ = _queue(deployed)
    scenario = f"item03-{uuid.uuid4().hex[:6]}"
    _map(deployed, "SlowArn", arn, FunctionResponseTypes=[])
    _send(deployed, url, [{"scenario": scenario, "fail": True}])
    eventually(lambda: _drained(deployed, url), timeout=15)
    assert len(deployed.journal(scenario)) == 1


def test_items_04_05_06_partial_failure_keeps_only_listed_ids_until_the_dlq(
    deployed: Deployed,
) -> None:
    url, arn, dlq_url = _queue(deployed, vt=2, dlq_after=2)
    scenario = f"item05-{uuid.uuid4().hex[:6]}"
    _map(deployed, "SlowArn", arn, BatchSize=10, MaximumBatchingWindowInSeconds=1)
    ids = _send(
        deployed,
        url,
        [{"scenario": scenario}, {"scenario": scenario, "fail": True}, {"scenario": scenario}],
    )
    assert dlq_url is not None
    moved = eventually(
        lambda: (
            deployed.client("sqs")
            .receive_message(QueueUrl=dlq_url, AttributeNames=["All"])
            .get("Messages")
        ),
        timeout=30,
    )
    assert [m["MessageId"] for m in moved] == [ids[1]]
    assert _drained(deployed, url)
    deliveries = [r for batch in deployed.records(scenario) for r in batch]
    counts = [
        int(r["attributes"]["ApproximateReceiveCount"])
        for r in deliveries
        if r["messageId"] == ids[1]
    ]
    assert counts == [1, 2]
    assert sum(1 for r in deliveries if r["messageId"] in (ids[0], ids[2])) == 2


def test_item_07_batch_size_over_10_needs_a_window(deployed: Deployed) -> None:
    _, arn, _ = _queue(deployed, vt=30)
    with pytest.raises(ClientError) as error:
        _map(deployed, "BehaveArn", arn, BatchSize=100)
    assert error.value.response["Error"]["Code"] == "InvalidParameterValueException"
    _, fifo_arn, _ = _queue(deployed, fifo=True, vt=30)
    with pytest.raises(ClientError):
        _map(deployed, "BehaveArn", fifo_arn, BatchSize=11, MaximumBatchingWindowInSeconds=1)


def test_item_08_fifo_holds_a_failing_group_while_others_flow(deployed: Deployed) -> None:
    url, arn, _ = _queue(deployed, fifo=True, vt=2)
    scenario = f"item08-{uuid.uuid4().hex[:6]}"
    _map(deployed, "SlowArn", arn, BatchSize=1)
    sqs = deployed.client("sqs")
    sent = []
    for group, n, extra in (("A", 1, {"failBelowReceiveCount": 2}), ("A", 2, {}), ("B", 1, {})):
        body = {"scenario": scenario, "m": f"{group}{n}", **extra}
        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps(body),
            MessageGroupId=group,
            MessageDeduplicationId=f"{group}{n}",
        )
        sent.append(body["m"])
    eventually(lambda: _drained(deployed, url), timeout=20)
    order = [json.loads(b[0]["body"])["m"] for b in deployed.records(scenario)]
    assert order.index("A2") > max(i for i, m in enumerate(order) if m == "A1")
    assert order.count("A1") == 2
    assert order.index("B1") < order.index("A2")


def test_item_09_unmatched_messages_are_deleted_without_invocation(deployed: Deployed) -> None:
    url, arn, _ = _queue(deployed)
    scenario = f"item09-{uuid.uuid4().hex[:6]}"
    _map(
        deployed,
        "SlowArn",
        arn,
        FilterCriteria={"Filters": [{"Pattern": json.dumps({"body": {"kind": ["keep"]}})}]},
    )
    _send(
        deployed,
        url,
        [{"scenario": scenario, "kind": "drop"}, {"scenario": scenario, "kind": "keep"}],
    )
    eventually(lambda: _drained(deployed, url), timeout=15)
    seen = [json.loads(r["body"])["kind"] for b in deployed.records(scenario) for r in b]
    assert seen == ["keep"]


def test_item_10_sqs_record_shape(deployed: Deployed) -> None:
    url, arn, _ = _queue(deployed, fifo=True)
    scenario = f"item10-{uuid.uuid4().hex[:6]}"
    _map(deployed, "SlowArn", arn)
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    deployed.client("sqs").send_message(
        QueueUrl=url,
        MessageBody=json.dumps({"scenario": scenario}),
        MessageGroupId="g",
        MessageDeduplicationId="d1",
        MessageAttributes={"colour": {"DataType": "String", "StringValue": "blue"}},
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": trace}},
    )
    (batch,) = eventually(lambda: deployed.records(scenario))
    (record,) = batch
    # md5OfMessageAttributes accompanies messageAttributes when there are any (as in AWS)
    assert set(record) - {"md5OfMessageAttributes"} == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn
    for key in (
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
        "MessageGroupId",
        "MessageDeduplicationId",
        "SequenceNumber",
        "AWSTraceHeader",
    ):
        assert key in record["attributes"], key
    assert record["attributes"]["AWSTraceHeader"] == trace
    assert record["messageAttributes"]["colour"]["stringValue"] == "blue"
    assert record["messageAttributes"]["colour"]["dataType"] == "String"


def test_item_11_mapping_refused_when_visibility_is_below_function_timeout(
    deployed: Deployed,
) -> None:
    _, arn, _ = _queue(deployed, vt=5)  # Behave's timeout is 10 s
    with pytest.raises(ClientError) as error:
        _map(deployed, "BehaveArn", arn)
    assert error.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_item_12_disabled_mapping_stops_polling_and_delete_stops_it(deployed: Deployed) -> None:
    url, arn, _ = _queue(deployed)
    scenario = f"item12-{uuid.uuid4().hex[:6]}"
    lam = deployed.client("lambda")
    mapping = _map(deployed, "SlowArn", arn, Enabled=False)
    _send(deployed, url, [{"scenario": scenario}])
    deployed.cloud.wait_idle(timeout=30)
    assert deployed.journal(scenario) == []
    lam.update_event_source_mapping(UUID=mapping, Enabled=True)
    eventually(lambda: deployed.journal(scenario), timeout=10)
    lam.delete_event_source_mapping(UUID=mapping)
    # The engine drops the mapping's worker within a poll (AWS shows "Deleting" meanwhile).
    eventually(lambda: mapping not in {m["uuid"] for m in deployed.cloud.esm.status()})
    _send(deployed, url, [{"scenario": scenario}])
    deployed.cloud.wait_idle(timeout=30)
    assert len(deployed.journal(scenario)) == 1
    assert queue_counts(deployed.client("sqs"), url)[0] == 1


def test_item_13_maximum_concurrency_caps_concurrent_invocations(deployed: Deployed) -> None:
    url, arn, _ = _queue(deployed, vt=10)
    scenario = f"item13-{uuid.uuid4().hex[:6]}"
    _map(deployed, "SlowArn", arn, BatchSize=1, ScalingConfig={"MaximumConcurrency": 2})
    _send(deployed, url, [{"scenario": scenario, "sleep": 0.8} for _ in range(6)])
    eventually(lambda: _drained(deployed, url), timeout=30)
    entries = deployed.journal(scenario)
    assert len(entries) == 6
    intervals = sorted((e["startedAt"], e["startedAt"] + 0.8) for e in entries)
    peak = max(sum(1 for s, f in intervals if s <= t < f) for t, _ in intervals)
    assert peak <= 2
