"""Notifier Destinations, the recovery state machine and its schedule."""

from __future__ import annotations

import itertools
import json
from typing import Any

from aws_cdk.assertions import Match

from .support import Synth, iter_states, resources, state_machine_definition

PER_SOURCE_TASKS = {"Drain", "Replay", "Quarantine", "Acknowledge"}

LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
}


def test_notifier_event_invoke_config_sets_retries_age_and_destinations(stage: Synth) -> None:
    processing = stage.pipeline.processing
    (config,) = resources(stage.json("processing"), "AWS::Lambda::EventInvokeConfig").values()
    props = config["Properties"]
    assert props["FunctionName"] == {"Ref": stage.logical_id(processing.notifier_function.function)}
    assert props["Qualifier"] == "$LATEST"
    assert props["MaximumRetryAttempts"] == 2
    assert props["MaximumEventAgeInSeconds"] == 3600
    assert props["DestinationConfig"] == {
        "OnSuccess": {
            "Destination": {"Fn::GetAtt": [stage.logical_id(processing.audit_bus), "Arn"]}
        },
        "OnFailure": {
            "Destination": {"Fn::GetAtt": [stage.logical_id(processing.notify_failures), "Arn"]}
        },
    }


def test_notify_may_invoke_only_the_notifier(stage: Synth) -> None:
    processing = stage.pipeline.processing
    template = stage.json("processing")
    role = stage.logical_id(processing.notify_function.role)
    invokes = [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in _actions(statement)
    ]
    assert invokes == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {
                "Fn::GetAtt": [stage.logical_id(processing.notifier_function.function), "Arn"]
            },
        }
    ]


def test_state_machine_is_standard_traced_and_logs_everything(stage: Synth) -> None:
    stage.template("orchestration").has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineName": f"streamline-{stage.stage}-recovery",
            "StateMachineType": "STANDARD",
            "TracingConfiguration": {"Enabled": True},
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": [Match.any_value()],
            },
        },
    )


def test_workflow_maps_sources_two_at_a_time_and_settles_each_source_in_one_pass(
    dev: Synth,
) -> None:
    definition = state_machine_definition(dev.json("orchestration"))
    states = dict(iter_states(definition["States"]))
    assert definition["StartAt"] == "BuildSources"
    sources = states["BuildSources"]["Result"]["sources"]
    assert [s["kind"] for s in sources] == [
        "kinesis-failure",
        "dynamodb-failure",
        "sqs-dlq",
        "sqs-dlq",
        "lambda-destination",
    ]
    assert {s["target"]["type"] for s in sources} == {"kinesis", "lambda", "sqs", "lambda-async"}
    assert all("streamArn" in s for s in sources if s["kind"].endswith("-failure"))
    assert states["ForEachSource"]["MaxConcurrency"] == 2
    assert states["ForEachSource"]["ItemProcessor"]["StartAt"] == "Drain"
    # No Map over records: a transition per record is what a run's cost grew with.
    assert [name for name, state in states.items() if state["Type"] == "Map"] == ["ForEachSource"]
    path = ["Drain", "AnyDrained", "Backoff", "Replay", "Quarantine", "Acknowledge"]
    for here, there in itertools.pairwise(path[2:]):
        assert states[here]["Next"] == there, here
    assert states["Drain"]["Next"] == "AnyDrained"
    assert states["AnyDrained"]["Choices"] == [
        {"Variable": "$.records.count", "NumericGreaterThan": 0, "Next": "Backoff"}
    ]
    assert states["AnyDrained"]["Default"] == "NothingDrained"
    assert states["Backoff"]["SecondsPath"] == "$.records.waitSeconds"


def test_each_task_replaces_the_records_it_consumed(dev: Synth) -> None:
    states = dict(iter_states(state_machine_definition(dev.json("orchestration"))["States"]))
    assert states["Drain"]["ResultSelector"] == {
        "items.$": "$.Payload.items",
        "count.$": "$.Payload.count",
        "waitSeconds.$": "$.Payload.waitSeconds",
    }
    assert states["Replay"]["Parameters"]["Payload"] == {
        "source.$": "$.source",
        "items.$": "$.records.items",
    }
    assert states["Quarantine"]["Parameters"]["Payload"] == {
        "source.$": "$.source",
        "records.$": "$.records.records",
        "items.$": "$.records.quarantine",
    }
    for name in ("Drain", "Replay", "Quarantine"):
        assert states[name]["ResultPath"] == "$.records", name
        assert "count.$" in states[name]["ResultSelector"], name  # SettleFailed reads it


def test_every_lambda_task_retries_lambda_service_errors(dev: Synth) -> None:
    states = dict(iter_states(state_machine_definition(dev.json("orchestration"))["States"]))
    tasks = {n: s for n, s in states.items() if s.get("Resource", "").endswith("lambda:invoke")}
    assert set(tasks) == PER_SOURCE_TASKS | {"Summarize"}
    for name, task in tasks.items():
        retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
        assert retried >= LAMBDA_SERVICE_ERRORS, name
    # a source's failure is caught so the other sources go on; a failed summary fails the run
    assert all(tasks[name]["Catch"] for name in PER_SOURCE_TASKS)
    assert "Catch" not in tasks["Summarize"]


def test_summary_is_computed_by_summarize_and_notices_only_when_something_was_quarantined(
    dev: Synth,
) -> None:
    states = dict(iter_states(state_machine_definition(dev.json("orchestration"))["States"]))
    assert states["ForEachSource"]["ResultPath"] == "$.results"
    assert states["ForEachSource"]["Next"] == "Summarize"
    summarize = states["Summarize"]
    assert summarize["Parameters"]["Payload"] == {"sources.$": "$.results"}
    assert summarize["OutputPath"] == "$.Payload"
    assert summarize["Next"] == "AnyQuarantined"
    choice = states["AnyQuarantined"]
    assert choice["Choices"] == [
        {"Variable": "$.quarantined", "NumericGreaterThan": 0, "Next": "NotifyQuarantined"}
    ]
    assert choice["Default"] == "Complete"
    assert states["NotifyQuarantined"]["Resource"].endswith(":states:::sns:publish")
    assert states["NotifyQuarantined"]["Next"] == "Complete"
    # A run with a failed record or an undrained source ends FAILED (the alarm fires).
    complete = states["Complete"]
    assert complete["Choices"] == [
        {"Variable": "$.complete", "BooleanEquals": True, "Next": "Done"}
    ]
    assert complete["Default"] == "RecoveryIncomplete"
    assert states["RecoveryIncomplete"]["Type"] == "Fail"
    assert states["RecoveryIncomplete"]["Error"] == "RecoveryIncomplete"
    assert states["RecoveryIncomplete"]["CausePath"] == "States.JsonToString($)"
    assert states["Done"]["Type"] == "Succeed"


def test_every_drained_source_is_acknowledged_and_any_task_failure_is_reported(
    dev: Synth,
) -> None:
    states = dict(iter_states(state_machine_definition(dev.json("orchestration"))["States"]))
    acknowledge = states["Acknowledge"]
    assert acknowledge["Parameters"]["Payload"] == {
        "source.$": "$.source",
        "records.$": "$.records.records",
    }
    assert acknowledge["OutputPath"] == "$.Payload"
    assert acknowledge["End"] is True
    for name in ("Replay", "Quarantine", "Acknowledge"):
        assert [c["Next"] for c in states[name]["Catch"]] == ["SettleFailed"], name
        assert states[name]["Catch"][0]["ResultPath"] == "$.error", name
    assert [c["Next"] for c in states["Drain"]["Catch"]] == ["DrainFailed"]
    for failed in ("DrainFailed", "SettleFailed", "NothingDrained"):
        params = states[failed]["Parameters"]
        assert params["source.$"] == "$.source.name"
        assert (params["quarantined"], params["replayed"], params["failed"]) == ([], [], [])
        assert params["deleted"] == 0
        assert states[failed]["End"] is True
    assert states["SettleFailed"]["Parameters"]["unsettled.$"] == "$.records.count"
    assert states["SettleFailed"]["Parameters"]["error.$"] == "$.error"
    assert "error.$" not in states["NothingDrained"]["Parameters"]
    choices = sorted(name for name, state in states.items() if state["Type"] == "Choice")
    assert choices == ["AnyDrained", "AnyQuarantined", "Complete"]


def test_definition_has_no_jsonpath_filters_or_runtime_array_lookups(dev: Synth) -> None:
    # filter expressions fail the state (States.Runtime) on an empty or non-matching list
    definition = json.dumps(state_machine_definition(dev.json("orchestration")))
    assert "[?(" not in definition
    assert "States.ArrayContains" not in definition
    assert "[0]" not in definition


def test_summarize_function_has_no_data_permissions(dev: Synth) -> None:
    orchestration = dev.pipeline.orchestration
    role = dev.logical_id(orchestration.summarize_function.role)
    actions = {
        action
        for policy in resources(dev.json("orchestration"), "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in _actions(statement)
    }
    assert {action.split(":")[0] for action in actions} <= {"xray", "logs"}, actions


def test_schedule_starts_the_workflow_every_15_minutes(stage: Synth) -> None:
    orchestration = stage.pipeline.orchestration
    stage.template("orchestration").has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(15 minutes)",
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Ref": stage.logical_id(orchestration.state_machine)},
                        "DeadLetterConfig": Match.any_value(),
                        "RetryPolicy": Match.any_value(),
                    }
                )
            ],
        },
    )


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)
