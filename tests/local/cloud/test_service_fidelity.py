"""Smaller service behaviours the local cloud matches AWS on, through the public APIs.

Each answer here is what the AWS API reference documents; an unpatched moto answers otherwise
(noted per test), so a pipeline that passes locally is not refused or misread on AWS.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from streamline.local.cloud import LocalCloud


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- SQS: MessageGroupId / MessageDeduplicationId ---------------------------------------


@pytest.mark.parametrize(
    "group_id",
    ["", "a" * 129, "order 1", "ordér-1", "tab\tid", "o-1\n"],
    ids=["empty", "129-chars", "space", "non-ascii", "tab", "newline"],
)
def test_fifo_send_refuses_a_group_id_sqs_refuses(cloud: LocalCloud, group_id: str) -> None:
    # moto accepted any string; a producer that passes here would be refused on AWS.
    sqs = cloud.client("sqs")
    url = sqs.create_queue(
        QueueName=_name("ids") + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    with pytest.raises(ClientError) as refused:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId=group_id)
    assert refused.value.response["Error"]["Code"] in {
        "InvalidParameterValue",
        "MissingParameter",  # botocore-side for the empty id on some versions
    }
    entries = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "bad", "MessageBody": "x", "MessageGroupId": group_id or " "},
            {"Id": "good", "MessageBody": "y", "MessageGroupId": "o-1"},
        ],
    )
    assert [e["Id"] for e in entries.get("Successful", [])] == ["good"]
    assert [e["Id"] for e in entries["Failed"]] == ["bad"]
    assert (
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
        == "1"
    )


def test_fifo_send_takes_every_id_sqs_allows(cloud: LocalCloud) -> None:
    sqs = cloud.client("sqs")
    url = sqs.create_queue(QueueName=_name("ids") + ".fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    for group_id in ("a" * 128, punctuation, "o-52e6b438-00186"):
        sqs.send_message(
            QueueUrl=url,
            MessageBody="x",
            MessageGroupId=group_id,
            MessageDeduplicationId=group_id[::-1],
        )
    with pytest.raises(ClientError, match="MessageDeduplicationId"):
        sqs.send_message(
            QueueUrl=url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d" * 129
        )


# --- CloudWatch: alarm states and percentiles -----------------------------------------


def _alarm(cloud: LocalCloud, name: str, threshold: float) -> None:
    cloud.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace="Fidelity",
        MetricName=name,
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=threshold,
        ComparisonOperator="GreaterThanThreshold",
    )


def test_a_new_alarm_starts_in_insufficient_data(cloud: LocalCloud) -> None:
    # moto created it in OK: a dashboard showed an alarm nothing had evaluated as healthy.
    name = _name("alarm")
    _alarm(cloud, name, 1)
    (alarm,) = cloud.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"


def test_updating_an_alarm_keeps_its_state(cloud: LocalCloud) -> None:
    # moto replaced the alarm with a new one in OK; CloudWatch keeps the state until the
    # next evaluation.
    cloudwatch = cloud.client("cloudwatch")
    name = _name("alarm")
    _alarm(cloud, name, 1)
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test")
    _alarm(cloud, name, 5)
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"], alarm["Threshold"]) == ("ALARM", "test", 5)


def _put_values(cloud: LocalCloud, name: str, values: list[float], at: datetime) -> None:
    cloud.client("cloudwatch").put_metric_data(
        Namespace="Fidelity",
        MetricData=[{"MetricName": name, "Value": v, "Timestamp": at} for v in values[:500]],
    )


def test_get_metric_statistics_answers_percentiles(cloud: LocalCloud) -> None:
    # moto answered ExtendedStatistics with a 500.
    cloudwatch = cloud.client("cloudwatch")
    name = _name("latency")
    at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    _put_values(cloud, name, [float(v) for v in range(1, 101)], at)
    cloudwatch.put_metric_data(
        Namespace="Fidelity",
        MetricData=[{"MetricName": name, "Values": [500.0], "Counts": [1], "Timestamp": at}],
    )
    answer = cloudwatch.get_metric_statistics(
        Namespace="Fidelity",
        MetricName=name,
        StartTime=at - timedelta(minutes=1),
        EndTime=at + timedelta(minutes=1),
        Period=60,
        Statistics=["SampleCount"],
        ExtendedStatistics=["p50", "p99", "p100"],
    )
    (point,) = answer["Datapoints"]
    assert point["SampleCount"] == 101
    assert point["ExtendedStatistics"] == {"p50": 51.0, "p99": 100.0, "p100": 500.0}


def test_get_metric_data_answers_a_percentile_stat(cloud: LocalCloud) -> None:
    cloudwatch = cloud.client("cloudwatch")
    name = _name("latency")
    at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    _put_values(cloud, name, [float(v) for v in range(1, 11)], at)
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "p90",
                "MetricStat": {
                    "Metric": {"Namespace": "Fidelity", "MetricName": name},
                    "Period": 60,
                    "Stat": "p90",
                },
            }
        ],
        StartTime=at - timedelta(minutes=1),
        EndTime=at + timedelta(minutes=1),
    )
    assert answer["MetricDataResults"][0]["Values"] == [9.0]


def test_unknown_extended_statistic_is_a_client_error(cloud: LocalCloud) -> None:
    now = datetime.now(UTC)
    with pytest.raises(ClientError) as refused:
        cloud.client("cloudwatch").get_metric_statistics(
            Namespace="Fidelity",
            MetricName="x",
            StartTime=now - timedelta(minutes=5),
            EndTime=now,
            Period=60,
            ExtendedStatistics=["median"],
        )
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"


# --- SNS: email subscriptions wait for a confirmation ---------------------------------


def test_email_subscription_is_pending_confirmation(cloud: LocalCloud) -> None:
    # moto showed the subscription confirmed: an operator would believe alarm mail arrives.
    sns = cloud.client("sns")
    topic = sns.create_topic(Name=_name("alarms"))["TopicArn"]
    answer = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="ops@example.com")
    assert answer["SubscriptionArn"] == "pending confirmation"
    (listed,) = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert listed["SubscriptionArn"] == "PendingConfirmation"
    assert listed["Endpoint"] == "ops@example.com"
    mine = [s for s in sns.list_subscriptions()["Subscriptions"] if s["TopicArn"] == topic]
    assert [s["SubscriptionArn"] for s in mine] == ["PendingConfirmation"]

    arn = sns.subscribe(
        TopicArn=topic,
        Protocol="email",
        Endpoint="ops@example.com",
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]
    assert arn.startswith(topic + ":")
    attributes = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert attributes["PendingConfirmation"] == "true"


def test_queue_subscription_is_confirmed_at_once(cloud: LocalCloud) -> None:
    sns = cloud.client("sns")
    topic = sns.create_topic(Name=_name("events"))["TopicArn"]
    queue = cloud.client("sqs").create_queue(QueueName=_name("sub"))["QueueUrl"]
    queue_arn = cloud.client("sqs").get_queue_attributes(
        QueueUrl=queue, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    arn = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    assert arn.startswith(topic + ":")
    (listed,) = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert listed["SubscriptionArn"] == arn


def test_the_cloud_s_clients_are_built_once_and_shared_across_threads(cloud: LocalCloud) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sqs = cloud.client("sqs")
    assert cloud.client("sqs") is sqs  # built once per service and endpoint
    assert cloud.client("dynamodb") is not sqs
    prefix = _name("shared")
    with ThreadPoolExecutor(8) as pool:
        urls = list(
            pool.map(
                lambda n: cloud.client("sqs").create_queue(QueueName=f"{prefix}-{n}"), range(16)
            )
        )
    assert len({u["QueueUrl"] for u in urls}) == 16
    listed = sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]
    assert len(listed) == 16
