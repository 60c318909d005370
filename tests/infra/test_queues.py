"""Queues: redrive, the visibility rule, encryption and TLS-only policies."""

from __future__ import annotations

from typing import Any

from .support import Synth, resources


def _queue_by_arn(template: dict[str, Any], arn: Any) -> dict[str, Any]:
    logical = arn["Fn::GetAtt"][0]
    return template["Resources"][logical]["Properties"]  # type: ignore[no-any-return]


def test_source_queues_redrive_to_a_dlq_after_five_receives(stage: Synth) -> None:
    processing = stage.pipeline.processing
    template = stage.json("processing")
    for processor in (processing.fulfilment, processing.notifications):
        queue = template["Resources"][stage.logical_id(processor.queue)]["Properties"]
        assert queue["RedrivePolicy"] == {
            "deadLetterTargetArn": {
                "Fn::GetAtt": [stage.logical_id(processor.dead_letter_queue), "Arn"]
            },
            "maxReceiveCount": 5,
        }
        dlq = template["Resources"][stage.logical_id(processor.dead_letter_queue)]["Properties"]
        assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_fifo_queue_and_its_dlq_are_fifo_with_explicit_names(dev: Synth) -> None:
    fulfilment = dev.pipeline.processing.fulfilment
    template = dev.json("processing")
    for queue in (fulfilment.queue, fulfilment.dead_letter_queue):
        props = template["Resources"][dev.logical_id(queue)]["Properties"]
        assert props["FifoQueue"] is True
        assert props["QueueName"].endswith(".fifo")
        assert props["QueueName"].startswith("streamline-dev-processing-fulfilment")


def test_visibility_timeout_is_at_least_six_function_timeouts_plus_window(stage: Synth) -> None:
    template = stage.json("processing")
    mappings = [
        r["Properties"]
        for r in resources(template, "AWS::Lambda::EventSourceMapping").values()
        if "StartingPosition" not in r["Properties"]  # SQS mappings
    ]
    assert len(mappings) == 2
    for mapping in mappings:
        queue = _queue_by_arn(template, mapping["EventSourceArn"])
        function = template["Resources"][mapping["FunctionName"]["Ref"]]["Properties"]
        window = mapping.get("MaximumBatchingWindowInSeconds", 0)
        assert queue["VisibilityTimeout"] >= 6 * function["Timeout"] + window


def test_every_queue_is_encrypted_and_tls_only(stage: Synth) -> None:
    for concern in ("ingest", "processing", "orchestration"):
        template = stage.json(concern)
        queues = resources(template, "AWS::SQS::Queue")
        assert queues
        for props in (q["Properties"] for q in queues.values()):
            assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props
        tls_only = set()
        for policy in resources(template, "AWS::SQS::QueuePolicy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}:
                    assert statement["Effect"] == "Deny"
                    tls_only.update(q["Ref"] for q in policy["Properties"]["Queues"])
        assert tls_only == set(queues), f"{concern}: queues without a TLS-only policy"


def test_stream_table_and_bucket_are_encrypted(stage: Synth) -> None:
    ingest = stage.json("ingest")
    (stream,) = resources(ingest, "AWS::Kinesis::Stream").values()
    assert stream["Properties"]["StreamEncryption"] == {
        "EncryptionType": "KMS",
        "KeyId": "alias/aws/kinesis",
    }
    for concern in ("ingest", "processing", "orchestration"):
        for table in resources(stage.json(concern), "AWS::DynamoDB::Table").values():
            assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}
            assert table["Properties"]["PointInTimeRecoverySpecification"] == {
                "PointInTimeRecoveryEnabled": True
            }
    for bucket in resources(stage.json("orchestration"), "AWS::S3::Bucket").values():
        rules = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True
