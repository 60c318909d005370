"""DynamoDB tables with the pipeline's production defaults, in one place.

On-demand capacity, point-in-time recovery, AWS-managed encryption at rest and the stage's
removal policy, with a string partition key. Every table of the pipeline is built here so a
default changes once.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

__all__ = ["pipeline_table"]


def pipeline_table(
    scope: Construct,
    construct_id: str,
    *,
    partition_key: str,
    removal_policy: RemovalPolicy,
    stream: dynamodb.StreamViewType | None = None,
) -> dynamodb.Table:
    """A table keyed by the string attribute ``partition_key``, optionally with a stream.

    Example::

        orders = pipeline_table(self, "Orders", partition_key="order_id",
                                removal_policy=config.removal_policy,
                                stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    """
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=partition_key, type=dynamodb.AttributeType.STRING),
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        stream=stream,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        removal_policy=removal_policy,
    )
