"""`PipelineFunction`: a Python Lambda function with Streamline's production defaults.

Defaults (class constants): Python 3.13 on arm64, active X-Ray tracing, JSON logs into an
explicit log group with retention, the official Powertools public layer, its own role with
no managed policy (the log group grants its own writes), and the contract's environment.

Example:
    >>> fn = PipelineFunction(self, "Ingest", service="ingest", handler="ingest.handler.handler",
    ...                       settings=FunctionSettings.from_stage(config))
    >>> table.grant_read_write_data(fn.function)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.constructs.alarm_specs import METRIC_PERIOD, AlarmSpec
from stacks.constructs.guard import resolve_handler
from stacks.nag import suppress

if TYPE_CHECKING:
    from stacks.config import StageConfig

__all__ = ["FUNCTIONS_DIR", "FunctionSettings", "PipelineFunction"]

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
METRICS_NAMESPACE = "Streamline"


@dataclass(frozen=True)
class FunctionSettings:
    """Stage-wide function settings (one object shared by every function of a stage)."""

    stage: str
    memory_size: int
    log_retention: logs.RetentionDays
    removal_policy: RemovalPolicy
    chaos_enabled: bool
    powertools_layer_version: int
    code_dir: Path = FUNCTIONS_DIR
    timeout_seconds: int = 30

    @classmethod
    def from_stage(cls, config: StageConfig) -> FunctionSettings:
        return cls(
            stage=config.stage,
            memory_size=config.memory_size,
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
            chaos_enabled=config.chaos_enabled,
            powertools_layer_version=config.powertools_layer_version,
            timeout_seconds=config.function_timeout_seconds,
        )


class PipelineFunction(Construct):
    """A Lambda function from the shared `functions/` asset with production defaults."""

    # the latest Python Lambda runtime (cdk-nag L1); Powertools publishes its V3 layer for it
    RUNTIME = lambda_.Runtime.PYTHON_3_14
    ARCHITECTURE = lambda_.Architecture.ARM_64
    LOG_LEVEL = "INFO"
    POWERTOOLS_ACCOUNT = "017000801446"
    # test code and bytecode never ship; the asset hash then only changes with real code
    ASSET_EXCLUDE = ("**/__pycache__", "**/*.pyc", "**/tests", "**/.pytest_cache", "**/*.md")

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service: str,
        handler: str,
        settings: FunctionSettings,
        environment: dict[str, str] | None = None,
        timeout: Duration | None = None,
        memory_size: int | None = None,
        reserved_concurrency: int | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.service = service
        self.handler = handler
        self.settings = settings
        self.timeout = timeout or Duration.seconds(settings.timeout_seconds)
        self.handler_file, self.handler_symbol = resolve_handler(settings.code_dir, handler)
        self.log_group = self._build_log_group()
        self.role = self._build_role()
        self.function = self._build_function(
            environment=environment or {},
            memory_size=memory_size or settings.memory_size,
            reserved_concurrency=reserved_concurrency,
            description=description or f"Streamline {settings.stage} {service}",
        )
        # built once: the errors alarm and the dashboard's errors graph watch this one metric
        self.errors_metric = self.function.metric_errors(period=METRIC_PERIOD, statistic="Sum")

    def add_environment(self, key: str, value: str) -> None:
        self.function.add_environment(key, value)

    def metric_records(self, name: str, period: Duration | None = None) -> cloudwatch.Metric:
        """One of the batch entry point's EMF metrics (RecordsProcessed|Failed|Poisoned).

        Powertools Metrics publishes them in namespace Streamline with dimension service.
        """
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": self.service},
            period=period or METRIC_PERIOD,
            statistic="Sum",
            label=f"{self.service} {name}",
        )

    def health_metrics(self) -> dict[str, tuple[cloudwatch.IMetric, ...]]:
        """The MetricGroup fields every processor shares: throughput, outcomes, errors, time."""
        fn = self.function
        period = METRIC_PERIOD
        return {
            "invocations": (fn.metric_invocations(period=period, statistic="Sum"),),
            "records": (self.metric_records("RecordsProcessed"),),
            "record_failures": (
                self.metric_records("RecordsFailed"),
                self.metric_records("RecordsPoisoned"),
            ),
            "errors": (self.errors_metric, fn.metric_throttles(period=period, statistic="Sum")),
            "duration": (fn.metric_duration(period=period, statistic="p99"),),
        }

    def errors_alarm(self, prefix: str, threshold: float) -> AlarmSpec:
        """Whole-batch failures (function errors): item failures never count here."""
        return AlarmSpec(
            name=f"{prefix}FunctionErrors",
            metric=self.errors_metric,
            threshold=threshold,
            description=f"{prefix}: whole-batch failures of {self.service}",
        )

    # builders -------------------------------------------------------------------------------

    def _build_log_group(self) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            "Logs",
            retention=self.settings.log_retention,
            removal_policy=self.settings.removal_policy,
        )

    def _build_role(self) -> iam.Role:
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Streamline {self.settings.stage} {self.service} function",
        )
        # instead of AWSLambdaBasicExecutionRole (logs:* on every group): this group only
        self.log_group.grant_write(role)
        return role

    def _build_function(
        self,
        *,
        environment: dict[str, str],
        memory_size: int,
        reserved_concurrency: int | None,
        description: str,
    ) -> lambda_.Function:
        function = lambda_.Function(
            self,
            "Function",
            description=description,
            code=lambda_.Code.from_asset(
                str(self.settings.code_dir), exclude=list(self.ASSET_EXCLUDE)
            ),
            handler=self.handler,
            runtime=self.RUNTIME,
            architecture=self.ARCHITECTURE,
            memory_size=memory_size,
            timeout=self.timeout,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.INFO,
            log_group=self.log_group,
            role=self.role,
            layers=[self._powertools_layer()],
            reserved_concurrent_executions=reserved_concurrency,
            environment={**self._base_environment(), **environment},
        )
        suppress(
            self.role,
            (
                "AwsSolutions-IAM5",
                "X-Ray PutTraceSegments/PutTelemetryRecords (and dynamodb:ListStreams for stream "
                "mappings) support only Resource '*'",
                ["Resource::*"],
            ),
        )
        return function

    def _base_environment(self) -> dict[str, str]:
        return {
            "POWERTOOLS_SERVICE_NAME": self.service,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": self.LOG_LEVEL,
            "STAGE": self.settings.stage,
            "CHAOS_ENABLED": "true" if self.settings.chaos_enabled else "false",
        }

    def _powertools_layer(self) -> lambda_.ILayerVersion:
        """One layer reference per stack; the layer is published per Python version and arch."""
        stack = Stack.of(self)
        layer_id = "PowertoolsLayer"
        existing = stack.node.try_find_child(layer_id)
        if existing is not None:
            return existing  # type: ignore[return-value]
        python = self.RUNTIME.name.replace(".", "")  # python3.13 -> python313
        arch = self.ARCHITECTURE.name  # arm64 | x86_64, as in the layer names
        arn = (
            f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{self.POWERTOOLS_ACCOUNT}:layer:"
            f"AWSLambdaPowertoolsPythonV3-{python}-{arch}:{self.settings.powertools_layer_version}"
        )
        return lambda_.LayerVersion.from_layer_version_arn(stack, layer_id, arn)
