"""The cost model against hand-computed numbers: each line item, the baseline, the memory table.

A price table of round numbers keeps the arithmetic checkable by hand; one test checks that the
reviewed table (``PRICES``) has every price the model asks for, with a date and a source.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from streamline.cost.cli import parse_rate
from streamline.cost.measure import CostError, drained_records, schedule_minutes
from streamline.cost.model import (
    FunctionUsage,
    Measurement,
    RecoveryRun,
    fit_overhead,
    invocation_ms,
    one_call_per_record,
    split_recovery,
)
from streamline.cost.plan import MEMORY_SIZES, plan
from streamline.cost.prices import PRICES, Price, PriceTable
from streamline.cost.pricing import GIB, estimate
from streamline.cost.render import render_json, render_plan_json, render_plan_text, render_text
from streamline.cost.report_lines import parse_report, summarise
from streamline.local.api_calls import ESM, CallTally

UNIT_PRICES = {
    "lambda_requests": 1e-6,
    "lambda_arm64_gb_second": 1e-5,
    "lambda_x86_64_gb_second": 2e-5,
    "kinesis_shard_hour": 0.01,
    "kinesis_put_payload_unit": 1e-7,
    "kinesis_extended_retention_shard_hour": 0.02,
    "sqs_standard_request": 1e-6,
    "sqs_fifo_request": 2e-6,
    "dynamodb_write_request_unit": 1e-6,
    "dynamodb_read_request_unit": 5e-7,
    "dynamodb_streams_lambda_read": 0.0,
    "sfn_standard_state_transition": 1e-5,
    "cloudwatch_logs_ingestion_gb": 1.024,
    "cloudwatch_custom_metric_month": 0.5,
    "cloudwatch_put_metric_data_request": 1e-5,
    "xray_trace_recorded": 1e-5,
    "eventbridge_custom_event": 1e-6,
}
ROUND = PriceTable(
    "test-1", "2000-01-01", tuple(Price(k, v, 1, "unit", "test") for k, v in UNIT_PRICES.items())
)

INGEST = FunctionUsage(
    name="ingest-fn",
    stage="ingest",
    memory_mb=1024,
    architecture="arm64",
    invocations=10,
    records=1000,
    duration_ms=1000.0,
    billed_ms=1010.0,
    init_ms=(200.0,),
    max_memory_used_mb=100,
    fixed_ms=50.0,
    per_record_ms=0.5,
    log_bytes=2**20,
    per_invocation_log_bytes=2000,
    calls=1000,
)
NOTIFY = FunctionUsage(
    name="notify-fn",
    stage="notify",
    memory_mb=512,
    architecture="x86_64",
    invocations=4,
    records=40,
    duration_ms=80.0,
    billed_ms=84.0,
    calls=40,
)
CALLS = {
    ("client", "kinesis", "PutRecords"): CallTally(calls=2, items=1000, units=1000),
    ("ingest-fn", "dynamodb", "PutItem"): CallTally(calls=1000, items=1000, units=1000),
    (ESM, "sqs", "ReceiveMessage"): CallTally(calls=4, items=40, units=4),
    (ESM, "sqs", "DeleteMessageBatch"): CallTally(calls=4, items=40, units=4, fifo_units=4),
    ("notify-fn", "lambda", "Invoke"): CallTally(calls=40, items=40, units=40),
}
MEASURED = Measurement(
    events=1000,
    window_seconds=100.0,
    functions=(INGEST, NOTIFY),
    calls=CALLS,
    origin="aws",
    state_transitions=100,
    traces=10,
    eventbridge_events=40,
)


def _items(report_items: tuple) -> dict[str, float]:  # type: ignore[type-arg]
    return {item.name: item.per_million for item in report_items}


def test_each_line_item_is_the_window_cost_per_event_times_a_million() -> None:
    # Given a measured window of 1,000 events on AWS, priced with round unit prices
    report = estimate(MEASURED, ROUND)

    # Then each line item is (quantity x unit price) / 1,000 events x 1,000,000
    items = _items(report.items)
    assert items["Lambda requests"] == pytest.approx(14 * 1e-6 * 1000)
    assert items["Lambda duration arm64"] == pytest.approx(1.010 * 1.0 * 1e-5 * 1000)
    assert items["Lambda INIT arm64"] == pytest.approx(0.2 * 1.0 * 1e-5 * 1000)
    assert items["Lambda duration x86_64"] == pytest.approx(0.084 * 0.5 * 2e-5 * 1000)
    assert items["Kinesis PUT payload units"] == pytest.approx(1000 * 1e-7 * 1000)
    assert items["DynamoDB write request units"] == pytest.approx(1000 * 1e-6 * 1000)
    assert items["SQS requests standard"] == pytest.approx(4 * 1e-6 * 1000)
    assert items["SQS requests FIFO"] == pytest.approx(4 * 2e-6 * 1000)
    assert items["Step Functions state transitions"] == pytest.approx(100 * 1e-5 * 1000)
    assert items["CloudWatch Logs ingestion"] == pytest.approx(2**20 / GIB * 1.024 * 1000)
    assert items["X-Ray traces recorded"] == pytest.approx(10 * 1e-5 * 1000)
    assert items["EventBridge events"] == pytest.approx(40 * 1e-6 * 1000)
    assert report.per_million_total == pytest.approx(sum(items.values()))
    # Lambda Invoke is priced as the invoked function's requests, so it is listed, not priced.
    assert report.unpriced == (("lambda", "Invoke", 40),)


def test_init_already_in_billed_duration_is_priced_once() -> None:
    # Given AWS's REPORT since Aug 2025: Billed Duration includes the 200 ms INIT
    fn = FunctionUsage(
        "f",
        "f",
        1024,
        invocations=1,
        duration_ms=100.0,
        billed_ms=301.0,
        init_ms=(200.0,),
        init_in_billed=True,
    )
    measurement = Measurement(events=1000, window_seconds=1, functions=(fn,), origin="aws")

    items = _items(estimate(measurement, ROUND).items)

    # Then the invoke line has the 101 ms, and INIT its own 200 ms
    assert items["Lambda duration arm64"] == pytest.approx(0.101 * 1e-5 * 1000)
    assert items["Lambda INIT arm64"] == pytest.approx(0.200 * 1e-5 * 1000)


def test_one_call_per_record_pays_the_measured_overhead_per_record() -> None:
    # When the same work runs with batch size 1
    report = estimate(MEASURED, ROUND)
    baseline = _items(report.baseline_items)

    # Then ingest runs 1,000 invocations of 50 + 0.5 ms (billed 51 ms) at 1 GB
    assert baseline["Lambda requests"] == pytest.approx((1000 + 40) * 1e-6 * 1000)
    assert baseline["Lambda duration arm64"] == pytest.approx(1000 * 0.051 * 1e-5 * 1000)
    assert baseline["Lambda INIT arm64"] == pytest.approx(0.2 * 1e-5 * 1000)
    # notify has no fitted overhead: its 80 ms over 40 records is all per record (2 ms each)
    assert baseline["Lambda duration x86_64"] == pytest.approx(40 * 0.002 * 0.5 * 2e-5 * 1000)
    # Kinesis and DynamoDB meter per record anyway; the SQS poller receives and deletes per record
    assert baseline["Kinesis PUT payload units"] == pytest.approx(1000 * 1e-7 * 1000)
    assert baseline["DynamoDB write request units"] == pytest.approx(1000 * 1e-6 * 1000)
    assert baseline["SQS requests standard"] == pytest.approx(40 * 1e-6 * 1000)
    assert baseline["SQS requests FIFO"] == pytest.approx(40 * 2e-6 * 1000)
    # START/END/REPORT and EMF lines (200 bytes per ingest invocation) are written per record
    log_bytes = 2**20 + 200 * (1000 - 10)
    assert baseline["CloudWatch Logs ingestion"] == pytest.approx(log_bytes / GIB * 1.024 * 1000)
    # traces grow with invocations: 10 x 1040 / 14
    assert baseline["X-Ray traces recorded"] == pytest.approx(743 * 1e-5 * 1000)
    assert report.baseline_per_million_total == pytest.approx(sum(baseline.values()))
    assert report.ratio == pytest.approx(
        report.baseline_per_million_total / report.per_million_total
    )


def test_one_call_per_record_turns_batch_calls_into_single_calls() -> None:
    baseline = one_call_per_record(MEASURED)

    assert baseline.calls[("client", "kinesis", "PutRecord")] == CallTally(1000, 1000, 0, 1000)
    assert baseline.calls[(ESM, "sqs", "DeleteMessage")].calls == 40
    assert baseline.calls[(ESM, "sqs", "ReceiveMessage")].calls == 40
    assert baseline.calls[("ingest-fn", "dynamodb", "PutItem")].calls == 1000
    assert [f.invocations for f in baseline.functions] == [1000, 40]


def test_one_call_per_record_starts_a_trace_per_record_where_a_mapping_invokes() -> None:
    # Given ingest invoked by a mapping (10 invocations, 1,000 records) and a notifier invoked
    # asynchronously (4 invocations, 40 notifications), 10 traces measured
    ingest = replace(INGEST, starts_traces=True)
    notifier = replace(NOTIFY, name="notifier-fn", stage="notifier")
    measurement = replace(MEASURED, functions=(ingest, notifier), traces=10)

    # Then one call per record adds a trace per extra ingest invocation, none for the notifier
    assert one_call_per_record(measurement).traces == 10 + (1000 - 10)


def test_one_call_per_record_sends_an_onsuccess_event_per_record() -> None:
    # Given a notifier that handled 40 notifications in 4 invocations, each invocation's
    # OnSuccess record going to an event bus (4 events)
    notifier = replace(NOTIFY, name="notifier-fn", stage="notifier", success_to_bus=True)
    measurement = replace(MEASURED, functions=(INGEST, notifier), eventbridge_events=4)

    # Then one call per record sends 40, and ours stays at 4
    assert one_call_per_record(measurement).eventbridge_events == 40
    items = _items(estimate(measurement, ROUND).items)
    baseline = _items(estimate(measurement, ROUND).baseline_items)
    assert items["EventBridge events"] == pytest.approx(4 * 1e-6 * 1000)
    assert baseline["EventBridge events"] == pytest.approx(40 * 1e-6 * 1000)
    # a function without a bus destination does not scale the events
    assert one_call_per_record(MEASURED).eventbridge_events == 40


def test_fixed_monthly_charges_are_kept_apart_from_the_per_event_total() -> None:
    measurement = Measurement(
        events=1000,
        window_seconds=3600,
        functions=(),
        kinesis_shards=2,
        kinesis_retention_hours=168,
        sqs_mappings=(True, False),
        custom_metrics=4,
    )
    report = estimate(measurement, ROUND)

    fixed = {item.name: item.cost for item in report.fixed_monthly}
    assert fixed["Kinesis 2 shards"] == pytest.approx(2 * 730 * 0.01)
    assert fixed["Kinesis retention 168 h"] == pytest.approx(2 * 730 * 0.02)
    # two idle pollers, a 20 s long poll each: 262,800 requests per mapping and month
    assert fixed["SQS idle polls (2 mappings)"] == pytest.approx(262_800 * (1e-6 + 2e-6))
    assert fixed["CloudWatch 4 custom metrics"] == pytest.approx(4 * 0.5)
    assert report.per_million_total == 0


def test_memory_table_scales_only_the_cpu_part_and_marks_cheapest_and_fastest() -> None:
    # Given 100 invocations of 100 ms at 256 MB on AWS, two API calls each (2 x 10 ms I/O wait)
    fn = FunctionUsage(
        "f",
        "f",
        256,
        invocations=100,
        duration_ms=10_000.0,
        billed_ms=10_000.0,
        calls=200,
        max_memory_used_mb=150,
    )
    measurement = Measurement(events=100, window_seconds=60, functions=(fn,), origin="aws")

    report = estimate(measurement, ROUND, memory_sizes=[128, 256, 512, 1024])

    rows = {r.memory_mb: r for r in report.memory_rows if r.function == "f"}
    # 80 ms of CPU at 256 MB doubles at 128 MB and halves at 512 MB; the 20 ms wait stays
    assert [rows[m].duration_ms for m in (128, 256, 512, 1024)] == pytest.approx(
        [180.0, 100.0, 60.0, 40.0]
    )
    # cost per million events = (100 requests + GB-s) / 100 events x 1M
    assert rows[128].per_million == pytest.approx((100e-6 + 100 * 0.180 * 0.125 * 1e-5) * 1e4)
    assert rows[512].per_million == pytest.approx((100e-6 + 100 * 0.060 * 0.5 * 1e-5) * 1e4)
    # 128 MB is cheapest on paper but below the 150 MB the function used
    assert not rows[128].fits
    assert rows[256].cheapest and not rows[128].cheapest
    assert rows[1024].fastest
    # the pipeline rows sum the functions: here 100 invocations of 60 ms over 100 events
    pipeline = {r.memory_mb: r for r in report.memory_rows if r.function == "pipeline"}
    assert pipeline[512].duration_ms == pytest.approx(60.0)
    assert pipeline[512].per_million == pytest.approx(rows[512].per_million)


def test_cpu_time_from_one_unthrottled_core_is_scaled_to_each_memory_size() -> None:
    # Given 10 local invocations with 6 ms of CPU time and 2 API calls each
    fn = FunctionUsage("f", "f", 256, invocations=10, duration_ms=100.0, calls=20, cpu_ms=60.0)

    # Then 6 ms on one core is 6 x 1769/256 ms at 256 MB, plus 2 x 10 ms of AWS calls
    assert invocation_ms(fn, 256) == pytest.approx(6 * 1769 / 256 + 20)
    assert invocation_ms(fn, 1769) == pytest.approx(6 + 20)
    assert invocation_ms(fn, 3008) == pytest.approx(6 + 20)  # one thread: no gain


def test_local_durations_without_cpu_time_stand_for_the_deployed_memory() -> None:
    # Given local invocations of 50 ms with one API call each, and no CPU time measured
    fn = FunctionUsage("f", "f", 512, invocations=4, duration_ms=200.0, billed_ms=200.0, calls=4)
    measurement = Measurement(events=4, window_seconds=1, functions=(fn,), origin="local")

    # Then the deployed size is priced as measured, and 40 ms of it scales as CPU elsewhere
    items = _items(estimate(measurement, ROUND).items)
    assert items["Lambda duration arm64"] == pytest.approx(0.2 * 0.5 * 1e-5 / 4 * 1e6)
    assert invocation_ms(fn, 512) == pytest.approx(50.0)
    assert invocation_ms(fn, 1024) == pytest.approx(40 / 2 + 10)


def test_fit_overhead_splits_fixed_and_per_record_time() -> None:
    assert fit_overhead([(12.0, 1), (30.0, 10), (20.0, 5)])[:2] == pytest.approx((10.0, 2.0))
    # all batches the same size: no fixed overhead can be measured, so none is assumed
    fixed, per_record, note = fit_overhead([(30.0, 10), (32.0, 10)])
    assert (fixed, per_record) == pytest.approx((0.0, 3.1))
    assert note


def test_render_lists_items_beside_the_baseline_with_the_ratio() -> None:
    text = render_text(estimate(MEASURED, ROUND, memory_sizes=[512, 1024]))

    assert "Lambda requests" in text and "1 call/record" in text
    assert "total per million events" in text and "x)" in text
    assert "Assumptions:" in text and "2000-01-01" in text


def test_reviewed_price_table_has_every_price_the_model_uses_with_a_source() -> None:
    assert PRICES.region == "us-east-1" and PRICES.as_of
    keys = {p.key for p in PRICES}
    assert keys == set(UNIT_PRICES)
    assert all(p.source.startswith("https://aws.amazon.com/") and p.note for p in PRICES)
    assert PRICES.unit("lambda_arm64_gb_second") == pytest.approx(0.0000133334)
    assert PRICES.unit("lambda_requests") == pytest.approx(0.2e-6)


# -- REPORT lines -----------------------------------------------------------------------------


def test_text_and_json_report_lines_give_the_same_numbers() -> None:
    text = (
        "REPORT RequestId: r-1\tDuration: 12.34 ms\tBilled Duration: 263 ms\t"
        "Memory Size: 256 MB\tMax Memory Used: 80 MB\tInit Duration: 250.00 ms\t"
    )
    document = (
        '{"time": "2026-01-01T00:00:00.000Z", "type": "platform.report", "record": '
        '{"requestId": "r-1", "status": "success", "metrics": {"durationMs": 12.34, '
        '"billedDurationMs": 263, "memorySizeMB": 256, "maxMemoryUsedMB": 80, '
        '"initDurationMs": 250.0}}}'
    )
    expected = {
        "request_id": "r-1",
        "duration_ms": 12.34,
        "billed_ms": 263,
        "memory_mb": 256,
        "max_memory_used_mb": 80,
        "init_ms": 250.0,
        "status": None,
    }
    assert parse_report(text) == expected
    assert parse_report(document) == expected
    assert parse_report("START RequestId: r-1 Version: $LATEST") is None


def test_summarise_counts_records_from_emf_between_start_and_report() -> None:
    stream = "2026/01/01/[$LATEST]abc"
    emf = '{"_aws": {"CloudWatchMetrics": []}, "RecordsProcessed": 7, "RecordsFailed": 1}'
    events = [
        {"logStreamName": stream, "timestamp": 1, "message": "START RequestId: r-1 Version: 1"},
        {"logStreamName": stream, "timestamp": 2, "message": '{"level": "INFO", "message": "x"}'},
        {"logStreamName": stream, "timestamp": 3, "message": emf},
        {"logStreamName": stream, "timestamp": 4, "message": "END RequestId: r-1"},
        {
            "logStreamName": stream,
            "timestamp": 5,
            "message": "REPORT RequestId: r-1\tDuration: 5.00 ms\tBilled Duration: 5 ms\t"
            "Memory Size: 128 MB\tMax Memory Used: 40 MB",
        },
    ]

    logs = summarise("fn", events)

    assert [r.records for r in logs.reports] == [8]
    assert logs.ingested_bytes == sum(len(e["message"]) + 26 for e in events)
    # all but the application's own log line are written once per invocation
    assert logs.per_invocation_bytes == logs.ingested_bytes - (len(events[1]["message"]) + 26)


# -- the recovery workflow, billed per scheduled run and per failed record ---------------------

RUNS = (RecoveryRun(12, 0), RecoveryRun(42, 3), RecoveryRun(72, 6))
WITH_RECOVERY = Measurement(
    events=1000,
    window_seconds=100.0,
    functions=(),
    origin="aws",
    state_transitions=126,
    recovery_runs=RUNS,
    recovery_runs_per_month=2920,  # rate(15 minutes): 4 an hour x 730 hours
)


def test_recovery_transitions_split_into_a_run_s_base_and_a_record_s_share() -> None:
    assert split_recovery(RUNS)[:2] == pytest.approx((12.0, 10.0))
    assert split_recovery(RUNS)[2] is None
    # only empty runs: the base is their mean, nothing per record
    base, per_record, note = split_recovery((RecoveryRun(10, 0), RecoveryRun(14, 0)))
    assert (base, per_record) == pytest.approx((12.0, 0.0)) and note
    # every run the same size: nothing to tell the base from, all of it counted per record
    base, per_record, note = split_recovery((RecoveryRun(30, 3), RecoveryRun(36, 3)))
    assert (base, per_record) == pytest.approx((0.0, 11.0)) and note
    assert split_recovery(())[:2] == (0.0, 0.0)


def test_recovery_is_billed_per_scheduled_run_monthly_and_per_failed_record() -> None:
    report = estimate(WITH_RECOVERY, ROUND)

    items = _items(report.items)
    # 9 failed records x 10 transitions x $0.00001, over 1,000 events, x 1,000,000
    assert items["Step Functions transitions per failed record"] == pytest.approx(0.90)
    assert "Step Functions state transitions" not in items  # not the window's runs as such
    fixed = {item.name: item.cost for item in report.fixed_monthly}
    # 2,920 runs a month x 12 transitions x $0.00001
    assert fixed["Step Functions recovery runs (2,920 a month)"] == pytest.approx(0.3504)


def test_without_runs_in_the_window_the_transitions_are_priced_as_counted() -> None:
    items = _items(estimate(MEASURED, ROUND).items)
    assert items["Step Functions state transitions"] == pytest.approx(100 * 1e-5 * 1000)


def test_the_fault_rate_and_traffic_table_adds_recovery_and_spreads_fixed_charges() -> None:
    report = estimate(WITH_RECOVERY, ROUND)
    cell = {(s.faults, s.events_per_second): s.per_million for s in report.scenarios}
    month = 730 * 3600  # seconds
    fixed_per_million_at_1 = 0.3504 / month * 1e6  # $0.1333 at 1 event/s
    assert cell[("0%", 1.0)] == pytest.approx(fixed_per_million_at_1)
    assert cell[("0%", 100.0)] == pytest.approx(fixed_per_million_at_1 / 100)
    # 1% poison + 5% transient, one transient in five outlasting retries: 2% reach recovery,
    # 20,000 records per million x 10 transitions x $0.00001 = $2.00
    assert cell[("1% poison + 5% transient", 10.0)] == pytest.approx(
        2.00 + fixed_per_million_at_1 / 10
    )
    # the run's own rate: 9 failed records in 1,000 events
    assert cell[("measured: 0.9% through recovery", 1.0)] == pytest.approx(
        0.90 + fixed_per_million_at_1
    )
    text = render_text(report)
    assert "Per million events at a fault rate and traffic" in text
    assert "1% poison + 5% transient" in text and "100 events/s" in text
    assert len(render_json(report)["scenarios"]) == 9  # type: ignore[arg-type]


def test_schedule_expressions_give_the_minutes_between_runs() -> None:
    assert schedule_minutes("rate(15 minutes)") == 15.0
    assert schedule_minutes("rate(1 hour)") == 60.0
    assert schedule_minutes("rate(2 days)") == 2880.0
    assert schedule_minutes("cron(0 12 * * ? *)") is None
    assert schedule_minutes("rate(banana)") is None


def test_a_runs_failed_records_are_what_its_drains_took() -> None:
    def exited(name: str, output: object) -> dict:
        details = {"name": name, "output": json.dumps(output) if output is not None else None}
        return {"type": "TaskStateExited", "stateExitedEventDetails": details}

    history = [
        {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Drain"}},
        exited("Drain", {"source": {}, "records": {"items": [], "count": 7}}),
        exited("Drain", {"records": {"count": 0}}),
        exited("Replay", {"records": {"count": 99}}),  # the same records, later: not again
        exited("Drain", {"error": {"Error": "X"}}),  # DrainFailed took none
        exited("Drain", None),
        exited("Drain", {"records": {"count": "3"}}),
        {"type": "ExecutionStarted"},
    ]
    assert sum(drained_records(event) for event in history) == 7


# -- the capacity plan (streamline cost --rate N) -----------------------------------------------

PROFILE = Measurement(
    events=1000,
    window_seconds=100.0,
    functions=(
        FunctionUsage(
            "ingest-fn",
            "ingest",
            1024,
            invocations=10,
            records=1000,
            duration_ms=2000.0,
            billed_ms=2000.0,
            max_memory_used_mb=100,
        ),
        FunctionUsage(
            "notify-fn",
            "notify",
            512,
            invocations=100,
            records=1000,
            duration_ms=5000.0,
            billed_ms=5000.0,
            max_memory_used_mb=100,
        ),
    ),
    calls={
        ("client", "kinesis", "PutRecords"): CallTally(
            calls=2, items=1000, payload_bytes=500_000, units=1000
        ),
        (ESM, "sqs", "ReceiveMessage"): CallTally(calls=100, items=1000, units=100, fifo_units=100),
    },
    origin="aws",
    kinesis_shards=1,
)


def test_the_plan_sizes_shards_parallelization_and_concurrency_by_hand() -> None:
    p = plan(PROFILE, ROUND, 1000.0, deployed_pf=1)
    stages = {s.stage: s for s in p.stages}
    # ingest: 1,000 records/s x 2 ms busy each = 2 executions, x1.5 headroom = 3
    assert stages["ingest"].records_per_second == pytest.approx(1000.0)
    assert stages["ingest"].busy_ms_per_record == pytest.approx(2.0)
    assert stages["ingest"].concurrency == 3
    # notify: 1,000 records/s x 5 ms = 5, x1.5 = 7.5 -> 8
    assert stages["notify"].concurrency == 8
    # 1,000 records/s x1.5 over 1,000 per shard -> 2 shards (bytes: 500 KB/s x1.5 fits one);
    # ingest's 3 executions over 2 shards -> parallelization factor 2
    assert (p.shards, p.parallelization_factor) == (2, 2)
    assert all(s.memory_mb in MEMORY_SIZES for s in p.stages)


def test_the_plan_names_the_limit_that_binds_first_on_the_deployed_configuration() -> None:
    p = plan(PROFILE, ROUND, 1000.0, deployed_pf=1)
    binds = {limit.name: limit.binds_at for limit in p.limits}
    # one shard at PF 1 runs one ingest batch at a time: 0.002 busy executions per event/s
    assert binds["ingest batches in flight (1 shard x PF 1)"] == pytest.approx(500.0)
    assert binds["Kinesis records per shard (1 shard)"] == pytest.approx(1000.0)
    assert binds["Kinesis bytes per shard"] == pytest.approx(1024 * 1024 / 500)
    assert binds["SQS FIFO ReceiveMessage calls"] == pytest.approx(3000.0)  # 0.1 call/event
    assert binds["Lambda concurrency (account)"] == pytest.approx(1000 / 0.007)
    assert p.binding is not None and p.binding.name.startswith("ingest batches in flight")
    assert [limit.binds_at for limit in p.limits] == sorted(binds.values())
    # at PF 4 the batches bind at 2,000 events/s and the shard's records first
    assert plan(PROFILE, ROUND, 1000.0, deployed_pf=4).binding.name.startswith("Kinesis records")  # type: ignore[union-attr]


def test_the_plan_s_monthly_bill_is_usage_at_the_rate_plus_the_planned_shards() -> None:
    p = plan(PROFILE, ROUND, 1000.0)
    report = estimate(PROFILE, ROUND)
    # per million: Lambda requests 110 x $0.000001, ingest 2 GB-s + notify 2.5 GB-s x $0.00001,
    # Kinesis 1,000 units x $0.0000001, SQS FIFO 100 requests x $0.000002; over 1,000 events
    assert report.per_million_total == pytest.approx(0.11 + 0.02 + 0.025 + 0.1 + 0.2)
    # 1,000 events/s for a month of 730 hours is 2,628 million events
    assert p.monthly_usage == pytest.approx(report.per_million_total * 2628)
    assert p.monthly_fixed == pytest.approx(2 * 730 * 0.01)  # the 2 planned shards
    assert p.monthly_total == pytest.approx(p.monthly_usage + p.monthly_fixed)
    text = render_plan_text(p)
    assert "Kinesis shards 2, ingest parallelization factor 2" in text
    assert "Binds first: ingest batches in flight" in text
    assert render_plan_json(p)["binding"] == "ingest batches in flight (1 shard x PF 1)"


def test_the_plan_refuses_what_it_cannot_scale() -> None:
    with pytest.raises(ValueError, match="more than 0"):
        plan(PROFILE, ROUND, 0.0)
    with pytest.raises(ValueError, match="no events"):
        plan(Measurement(events=0, window_seconds=1.0, functions=()), ROUND, 10.0)
    for bad in ("0", "-3", "fast", "nan", "inf"):
        with pytest.raises(CostError, match="--rate takes events per second"):
            parse_rate(bad)
    assert parse_rate("2.5") == 2.5 and parse_rate(" 500/s ") == 500.0
