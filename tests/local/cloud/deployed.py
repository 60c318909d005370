"""Helpers for conformance tests on the deployed fixture app: outputs, the journal, waiting.

The ``behave`` function journals each invocation to S3; tests read that journal, the queues and
the streams through public AWS APIs only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

FIXTURE_APPS = Path(__file__).resolve().parents[2] / "fixtures" / "apps"
T = TypeVar("T")


@dataclass
class Deployed:
    """The conformance stack as deployed on a local cloud."""

    cloud: Any
    outputs: dict[str, str]
    _clients: dict[str, Any] = field(default_factory=dict)
    _mail: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.cloud.client(service)
        return self._clients[service]

    def out(self, key: str) -> str:
        return self.outputs[key]

    def journal(self, scenario: str) -> list[dict[str, Any]]:
        """Every invocation journaled under ``scenario``, oldest first."""
        s3 = self.client("s3")
        bucket = self.out("JournalBucket")
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{scenario}/"
        ):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        return [
            json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in sorted(keys)
        ]

    def take(
        self, output: str, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        """The first message of queue ``output`` whose parsed body matches, waiting for it.

        Messages that do not match are kept for later calls, so tests sharing a destination
        queue do not steal each other's records.
        """
        sqs = self.client("sqs")
        url = self.out(output)
        box = self._mail.setdefault(output, [])

        def probe() -> dict[str, Any] | None:
            for message in sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", []):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                message["Json"] = json.loads(message["Body"])
                box.append(message)
            for message in box:
                if match(message["Json"]):
                    box.remove(message)
                    return message
            return None

        return eventually(probe, timeout=timeout)

    def records(self, scenario: str) -> list[list[dict[str, Any]]]:
        """The batches (lists of records) the function received under ``scenario``."""
        return [entry["event"].get("Records", []) for entry in self.journal(scenario)]


def eventually(probe: Callable[[], T], timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll ``probe`` until it returns something truthy (or raise with its last value)."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")
        time.sleep(interval)
        last = probe()
    return last


def queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )
