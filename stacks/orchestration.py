"""Orchestration: the `recovery` Step Functions workflow, its five task functions and its stores.

The workflow's states and kinds are typed in ``orderflow.recovery_contract`` (functions/orderflow).

No JSONPath filter expressions (`[?(...)]`) anywhere: on an empty or non-matching list they
fail the state (States.Runtime). Decisions over lists are made in Python (orderflow.recovery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from cdk_nag import RegexAppliesTo
from constructs import Construct
from orderflow.recovery_contract import (
    ItemClass,
    Outcome,
    RecoveryKind,
    ReplayTarget,
    SourceState,
    TargetType,
    WorkflowInput,
)

from stacks.config import StageConfig
from stacks.constructs import AlarmSpec, FunctionSettings, MetricGroup, PipelineFunction
from stacks.constructs.failure_queue import failure_queue
from stacks.constructs.table import pipeline_table
from stacks.ingest import IngestStack
from stacks.nag import suppress
from stacks.processing import ProcessingStack
from streamline.topology import CHANGES, FULFIL, INGEST, NOTIFIER, NOTIFY

__all__ = ["OrchestrationStack", "RecoverySource"]

# errors that mean "Lambda itself hiccupped", never "the function failed": always safe to retry
LAMBDA_SERVICE_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
REPLAY_RETRY_ERRORS = [
    "TransientReplayError",
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
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


class OrchestrationStack(Stack):
    """Quarantine store, recovery functions, the `recovery` state machine and its schedule."""

    SCHEDULE = events.Schedule.rate(Duration.minutes(15))
    MAX_MESSAGES_PER_SOURCE = 10
    SOURCE_CONCURRENCY = 2
    ITEM_CONCURRENCY = 5
    MAX_REPLAY_ATTEMPTS = 3
    EXECUTION_TIMEOUT = Duration.hours(1)

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        ingest: IngestStack,
        processing: ProcessingStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.sources = self._recovery_sources(ingest, processing)
        self.access_logs = self._build_access_log_bucket()
        self.quarantine_bucket = self._build_quarantine_bucket()
        self.recovery_table = self._build_recovery_table()
        self.notices = self._build_notices_topic()
        settings = FunctionSettings.from_stage(config)
        self.drain_function = self._recovery_function(
            "Drain",
            "drain",
            settings,
            # payloads too large for the workflow state are kept under payloads/ here
            {"QUARANTINE_BUCKET": self.quarantine_bucket.bucket_name},
        )
        self.replay_function = self._recovery_function(
            "Replay",
            "replay",
            settings,
            {
                "RECOVERY_TABLE": self.recovery_table.table_name,
                "MAX_REPLAY_ATTEMPTS": str(self.MAX_REPLAY_ATTEMPTS),
            },
        )
        self.quarantine_function = self._recovery_function(
            "Quarantine",
            "quarantine",
            settings,
            {
                "RECOVERY_TABLE": self.recovery_table.table_name,
                "QUARANTINE_BUCKET": self.quarantine_bucket.bucket_name,
            },
        )
        self.acknowledge_function = self._recovery_function(
            "Acknowledge", "acknowledge", settings, {}
        )
        # pure computation over the state: no grants beyond logs and X-Ray (see _build_definition)
        self.summarize_function = self._recovery_function("Summarize", "summarize", settings, {})
        self._grant(ingest, processing)
        self.state_machine = self._build_state_machine()
        self.schedule = self._build_schedule()
        CfnOutput(self, "RecoveryStateMachineArn", value=self.state_machine.state_machine_arn)
        CfnOutput(self, "QuarantineBucketName", value=self.quarantine_bucket.bucket_name)
        CfnOutput(self, "RecoveryTableName", value=self.recovery_table.table_name)
        CfnOutput(self, "RecoveryNoticesTopicArn", value=self.notices.topic_arn)

    # sources --------------------------------------------------------------------------------

    @staticmethod
    def _recovery_sources(ingest: IngestStack, processing: ProcessingStack) -> list[RecoverySource]:
        return [
            RecoverySource(
                name=INGEST.failure_name,
                kind=RecoveryKind(INGEST.recovery_kind),
                queue=ingest.ingest.failure_queue,
                target={
                    "type": TargetType.KINESIS.value,
                    "streamName": ingest.stream.stream_name,
                    "streamArn": ingest.stream.stream_arn,
                },
                stream_arn=ingest.stream.stream_arn,
            ),
            RecoverySource(
                name=CHANGES.failure_name,
                kind=RecoveryKind(CHANGES.recovery_kind),
                queue=processing.changes.failure_queue,
                target={
                    "type": TargetType.LAMBDA.value,
                    "functionName": processing.changes_function.function.function_name,
                    "streamArn": processing.changes.stream_arn,
                },
                stream_arn=processing.changes.stream_arn,
            ),
            RecoverySource(
                name=FULFIL.failure_name,
                kind=RecoveryKind(FULFIL.recovery_kind),
                queue=processing.fulfilment.dead_letter_queue,
                target={
                    "type": TargetType.SQS.value,
                    "queueUrl": processing.fulfilment.queue.queue_url,
                },
            ),
            RecoverySource(
                name=NOTIFY.failure_name,
                kind=RecoveryKind(NOTIFY.recovery_kind),
                queue=processing.notifications.dead_letter_queue,
                target={
                    "type": TargetType.SQS.value,
                    "queueUrl": processing.notifications.queue.queue_url,
                },
            ),
            RecoverySource(
                name=NOTIFIER.failure_name,
                kind=RecoveryKind(NOTIFIER.recovery_kind),
                queue=processing.notify_failures,
                target={
                    "type": TargetType.LAMBDA_ASYNC.value,
                    "functionName": processing.notifier_function.function.function_name,
                },
            ),
        ]

    # stores ---------------------------------------------------------------------------------

    def _build_access_log_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(90),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            # buckets are kept in every stage: CloudFormation cannot delete a non-empty bucket
            removal_policy=RemovalPolicy.RETAIN,
        )
        suppress(bucket, ("AwsSolutions-S1", "this is the server access log bucket itself"))
        return bucket

    def _build_quarantine_bucket(self) -> s3.Bucket:
        return s3.Bucket(
            self,
            "QuarantineBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="quarantine/",
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _build_recovery_table(self) -> dynamodb.Table:
        return pipeline_table(
            self,
            "Recovery",
            partition_key="record_id",
            removal_policy=self.config.removal_policy,
        )

    def _build_notices_topic(self) -> sns.Topic:
        return sns.Topic(
            self,
            "RecoveryNotices",
            display_name=f"Streamline {self.config.stage} recovery notices",
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", "alias/aws/sns"),
            enforce_ssl=True,
        )

    # functions and grants -------------------------------------------------------------------

    def _recovery_function(
        self, construct_id: str, task: str, settings: FunctionSettings, environment: dict[str, str]
    ) -> PipelineFunction:
        fn = PipelineFunction(
            self,
            f"{construct_id}Function",
            service=f"recovery-{task}",
            handler=f"recovery.handler.{task}",
            settings=settings,
            timeout=Duration.seconds(60),
            environment=environment,
        )
        suppress(
            fn.function,
            (
                "Serverless-LambdaDLQ",
                "invoked synchronously by Step Functions, which retries and catches its errors",
            ),
        )
        return fn

    def _grant(self, ingest: IngestStack, processing: ProcessingStack) -> None:
        drain = self.drain_function.function
        replay = self.replay_function.function
        quarantine = self.quarantine_function.function
        acknowledge = self.acknowledge_function.function
        for source in self.sources:
            # drain reads and releases (visibility) messages; only acknowledge deletes them
            source.queue.grant(
                drain,
                "sqs:ReceiveMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
            )
            source.queue.grant(acknowledge, "sqs:DeleteMessage", "sqs:GetQueueUrl")
            if source.stream_arn is not None:
                # acknowledge sends the rest of a long stream range back as a new on-failure
                # record, right before it deletes the message that held the whole range
                source.queue.grant_send_messages(acknowledge)
        # stream failure records hold only metadata: drain re-reads the records by sequence range
        drain.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetShardIterator",
                    "kinesis:GetRecords",
                    "kinesis:ListShards",
                ],
                resources=[ingest.stream.stream_arn],
            )
        )
        drain.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:DescribeStream",
                    "dynamodb:GetShardIterator",
                    "dynamodb:GetRecords",
                ],
                resources=[processing.changes.stream_arn],
            )
        )
        # replay: back to each source, with the attempt counter in the recovery table
        # orderflow.dal.recovery: the ledger is read and conditionally updated, never scanned
        self.recovery_table.grant(replay, "dynamodb:GetItem", "dynamodb:UpdateItem")
        replay.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:ListShards"],
                resources=[ingest.stream.stream_arn],
            )
        )
        processing.fulfilment.queue.grant_send_messages(replay)
        processing.notifications.queue.grant_send_messages(replay)
        for target in (processing.changes_function.function, processing.notifier_function.function):
            replay.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[target.function_arn]
                )
            )
        # drain: payloads too large for the workflow state (the quarantine document points there)
        drain.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.quarantine_bucket.arn_for_objects("payloads/*")],
            )
        )
        suppress(
            self.drain_function.role,
            (
                "AwsSolutions-IAM5",
                "payload objects are keyed by content hash; PutObject only, under payloads/",
                [
                    RegexAppliesTo(
                        regex="/^Resource::<QuarantineBucket[0-9A-F]+\\.Arn>\\/payloads\\/\\*$/g"
                    )
                ],
            ),
        )
        # quarantine: one S3 object per record + the index entry
        self.recovery_table.grant(quarantine, "dynamodb:GetItem", "dynamodb:UpdateItem")
        quarantine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.quarantine_bucket.arn_for_objects("*")],
            )
        )
        suppress(
            self.quarantine_function.role,
            (
                "AwsSolutions-IAM5",
                "object keys are per quarantined record; PutObject only, on this bucket only",
                [RegexAppliesTo(regex="/^Resource::<QuarantineBucket[0-9A-F]+\\.Arn>\\/\\*$/g")],
            ),
        )

    # workflow -------------------------------------------------------------------------------

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

    def _build_definition(self) -> sfn.IChainable:
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
            "sources": [source.to_state() for source in self.sources],
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
                self.summarize_function,
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

    def _per_item(self) -> sfn.IChainable:
        """Classify -> (wait -> replay | quarantine) -> {recordId, receiptHandle, outcome}."""
        item_state = sfn.TaskInput.from_json_path_at("$")
        item_result = sfn.Pass(
            self,
            "ItemResult",
            parameters={
                "recordId": sfn.JsonPath.string_at("$.item.recordId"),
                "receiptHandle": sfn.JsonPath.string_at("$.item.receiptHandle"),
                "outcome": sfn.JsonPath.string_at("$.outcome"),
                # the rest of a long stream range ("" if none): acknowledge sends it
                "continuation": sfn.JsonPath.string_at("$.item.continuation"),
            },
        )

        def mark(construct_id: str, outcome: str) -> sfn.Chain:
            return sfn.Pass(
                self, construct_id, result=sfn.Result.from_string(outcome), result_path="$.outcome"
            ).next(item_result)

        mark_failed = mark("MarkFailed", Outcome.FAILED.value)
        quarantine = self._add_service_retry(
            self._lambda_task(
                "Quarantine",
                self.quarantine_function,
                payload=item_state,
                result_path=sfn.JsonPath.DISCARD,
            )
        )
        quarantine.add_catch(mark_failed, errors=["States.ALL"], result_path="$.error")
        quarantine.next(mark("MarkQuarantined", Outcome.QUARANTINED.value))

        replay = self._lambda_task(
            "Replay", self.replay_function, payload=item_state, result_path=sfn.JsonPath.DISCARD
        )
        replay.add_retry(
            errors=REPLAY_RETRY_ERRORS,
            interval=Duration.seconds(5),
            max_attempts=3,
            backoff_rate=2,
        )
        replay.add_retry(
            errors=["Lambda.AWSLambdaException", "Lambda.SdkClientException"],
            interval=Duration.seconds(2),
            max_attempts=3,
            backoff_rate=2,
        )
        replay.add_catch(
            quarantine, errors=["ReplayAttemptsExhausted"], result_path="$.replayError"
        )
        # anything else (e.g. TransientReplayError after its retries): leave it for the next run
        replay.add_catch(mark_failed, errors=["States.ALL"], result_path="$.error")
        replay.next(mark("MarkReplayed", Outcome.REPLAYED.value))

        transient, poison = ItemClass.TRANSIENT.value, ItemClass.POISON.value
        backoff = sfn.Wait(
            self, "Backoff", time=sfn.WaitTime.seconds_path("$.item.waitSeconds")
        ).next(replay)
        return (
            sfn.Choice(self, "Classify")
            .when(
                sfn.Condition.and_(
                    sfn.Condition.string_equals("$.item.classification", transient),
                    sfn.Condition.is_present("$.item.waitSeconds"),
                ),
                backoff,
            )
            .when(sfn.Condition.string_equals("$.item.classification", transient), replay)
            .when(sfn.Condition.string_equals("$.item.classification", poison), quarantine)
            # "deferred" (not drained this run) and anything unknown: leave it, fail the run
            .otherwise(mark_failed)
        )

    def _per_source(self) -> sfn.IChainable:
        """Drain -> each item -> acknowledge (settle outcomes, delete handled messages).

        Step Functions caps a state at 256 KB: each step replaces what it consumed (items ->
        outcomes -> record ids per outcome) instead of adding to it. Which messages may be
        deleted (none of their records failed) and the outcome lists are computed in Python
        (orderflow.recovery.settle_outcomes), never with JSONPath filter expressions: those
        raise States.Runtime on a list without a match.
        """
        empty_outcomes: dict[str, Any] = {
            "quarantined": [],
            "replayed": [],
            "failed": [],
            "deleted": 0,
        }
        drain_failed = sfn.Pass(
            self,
            "DrainFailed",
            parameters={
                "source": sfn.JsonPath.string_at("$.source.name"),
                **empty_outcomes,
                "error": sfn.JsonPath.object_at("$.error"),
            },
        )
        drain = self._add_service_retry(
            self._lambda_task(
                "Drain",
                self.drain_function,
                payload=sfn.TaskInput.from_object(
                    {
                        "source": sfn.JsonPath.object_at("$.source"),
                        "maxMessages": sfn.JsonPath.number_at("$.maxMessages"),
                    }
                ),
                result_selector={"items": sfn.JsonPath.list_at("$.Payload.items")},
                result_path="$.records",
            )
        )
        # one unreadable source must not stop the others
        drain.add_catch(drain_failed, errors=["States.ALL"], result_path="$.error")

        for_each_item = sfn.Map(
            self,
            "ForEachItem",
            items_path="$.records.items",
            max_concurrency=self.ITEM_CONCURRENCY,
            item_selector={
                "source": sfn.JsonPath.object_at("$.source"),
                "item": sfn.JsonPath.object_at("$$.Map.Item.Value"),
            },
            result_path="$.records",  # the outcomes replace the (large) drained items
        )
        for_each_item.item_processor(self._per_item())

        # Always called, also with no records (it then deletes nothing): no Choice on the list.
        acknowledge = self._add_service_retry(
            self._lambda_task(
                "Acknowledge",
                self.acknowledge_function,
                payload=sfn.TaskInput.from_object(
                    {
                        "source": sfn.JsonPath.object_at("$.source"),
                        "records": sfn.JsonPath.list_at("$.records"),
                    }
                ),
                output_path="$.Payload",  # {source, quarantined, replayed, failed, deleted}
            )
        )
        # Delete errors come back as the result's "error"; this catches the function itself
        # failing. Its messages stay undeleted and come back next run (replays and sinks are
        # idempotent, quarantined records are quarantined again), so only the count is kept.
        acknowledge_failed = sfn.Pass(
            self,
            "AcknowledgeFailed",
            parameters={
                "source": sfn.JsonPath.string_at("$.source.name"),
                **empty_outcomes,
                "unsettled": sfn.JsonPath.array_length(sfn.JsonPath.list_at("$.records")),
                "error": sfn.JsonPath.object_at("$.acknowledgeError"),
            },
        )
        acknowledge.add_catch(
            acknowledge_failed, errors=["States.ALL"], result_path="$.acknowledgeError"
        )
        return drain.next(for_each_item).next(acknowledge)

    def _build_state_machine(self) -> sfn.StateMachine:
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
            definition_body=sfn.DefinitionBody.from_chainable(self._build_definition()),
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

    def _build_schedule(self) -> events.Rule:
        dead_letters = failure_queue(
            self,
            "ScheduleDeadLetters",
            why="this queue is the schedule target's dead-letter queue",
            retention=Duration.days(14),
        )
        return events.Rule(
            self,
            "RecoverySchedule",
            description="Run the recovery workflow over every DLQ and failure destination",
            schedule=self.SCHEDULE,
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,
                    input=events.RuleTargetInput.from_object({"trigger": "schedule"}),
                    dead_letter_queue=dead_letters,
                    retry_attempts=2,
                    max_event_age=Duration.hours(1),
                )
            ],
        )

    # metrics and alarms ---------------------------------------------------------------------

    def alarm_specs(self) -> list[AlarmSpec]:
        return [
            AlarmSpec(
                name="RecoveryExecutionsFailed",
                metric=self.state_machine.metric_failed(
                    period=Duration.minutes(5), statistic="Sum"
                ),
                threshold=1,
                description="recovery: a workflow execution failed, timed out or was aborted",
            )
        ]

    def metric_groups(self) -> list[MetricGroup]:
        sm = self.state_machine
        return [
            # One graph of every outcome: failure counts arrive with failures, so a graph of
            # failures alone would read "No data available." on a good day.
            MetricGroup(
                title="Recovery workflow",
                invocations=(
                    sm.metric_started(period=Duration.minutes(5), statistic="Sum"),
                    sm.metric_succeeded(period=Duration.minutes(5), statistic="Sum"),
                    sm.metric_failed(period=Duration.minutes(5), statistic="Sum"),
                    sm.metric_timed_out(period=Duration.minutes(5), statistic="Sum"),
                ),
                duration=(sm.metric_time(period=Duration.minutes(5), statistic="p99"),),
            )
        ]
