"""Least privilege, cdk-nag (AwsSolutions + Serverless) and cfn-lint on every template."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match

from .support import CONCERNS, ROOT, Synth, resources, state_machine_definition

# AWS only supports Resource "*" for these actions (no resource-level permissions)
STAR_RESOURCE_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "cloudwatch:PutMetricData",
    "dynamodb:ListStreams",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# cfn-lint warnings we accept, each with its reason
ACCEPTED_CFN_LINT_WARNINGS = {
    # CDK adds DependsOn <role> to each function beside the GetAtt, so the role's inline policy
    # exists before the function is created; redundant for ordering, harmless
    "W3005",
}


def _statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    for role in resources(template, "AWS::IAM::Role").values():
        for inline in role["Properties"].get("Policies", []):
            found.extend(inline["PolicyDocument"]["Statement"])
        assert "ManagedPolicyArns" not in role["Properties"], "no managed policies on our roles"
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_actions_and_star_resources_only_where_aws_requires(stage: Synth) -> None:
    for concern in CONCERNS:
        for statement in _statements(stage.json(concern)):
            if statement["Effect"] != "Allow":
                continue
            actions = _as_list(statement["Action"])
            for action in actions:
                assert action != "*", statement
                service, _, name = action.partition(":")
                assert name != "*", f"{concern}: service-wide action {action}"
                if service in ("dynamodb", "sqs", "kinesis", "s3", "sns", "lambda", "states"):
                    assert "*" not in name, f"{concern}: wildcard action {action} on data"
            if "*" in _as_list(statement["Resource"]):
                assert set(actions) <= STAR_RESOURCE_ACTIONS, f"{concern}: {actions} on '*'"


def test_ingest_may_make_exactly_the_orders_write_its_repository_makes(dev: Synth) -> None:
    """OrdersRepository.record is one conditional UpdateItem: a PutItem-only grant once
    failed every event on AWS (the local cloud does not enforce IAM). The ingest stack holds
    one function, ingest, so every DynamoDB action its policies allow is ingest's."""
    template = dev.json("ingest")
    assert len(resources(template, "AWS::Lambda::Function")) == 1
    dynamodb = {
        action
        for statement in _statements(template)
        if statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"])
        if action.startswith("dynamodb:")
    }
    assert dynamodb == {"dynamodb:UpdateItem"}


def test_every_function_has_its_own_role(stage: Synth) -> None:
    roles = []
    for concern in CONCERNS:
        for function in resources(stage.json(concern), "AWS::Lambda::Function").values():
            roles.append(json.dumps(function["Properties"]["Role"]))
    assert len(roles) == 10  # 5 pipeline + 5 recovery task functions
    assert len(set(roles)) == len(roles)


def test_functions_are_arm64_traced_json_logged_with_retention(stage: Synth) -> None:
    for concern in ("ingest", "processing", "orchestration"):
        template = stage.json(concern)
        for function in resources(template, "AWS::Lambda::Function").values():
            props = function["Properties"]
            assert props["Architectures"] == ["arm64"]
            assert props["Runtime"] == "python3.14"
            assert props["TracingConfig"] == {"Mode": "Active"}
            assert props["LoggingConfig"]["LogFormat"] == "JSON"
            layer = json.dumps(props["Layers"])
            assert "017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:" in layer
            env = props["Environment"]["Variables"]
            assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Streamline"
            assert env["STAGE"] == stage.stage
        for group in resources(template, "AWS::Logs::LogGroup").values():
            assert group["Properties"]["RetentionInDays"] in (7, 90)


CONTRACT_ENVIRONMENT = {
    "ingest": {"ORDERS_TABLE", "FAILURE_QUEUE_URL"},
    "changes": {"FULFILMENT_QUEUE_URL", "NOTIFICATIONS_QUEUE_URL", "FAILURE_QUEUE_URL"},
    "fulfil": {"EFFECTS_TABLE", "DLQ_URL"},
    "notify": {"NOTIFIER_FUNCTION_NAME", "DLQ_URL"},
    "notifier": {"EFFECTS_TABLE"},
    "recovery-drain": {"QUARANTINE_BUCKET"},
    "recovery-replay": {"RECOVERY_TABLE", "MAX_REPLAY_ATTEMPTS"},
    "recovery-quarantine": {"RECOVERY_TABLE", "QUARANTINE_BUCKET"},
    "recovery-acknowledge": set(),
    "recovery-summarize": set(),
}
COMMON_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "STAGE",
    "CHAOS_ENABLED",
}


def test_functions_get_exactly_the_contract_environment(dev: Synth) -> None:
    seen = {}
    for concern in ("ingest", "processing", "orchestration"):
        for function in resources(dev.json(concern), "AWS::Lambda::Function").values():
            env = function["Properties"]["Environment"]["Variables"]
            seen[env["POWERTOOLS_SERVICE_NAME"]] = set(env) - COMMON_ENVIRONMENT
    assert seen == CONTRACT_ENVIRONMENT


@pytest.mark.parametrize("concern", CONCERNS)
def test_cdk_nag_has_no_unsuppressed_findings(stage: Synth, concern: str) -> None:
    annotations = Annotations.from_stack(stage.stack(concern))
    findings = [
        f"{m.id}: {str(m.entry.data)[:160]}"
        for m in annotations.find_error("*", Match.any_value())
        + annotations.find_warning("*", Match.any_value())
    ]
    assert findings == []


def test_cdk_nag_actually_ran(dev: Synth) -> None:
    reports = sorted(p.name for p in dev.outdir.glob("*-NagReport.csv"))
    assert len(reports) == 8  # AwsSolutions + Serverless for each of the four stacks


def test_cfn_lint_reports_no_errors(stage: Synth) -> None:
    files = [str(p) for p in stage.template_files()]
    assert len(files) == 4
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "json", *files],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    unexpected = [
        f"{f['Rule']['Id']} {f['Filename']}: {f['Message']}"
        for f in findings
        if f["Rule"]["Id"] not in ACCEPTED_CFN_LINT_WARNINGS
    ]
    assert unexpected == [], result.stderr


def test_state_machine_definition_passes_the_asl_schema(dev: Synth, tmp_path: Path) -> None:
    # cfn-lint checks ASL (E3601) only in a literal DefinitionString, so resolve the tokens
    definition = json.dumps(state_machine_definition(dev.json("orchestration")))
    definition = definition.replace("arn:<token>", "arn:aws").replace(
        '"<token>', '"arn:aws:lambda:eu-west-1:123456789012:function:placeholder'
    )
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Recovery": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/placeholder",
                    "DefinitionString": definition,
                },
            }
        },
    }
    path = tmp_path / "asl.template.json"
    path.write_text(json.dumps(template))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
