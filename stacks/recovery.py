"""The recovery stack (deployed as ``streamline-<stage>-orchestration``): the `recovery`
workflow's sources, its five task functions and their grants, the quarantine bucket, the
recovery table, the notices topic and the 15-minute schedule.

The state machine itself is :class:`stacks.constructs.recovery_workflow.RecoveryWorkflow`; the
states it passes are typed in ``orderflow.recovery_contract`` (functions/orderflow).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from cdk_nag import RegexAppliesTo
from constructs import Construct
from orderflow.recovery_contract import RecoveryKind, TargetType

from stacks.config import StageConfig
from stacks.constructs import AlarmSpec, FunctionSettings, MetricGroup, PipelineFunction
from stacks.constructs.failure_queue import failure_queue
from stacks.constructs.recovery_workflow import RecoveryFunctions, RecoverySource, RecoveryWorkflow
from stacks.constructs.table import pipeline_table
from stacks.ingest import IngestStack
from stacks.nag import suppress
from stacks.processing import ProcessingStack
from streamline.topology import CHANGES, FULFIL, INGEST, NOTIFIER, NOTIFY

__all__ = ["RecoveryStack"]


class RecoveryStack(Stack):
    """Quarantine store, recovery functions, the `recovery` state machine and its schedule."""

    SCHEDULE = events.Schedule.rate(Duration.minutes(15))
    #: Coarser than the processors' METRIC_PERIOD: a run starts every 15 minutes (or on demand),
    #: so one-minute buckets would graph mostly empty points.
    WORKFLOW_METRIC_PERIOD = Duration.minutes(5)
    MAX_REPLAY_ATTEMPTS = 3

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
            # a source's whole drain at once (up to orderflow.recovery.MAX_ITEMS records), each
            # published to its target, a synchronous invoke for the changes function's
            timeout=Duration.minutes(5),
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
        # pure computation over the state: no grants beyond logs and X-Ray (see RecoveryWorkflow)
        self.summarize_function = self._recovery_function("Summarize", "summarize", settings, {})
        self._grant(ingest, processing)
        self.workflow = RecoveryWorkflow(
            self,
            "Default",  # a construct id CDK leaves out of logical ids: the resources keep theirs
            config=config,
            sources=self.sources,
            functions=RecoveryFunctions(
                drain=self.drain_function,
                replay=self.replay_function,
                quarantine=self.quarantine_function,
                acknowledge=self.acknowledge_function,
                summarize=self.summarize_function,
            ),
            notices=self.notices,
        )
        self.state_machine = self.workflow.state_machine
        # built once: the RecoveryExecutionsFailed alarm and the dashboard graph watch this one
        self.executions_failed = self.state_machine.metric_failed(
            period=self.WORKFLOW_METRIC_PERIOD, statistic="Sum"
        )
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
        self,
        construct_id: str,
        task: str,
        settings: FunctionSettings,
        environment: dict[str, str],
        timeout: Duration | None = None,
    ) -> PipelineFunction:
        fn = PipelineFunction(
            self,
            f"{construct_id}Function",
            service=f"recovery-{task}",
            handler=f"recovery.handler.{task}",
            settings=settings,
            timeout=timeout or Duration.seconds(60),
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
                metric=self.executions_failed,
                threshold=1,
                description="recovery: a workflow execution failed, timed out or was aborted",
            )
        ]

    def metric_groups(self) -> list[MetricGroup]:
        sm, period = self.state_machine, self.WORKFLOW_METRIC_PERIOD
        return [
            # One graph of every outcome: failure counts arrive with failures, so a graph of
            # failures alone would read "No data available." on a good day.
            MetricGroup(
                title="Recovery workflow",
                invocations=(
                    sm.metric_started(period=period, statistic="Sum"),
                    sm.metric_succeeded(period=period, statistic="Sum"),
                    self.executions_failed,
                    sm.metric_timed_out(period=period, statistic="Sum"),
                ),
                duration=(sm.metric_time(period=period, statistic="p99"),),
            )
        ]
