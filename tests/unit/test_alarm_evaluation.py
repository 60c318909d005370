"""The alarm evaluation core against hand-computed expectations (no AWS, no moto).

Every case uses one-minute periods starting at 2026-11-28 04:50:00 UTC (``T``) and evaluates at
``T + 30 s``, so the newest period is the one in progress at ``T`` when it has data.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamline.local.alarm_rules import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmDefinition,
    Sample,
    aggregate,
    alarm_message,
    alarm_subject,
    evaluate,
    evaluation_range,
)

T = datetime(2026, 11, 28, 4, 50, tzinfo=UTC).timestamp()
NOW = T + 30
MINUTE = 60


def alarm(**overrides: object) -> AlarmDefinition:
    fields: dict[str, object] = {
        "name": "dlq-depth",
        "namespace": "AWS/SQS",
        "metric_name": "ApproximateNumberOfMessagesVisible",
        "statistic": "Maximum",
        "period": MINUTE,
        "evaluation_periods": 1,
        "threshold": 1.0,
        "comparison_operator": "GreaterThanOrEqualToThreshold",
    }
    fields.update(overrides)
    return AlarmDefinition(**fields)  # type: ignore[arg-type]


def points(*values: float | None) -> list[tuple[float, float]]:
    """One sample per period, newest first: ``points(5, None, 0)`` is T=5, T-1m missing, T-2m=0."""
    return [(T - i * MINUTE + 5, v) for i, v in enumerate(values) if v is not None]


# --- the AWS reason format -------------------------------------------------------------------


def test_one_breaching_datapoint_alarms_with_cloudwatchs_reason() -> None:
    # Given a 1-of-1 alarm at >= 1 and one sample of 3 in the current minute
    # When it is evaluated from OK
    result = evaluate(alarm(), points(3.0), now=NOW, current_state=OK)
    # Then it alarms, and the reason reads exactly as CloudWatch writes it
    assert result.state == ALARM
    assert result.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [3.0 (28/11/26 04:50:00)] was greater"
        " than or equal to the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )
    assert result.reason_data["recentDatapoints"] == [3.0]
    assert result.reason_data["evaluatedDatapoints"] == [
        {"timestamp": "2026-11-28T04:50:00.000+0000", "sampleCount": 1.0, "value": 3.0}
    ]


def test_not_breaching_datapoint_returns_to_ok_with_the_negated_reason() -> None:
    result = evaluate(alarm(), points(0.0), now=NOW, current_state=ALARM)
    assert result.state == OK
    assert result.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (28/11/26 04:50:00)] was not"
        " greater than or equal to the threshold (1.0)"
        " (minimum 1 datapoint for ALARM -> OK transition)."
    )


# --- comparisons -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("GreaterThanOrEqualToThreshold", 1.0, ALARM),
        ("GreaterThanOrEqualToThreshold", 0.99, OK),
        ("GreaterThanThreshold", 1.0, OK),
        ("GreaterThanThreshold", 1.01, ALARM),
        ("LessThanThreshold", 1.0, OK),
        ("LessThanThreshold", 0.99, ALARM),
        ("LessThanOrEqualToThreshold", 1.0, ALARM),
        ("LessThanOrEqualToThreshold", 1.01, OK),
    ],
)
def test_each_comparison_operator_at_and_around_the_threshold(
    operator: str, value: float, expected: str
) -> None:
    result = evaluate(alarm(comparison_operator=operator), points(value), now=NOW)
    assert result.state == expected


def test_reason_names_the_comparison() -> None:
    result = evaluate(
        alarm(comparison_operator="LessThanThreshold", threshold=2.0), points(1.5), now=NOW
    )
    assert "was less than the threshold (2.0)" in result.reason


def test_unsupported_operator_is_rejected() -> None:
    with pytest.raises(ValueError, match="ComparisonOperator"):
        alarm(comparison_operator="LessThanLowerOrGreaterThanUpperThreshold")


# --- statistics ------------------------------------------------------------------------------

FOUR = [(T + 1, 1.0), (T + 2, 2.0), (T + 3, 3.0), (T + 4, 10.0)]


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [
        ("Sum", 16.0),
        ("Average", 4.0),
        ("Minimum", 1.0),
        ("Maximum", 10.0),
        ("SampleCount", 4.0),
        # Nearest rank over [1, 2, 3, 10]: the ceil(p/100 * 4)-th smallest value.
        ("p50", 2.0),
        ("p75", 3.0),
        ("p90", 10.0),
        ("p0", 1.0),
        ("p100", 10.0),
    ],
)
def test_statistics_over_one_period(statistic: str, expected: float) -> None:
    datapoint = aggregate(FOUR, MINUTE, statistic)[T]
    assert datapoint.value == expected
    assert datapoint.sample_count == 4.0


def test_percentiles_over_a_hundred_values() -> None:
    hundred = [(T + i / 10, float(i)) for i in range(1, 101)]  # 1..100
    assert aggregate(hundred, MINUTE, "p99")[T].value == 99.0
    assert aggregate(hundred, MINUTE, "p99.9")[T].value == 100.0
    assert aggregate(hundred, MINUTE, "p10")[T].value == 10.0


def test_percentile_alarm_uses_the_extended_statistic() -> None:
    definition = alarm(statistic=None, extended_statistic="p75", threshold=3.0)
    # p75 of [1, 2, 3, 10] is 3: at the threshold, so >= alarms and > does not.
    assert evaluate(definition, FOUR, now=NOW).state == ALARM
    strict = alarm(
        statistic=None,
        extended_statistic="p75",
        threshold=3.0,
        comparison_operator="GreaterThanThreshold",
    )
    assert evaluate(strict, FOUR, now=NOW).state == OK


def test_statistic_sets_feed_sum_average_but_not_percentiles() -> None:
    # A StatisticValues datum (sum 10 over 4 samples) and one raw value 2.
    samples = [Sample(T + 1, sum=10.0, minimum=1.0, maximum=5.0, count=4.0), Sample.of(T + 2, 2.0)]
    assert aggregate(samples, MINUTE, "Sum")[T].value == 12.0
    assert aggregate(samples, MINUTE, "Average")[T].value == 12.0 / 5.0
    assert aggregate(samples, MINUTE, "Maximum")[T].value == 5.0
    assert aggregate([samples[0]], MINUTE, "p50") == {}


def test_samples_are_bucketed_per_period() -> None:
    buckets = aggregate([(T - 1, 1.0), (T, 2.0), (T + 59, 3.0), (T + 60, 4.0)], MINUTE, "Sum")
    assert {k - T: v.value for k, v in buckets.items()} == {-60: 1.0, 0: 5.0, 60: 4.0}


# --- the evaluation range --------------------------------------------------------------------


def test_range_ends_at_the_current_period_only_when_it_has_data() -> None:
    definition = alarm(evaluation_periods=3)
    assert evaluation_range(definition, points(1.0), NOW) == [T, T - 60, T - 120]
    assert evaluation_range(definition, points(None, 1.0), NOW) == [T - 60, T - 120, T - 180]


def test_samples_older_than_the_range_do_not_count() -> None:
    # Given a breach four minutes ago and a 3-period alarm with data in the current minute
    result = evaluate(alarm(evaluation_periods=3), points(0.0, 0.0, 0.0, 9.0), now=NOW)
    assert result.state == OK
    assert len(result.datapoints) == 3


def test_future_samples_do_not_count() -> None:
    result = evaluate(alarm(), [(NOW + 10, 9.0), (T + 1, 0.0)], now=NOW, current_state=OK)
    assert result.state == OK


# --- M out of N ------------------------------------------------------------------------------


def test_two_of_three_breaching_alarms() -> None:
    definition = alarm(
        evaluation_periods=3,
        datapoints_to_alarm=2,
        threshold=3.0,
        comparison_operator="GreaterThanThreshold",
    )
    result = evaluate(definition, points(5.0, 0.0, 5.0), now=NOW, current_state=OK)
    assert result.state == ALARM
    assert result.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [5.0 (28/11/26 04:50:00),"
        " 5.0 (28/11/26 04:48:00)] were greater than the threshold (3.0)"
        " (minimum 2 datapoints for OK -> ALARM transition)."
    )


def test_one_of_three_breaching_is_ok_when_two_are_needed() -> None:
    definition = alarm(
        evaluation_periods=3,
        datapoints_to_alarm=2,
        threshold=3.0,
        comparison_operator="GreaterThanThreshold",
    )
    result = evaluate(definition, points(5.0, 0.0, 0.0), now=NOW, current_state=ALARM)
    assert result.state == OK
    # OK is certain once N - M + 1 = 2 datapoints do not breach.
    assert result.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [0.0 (28/11/26 04:49:00),"
        " 0.0 (28/11/26 04:48:00)] were not greater than the threshold (3.0)"
        " (minimum 2 datapoints for ALARM -> OK transition)."
    )


def test_datapoints_to_alarm_defaults_to_evaluation_periods() -> None:
    definition = alarm(evaluation_periods=3)
    assert definition.required == 3
    assert evaluate(definition, points(5.0, 5.0, 0.0), now=NOW).state == OK
    assert evaluate(definition, points(5.0, 5.0, 5.0), now=NOW).state == ALARM


# --- missing data ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "current", "expected", "reason"),
    [
        ("missing", OK, INSUFFICIENT_DATA, "Insufficient Data: 3 datapoints were unknown."),
        ("ignore", ALARM, ALARM, None),
        ("ignore", OK, OK, None),
        (
            "breaching",
            OK,
            ALARM,
            "Threshold Crossed: no datapoints were received for 3 periods"
            " and 3 missing datapoints were treated as [Breaching].",
        ),
        (
            "notBreaching",
            ALARM,
            OK,
            "Threshold Crossed: no datapoints were received for 3 periods"
            " and 3 missing datapoints were treated as [NonBreaching].",
        ),
    ],
)
def test_no_data_in_the_range(mode: str, current: str, expected: str, reason: str | None) -> None:
    definition = alarm(evaluation_periods=3, treat_missing_data=mode)
    result = evaluate(definition, [], now=NOW, current_state=current)
    assert result.state == expected
    assert result.datapoints == (None, None, None)
    if reason is not None:
        assert result.reason == reason


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # 1 present (breaching) of 3, M = 2: with `missing` every present datapoint breaches.
        ("missing", ALARM),
        # `ignore` keeps the state while fewer than M datapoints are present.
        ("ignore", OK),
        ("breaching", ALARM),  # 1 + 2 filled = 3 >= 2
        ("notBreaching", OK),  # 1 < 2
    ],
)
def test_one_breaching_and_two_missing(mode: str, expected: str) -> None:
    definition = alarm(evaluation_periods=3, datapoints_to_alarm=2, treat_missing_data=mode)
    result = evaluate(definition, points(5.0, None, None), now=NOW, current_state=OK)
    assert result.state == expected


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("missing", OK),  # 2 present, 1 breaching < 2
        ("ignore", OK),  # 2 present = M, so they decide: 1 breaching < 2
        ("breaching", ALARM),  # 1 + 1 filled = 2
        ("notBreaching", OK),
    ],
)
def test_one_breaching_one_calm_one_missing(mode: str, expected: str) -> None:
    definition = alarm(evaluation_periods=3, datapoints_to_alarm=2, treat_missing_data=mode)
    result = evaluate(definition, points(5.0, 0.0, None), now=NOW, current_state=ALARM)
    assert result.state == expected


def test_calm_datapoint_with_missing_ones_stays_ok_even_as_breaching() -> None:
    # 0 - - with 3 of 3: two missing treated as breaching are still fewer than three.
    definition = alarm(evaluation_periods=3, treat_missing_data="breaching")
    assert evaluate(definition, points(0.0, None, None), now=NOW).state == OK


def test_reason_mentions_missing_datapoints_filled_as_breaching() -> None:
    definition = alarm(evaluation_periods=3, datapoints_to_alarm=2, treat_missing_data="breaching")
    result = evaluate(definition, points(5.0, None, None), now=NOW, current_state=OK)
    assert result.reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [5.0 (28/11/26 04:50:00)] was greater"
        " than or equal to the threshold (1.0) and 2 missing datapoints were treated as"
        " [Breaching] (minimum 2 datapoints for OK -> ALARM transition)."
    )


def test_unknown_missing_data_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="TreatMissingData"):
        alarm(treat_missing_data="sometimes")


# --- definitions and notifications -----------------------------------------------------------


def test_definition_from_describe_alarms() -> None:
    definition = AlarmDefinition.from_api(
        {
            "AlarmName": "a",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Statistic": "Sum",
            "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
            "Period": 300,
            "EvaluationPeriods": 2,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
        }
    )
    assert definition.dimensions == (("FunctionName", "f"),)
    assert definition.required == 2
    assert definition.treat_missing_data == "missing"


def test_notification_subject_and_message_follow_aws() -> None:
    assert alarm_subject("dlq", ALARM, "us-east-1") == 'ALARM: "dlq" in US East (N. Virginia)'
    message = alarm_message(
        {
            "AlarmName": "dlq",
            "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:dlq",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Namespace": "AWS/SQS",
            "Statistic": "Maximum",
            "Dimensions": [{"Name": "QueueName", "Value": "q"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 1.0,
            "AlarmActions": ["arn:aws:sns:us-east-1:123456789012:t"],
            "AlarmConfigurationUpdatedTimestamp": T,
        },
        account_id="123456789012",
        region="us-east-1",
        old_state=OK,
        new_state=ALARM,
        reason="r",
        changed_at=NOW,
    )
    assert message["StateChangeTime"] == "2026-11-28T04:50:30.000+0000"
    assert message["Region"] == "US East (N. Virginia)"
    assert message["Trigger"]["Statistic"] == "MAXIMUM"
    assert message["Trigger"]["StatisticType"] == "Statistic"
    assert message["Trigger"]["Dimensions"] == [{"value": "q", "name": "QueueName"}]
    assert message["Trigger"]["DatapointsToAlarm"] == 1
    assert message["Trigger"]["TreatMissingData"] == "missing"
    assert message["OKActions"] == []
