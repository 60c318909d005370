"""A queue that holds failures: a DLQ, an on-failure destination, a schedule's dead letters.

Every such queue carries the same defaults (SQS-managed encryption, TLS only, a retention long
enough for recovery) and answers the same two cdk-nag rules the same way: a dead-letter queue
needs no dead-letter queue of its own. ``why`` says whose failures it holds.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.nag import suppress


def failure_queue(
    scope: Construct,
    construct_id: str,
    *,
    why: str,
    retention: Duration,
    why_no_redrive: str | None = None,
    queue_name: str | None = None,
    fifo: bool | None = None,
) -> sqs.Queue:
    """The queue, with ``why`` (and ``why_no_redrive`` for the redrive rule, if it reads
    better without the parenthesis) as the suppressions' reasons."""
    queue = sqs.Queue(
        scope,
        construct_id,
        queue_name=queue_name,
        fifo=fifo,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=retention,
    )
    suppress(
        queue,
        ("AwsSolutions-SQS3", why),
        ("Serverless-SQSRedrivePolicy", why_no_redrive or why),
    )
    return queue
