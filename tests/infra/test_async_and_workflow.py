"""Notifier Destinations, the recovery state machine and its schedule."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match

from .support import Synth, iter_states, resources, state_machine_definition

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


def test_workflow_maps_sources_two_at_a_time_and_classifies_items(dev: Synth) -> None:
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
    assert states["Classify"]["Default"] == "Quarantine"
    assert states["Backoff"]["SecondsPath"] == "$.item.waitSeconds"
    assert states["Backoff"]["Next"] == "Replay"


def test_replay_retries_transient_errors_with_backoff_and_quarantines_when_exhausted(
    dev: Synth,
) -> None:
    states = dict(iter_states(state_machine_definition(dev.json("orchestration"))["States"]))
    replay = states["Replay"]
    first = replay["Retry"][0]
    assert set(first["ErrorEquals"]) == {
        "TransientReplayError",
        "Lambda.TooManyRequestsException",
        "Lambda.ServiceException",
    }
    assert first["BackoffRate"] > 1 and first["MaxAttempts"] >= 2
    catches = {tuple(c["ErrorEquals"]): c["Next"] for c in replay["Catch"]}
    assert catches[("ReplayAttemptsExhausted",)] == "Quarantine"
    assert list(catches)[-1] == ("States.ALL",)  # the catch-all is last, as ASL requires


def test_every_lambda_task_retries_lambda_service_errors(dev: Synth) -> None:
    states = dict(iter_states(state_machine_definition(dev.json("orchestration"))["States"]))
    tasks = {n: s for n, s in states.items() if s.get("Resource", "").endswith("lambda:invoke")}
    assert set(tasks) == {"Drain", "Replay", "Quarantine", "Acknowledge"}
    for name, task in tasks.items():
        retried = {error for rule in task["Retry"] for error in rule["ErrorEquals"]}
        assert retried >= LAMBDA_SERVICE_ERRORS, name
        assert task["Catch"], name


def test_summary_counts_outcomes_and_notices_only_when_something_was_quarantined(
    dev: Synth,
) -> None:
    states = dict(iter_states(state_machine_definition(dev.json("orchestration"))["States"]))
    assert states["Summary"]["Parameters"]["quarantined.$"] == (
        "States.ArrayLength($.quarantinedRecords)"
    )
    choice = states["AnyQuarantined"]
    assert choice["Choices"] == [
        {"Variable": "$.quarantined", "NumericGreaterThan": 0, "Next": "NotifyQuarantined"}
    ]
    assert choice["Default"] == "Done"
    assert states["NotifyQuarantined"]["Resource"].endswith(":states:::sns:publish")
    assert states["Done"]["Type"] == "Succeed"


def test_messages_are_deleted_only_when_none_of_their_records_failed(dev: Synth) -> None:
    states = dict(iter_states(state_machine_definition(dev.json("orchestration"))["States"]))
    assert states["ForEachItem"]["ResultPath"] == "$.records"  # outcomes replace the items
    split = states["SplitOutcomes"]["Parameters"]
    assert split["failedHandles.$"] == "$.records[?(@.outcome == 'failed')].receiptHandle"
    assert split["handled.$"] == "$.records[?(@.outcome != 'failed')].receiptHandle"
    blocked = states["MarkBlockedHandles"]["ItemSelector"]["blocked.$"]
    assert blocked == "States.ArrayContains($.failedHandles, $$.Map.Item.Value)"
    deletable = states["DeletableHandles"]["Parameters"]
    assert deletable["receiptHandles.$"] == "$.handled[?(@.blocked == false)].handle"
    assert states["AnythingToAcknowledge"]["Choices"][0]["Variable"] == "$.receiptHandles[0]"
    assert states["Acknowledge"]["Parameters"]["Payload"] == {
        "source.$": "$.source",
        "receiptHandles.$": "$.receiptHandles",
    }


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
