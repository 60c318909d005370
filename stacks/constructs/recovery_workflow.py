"""The `recovery` Step Functions workflow: its state machine, definition and execution logs.

For each source (failure queue): drain -> (nothing drained: done) -> back off -> replay the
transient records -> quarantine poison and exhausted ones -> acknowledge; then summarize,
publish a notice when records were quarantined, and end FAILED (RecoveryIncomplete) unless the
run was complete.

Each task takes a source's records all at once, not one Map iteration per record: a Standard
workflow bills every state transition ($25 per million), about ten per record through a
per-record Map, which was the largest part of the pipeline's cost at the demo's fault rate
(README, "Cost"). Per record, the tasks still decide and report one outcome each. The states
it passes are typed in ``orderflow.recovery_contract`` (functions/orderflow).

No JSONPath filter expressions (`[?(...)]`) anywhere: on an empty or non-matching list they
fail the state (States.Runtime). Decisions over lists are made in Python
(orderflow.recovery_outcomes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from cdk_nag import RegexAppliesTo
from constructs import Construct
from orderflow.recovery_contract import (
    RecoveryKind,
    ReplayTarget,
    SourceState,
    WorkflowInput,
)

from stacks.config import StageConfig
from stacks.constructs.function import PipelineFunction
from stacks.nag import suppress

__all__ = ["RecoveryFunctions", "RecoverySource", "RecoveryWorkflow"]

# errors that mean "Lambda itself hiccupped", never "the function failed": always safe to retry
LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


@dataclass(frozen=True)
class RecoverySource:
    """One DLQ or failure destination the workflow drains, and where replays go."""

    name: str
    kind: RecoveryKind
    queue: sqs.IQueue
    target: ReplayTarget
    stream_arn: str | None = None

    def to_state(self) -> SourceState:
        entry: SourceState = {
            "name": self.name,
            "kind": self.kind.value,
            "queueUrl": self.queue.queue_url,
            "target": self.target,
        }
        if self.stream_arn is not None:
            entry["streamArn"] = self.stream_arn
        return entry


@dataclass(frozen=True)
class RecoveryFunctions:
    """The workflow's five task functions (``recovery.handler.<task>``)."""

    drain: PipelineFunction
    replay: PipelineFunction
    quarantine: PipelineFunction
    acknowledge: PipelineFunction
    summarize: PipelineFunction


class RecoveryWorkflow(Construct):
    """The `recovery` state machine over ``sources``, its task states and its log group.

    Give it the id ``"Default"``: CDK leaves that id out of logical ids, so the state machine,
    its role and its log group keep the ids they had when the stack built them itself (a new
    id would replace them on deploy). The state names are the construct ids below.
    """

    MAX_MESSAGES_PER_SOURCE = 10
    SOURCE_CONCURRENCY = 2
    EXECUTION_TIMEOUT = Duration.hours(1)

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        sources: Sequence[RecoverySource],
        functions: RecoveryFunctions,
        notices: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.functions = functions
        self.notices = notices
        self.state_machine = self._state_machine(sources)

    def _lambda_task(
        self, construct_id: str, fn: PipelineFunction, **kwargs: Any
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            construct_id,
            lambda_function=fn.function,
            retry_on_service_exceptions=False,  # replaced by the explicit retry below
            **kwargs,
        )
        return task

    def _add_service_retry(self, task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
        task.add_retry(
            errors=LAMBDA_SERVICE_ERRORS,
            interval=Duration.seconds(2),
            max_attempts=3,
            backoff_rate=2,
        )
        return task

    def _definition(self, sources: Sequence[RecoverySource]) -> sfn.IChainable:
        for_each_source = sfn.Map(
            self,
            "ForEachSource",
            items_path="$.sources",
            max_concurrency=self.SOURCE_CONCURRENCY,
            item_selector={
                "source": sfn.JsonPath.object_at("$$.Map.Item.Value"),
                "maxMessages": sfn.JsonPath.number_at("$.maxMessages"),
            },
            result_path="$.results",
        )
        for_each_source.item_processor(self._per_source())
        workflow_input: WorkflowInput = {
            "sources": [source.to_state() for source in sources],
            "maxMessages": self.MAX_MESSAGES_PER_SOURCE,
        }
        build_sources = sfn.Pass(
            self,
            "BuildSources",
            result=sfn.Result.from_object(dict(workflow_input)),
        )
        # The run's summary is computed by a fifth, tiny function (recovery.handler.summarize;
        # its role has no data permissions): no ASL intrinsic flattens the per-source id lists
        # into quarantinedRecords or sums counts over a list, and the JSONPath ways to do so
        # (filters, nested wildcards) fail on empty or non-matching lists.
        summarize = self._add_service_retry(
            self._lambda_task(
                "Summarize",
                self.functions.summarize,
                payload=sfn.TaskInput.from_object({"sources": sfn.JsonPath.list_at("$.results")}),
                # {quarantined, replayed, failed (counts), quarantinedRecords, sources}
                output_path="$.Payload",
            )
        )
        # no Catch: without a summary the run is failed, which raises RecoveryExecutionsFailed
        # The summary is the failure's cause: a FAILED execution has no output of its own.
        incomplete = sfn.Fail(
            self,
            "RecoveryIncomplete",
            error="RecoveryIncomplete",
            cause_path=sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$")),
        )
        done = (
            sfn.Choice(self, "Complete")
            .when(sfn.Condition.boolean_equals("$.complete", True), sfn.Succeed(self, "Done"))
            .otherwise(incomplete)
        )
        publish = tasks.SnsPublish(
            self,
            "NotifyQuarantined",
            topic=self.notices,
            subject=f"Streamline {self.config.stage}: recovery quarantined records",
            message=sfn.TaskInput.from_text(
                sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$"))
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        publish.add_retry(
            errors=[
                "SNS.SdkClientException",
                "SNS.ThrottledException",
                "SNS.InternalErrorException",
            ],
            interval=Duration.seconds(2),
            max_attempts=3,
            backoff_rate=2,
        )
        any_quarantined = (
            sfn.Choice(self, "AnyQuarantined")
            .when(sfn.Condition.number_greater_than("$.quarantined", 0), publish.next(done))
            .otherwise(done)
        )
        return build_sources.next(for_each_source).next(summarize).next(any_quarantined)

    def _per_source(self) -> sfn.IChainable:
        """Drain -> back off -> replay -> quarantine -> acknowledge, over a source's records.

        Step Functions caps a state at 256 KB: each task replaces what it consumed under
        ``$.records`` (drained items -> outcomes plus items to quarantine -> outcomes) instead
        of adding to it, and each result carries ``count`` (the source's records) so one Pass
        state can report any task's failure. Which messages may be deleted (none of their
        records failed) is decided in Python (orderflow.recovery_outcomes.settle_outcomes),
        never with JSONPath filter expressions: those raise States.Runtime on a list without a
        match.
        """
        drain_failed = self._source_result("DrainFailed", error=sfn.JsonPath.object_at("$.error"))
        # Replay, quarantine or acknowledge failed as a whole: the source's messages stay
        # undeleted and come back next run (replays and sinks are idempotent, quarantined
        # records are quarantined again), so only the count is kept. The run ends FAILED.
        settle_failed = self._source_result(
            "SettleFailed",
            unsettled=sfn.JsonPath.number_at("$.records.count"),
            error=sfn.JsonPath.object_at("$.error"),
        )
        nothing_drained = self._source_result("NothingDrained")
        drain = self._add_service_retry(
            self._lambda_task(
                "Drain",
                self.functions.drain,
                payload=sfn.TaskInput.from_object(
                    {
                        "source": sfn.JsonPath.object_at("$.source"),
                        "maxMessages": sfn.JsonPath.number_at("$.maxMessages"),
                    }
                ),
                result_selector={
                    "items": sfn.JsonPath.list_at("$.Payload.items"),
                    "count": sfn.JsonPath.number_at("$.Payload.count"),
                    "waitSeconds": sfn.JsonPath.number_at("$.Payload.waitSeconds"),
                },
                result_path="$.records",
            )
        )
        # one unreadable source must not stop the others
        drain.add_catch(drain_failed, errors=["States.ALL"], result_path="$.error")

        # A function error is settled per record inside the tasks; what is retried here is
        # Lambda itself failing, and what is caught is the task failing as a whole.
        replay = self._settle_task(
            "Replay",
            self.functions.replay,
            {
                "source": sfn.JsonPath.object_at("$.source"),
                "items": sfn.JsonPath.list_at("$.records.items"),
            },
            {
                "records": sfn.JsonPath.list_at("$.Payload.records"),
                "quarantine": sfn.JsonPath.list_at("$.Payload.quarantine"),
                "count": sfn.JsonPath.number_at("$.Payload.count"),
            },
            settle_failed,
        )
        quarantine = self._settle_task(
            "Quarantine",
            self.functions.quarantine,
            {
                "source": sfn.JsonPath.object_at("$.source"),
                "records": sfn.JsonPath.list_at("$.records.records"),
                "items": sfn.JsonPath.list_at("$.records.quarantine"),
            },
            {
                "records": sfn.JsonPath.list_at("$.Payload.records"),
                "count": sfn.JsonPath.number_at("$.Payload.count"),
            },
            settle_failed,
        )
        acknowledge = self._add_service_retry(
            self._lambda_task(
                "Acknowledge",
                self.functions.acknowledge,
                payload=sfn.TaskInput.from_object(
                    {
                        "source": sfn.JsonPath.object_at("$.source"),
                        "records": sfn.JsonPath.list_at("$.records.records"),
                    }
                ),
                output_path="$.Payload",  # {source, quarantined, replayed, failed, deleted}
            )
        )
        # Delete errors come back as the result's "error"; this catches the function itself.
        acknowledge.add_catch(settle_failed, errors=["States.ALL"], result_path="$.error")
        backoff = sfn.Wait(self, "Backoff", time=sfn.WaitTime.seconds_path("$.records.waitSeconds"))
        anything = (
            sfn.Choice(self, "AnyDrained")
            .when(
                sfn.Condition.number_greater_than("$.records.count", 0),
                backoff.next(replay).next(quarantine).next(acknowledge),
            )
            .otherwise(nothing_drained)
        )
        return drain.next(anything)

    def _source_result(self, construct_id: str, **extra: Any) -> sfn.Pass:
        """A SourceResult with nothing settled (the source's name, empty outcomes) and ``extra``."""
        return sfn.Pass(
            self,
            construct_id,
            parameters={
                "source": sfn.JsonPath.string_at("$.source.name"),
                "quarantined": [],
                "replayed": [],
                "failed": [],
                "deleted": 0,
                **extra,
            },
        )

    def _settle_task(
        self,
        construct_id: str,
        fn: PipelineFunction,
        payload: dict[str, Any],
        result: dict[str, Any],
        on_failure: sfn.IChainable,
    ) -> tasks.LambdaInvoke:
        task = self._add_service_retry(
            self._lambda_task(
                construct_id,
                fn,
                payload=sfn.TaskInput.from_object(payload),
                result_selector=result,
                result_path="$.records",  # replaces what it consumed
            )
        )
        task.add_catch(on_failure, errors=["States.ALL"], result_path="$.error")
        return task

    def _state_machine(self, sources: Sequence[RecoverySource]) -> sfn.StateMachine:
        log_group = logs.LogGroup(
            self,
            "RecoveryLogs",
            # the vended-logs prefix keeps the account's CloudWatch Logs resource policy small
            log_group_name=f"/aws/vendedlogs/states/streamline-{self.config.stage}-recovery",
            retention=self.config.log_retention,
            removal_policy=self.config.removal_policy,
        )
        state_machine = sfn.StateMachine(
            self,
            "RecoveryStateMachine",
            state_machine_name=f"streamline-{self.config.stage}-recovery",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(self._definition(sources)),
            tracing_enabled=True,
            timeout=self.EXECUTION_TIMEOUT,
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        suppress(
            state_machine.role,
            (
                "AwsSolutions-IAM5",
                "X-Ray and CloudWatch Logs vended delivery actions support only Resource '*'",
                ["Resource::*"],
            ),
            (
                "AwsSolutions-IAM5",
                "LambdaInvoke grants <function ARN>:* so every version/alias of the task can run",
                [RegexAppliesTo(regex="/^Resource::<[A-Za-z0-9]+\\.Arn>:\\*$/g")],
            ),
        )
        return state_machine
