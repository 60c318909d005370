"""SNS: deliveries to Lambda are real SNS events sent asynchronously, and email subscriptions
wait for a confirmation, as on AWS.

moto invoked a subscribed function synchronously inside Publish with a fake event (fixed
MessageId, an EXAMPLE topic ARN); now the event is AWS's shape and goes to the async engine
(:mod:`.invokers`). moto showed an email subscription as confirmed; nobody can click the link
locally, so it stays ``PendingConfirmation``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streamline.local.patches.invokers import submit_async
from streamline.local.patches.registry import install, moto_original, moto_patch


def _sns_lambda_event(
    sub: Any,
    message: str,
    message_id: str,
    subject: str | None,
    message_attributes: Mapping[str, Any] | None,
) -> dict[str, Any]:
    now = (
        datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{datetime.now(UTC).microsecond // 1000:03d}Z"
    )
    attributes = {
        name: {"Type": value.get("Type"), "Value": value.get("Value")}
        for name, value in (message_attributes or {}).items()
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": sub.arn,
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": sub.topic.arn,
                    "Subject": subject,
                    "Message": message,
                    "Timestamp": now,
                    "SignatureVersion": "1",
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "EXAMPLE",
                    "UnsubscribeUrl": "EXAMPLE",
                    "MessageAttributes": attributes,
                },
            }
        ]
    }


@moto_patch("moto.sns.models:Subscription.publish")
def sns_lambda_delivery_async() -> None:
    """SNS -> Lambda: a real SNS event, delivered asynchronously (Event) as AWS does.

    moto builds a fake event (fixed MessageId, TopicArn "arn:aws:sns:EXAMPLE", test attributes)
    and invokes synchronously inside Publish.
    """
    from moto.sns.models import Subscription

    original = moto_original(Subscription, "publish")

    def publish(
        self: Any,
        message: str,
        message_id: str,
        subject: str | None = None,
        message_attributes: dict[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        message_structure: str | None = None,
    ) -> None:
        if self.protocol != "lambda":
            return original(
                self,
                message,
                message_id,
                subject,
                message_attributes,
                group_id,
                deduplication_id,
                message_structure,
            )
        matcher = self._filter_policy_matcher
        if matcher is not None and not matcher.matches(message_attributes, message):
            return None
        if message_structure == "json":
            message = self._parse_message_structure(message, self.protocol)
        parts = self.endpoint.split(":")
        qualifier = parts[7] if len(parts) == 8 else None
        function_arn = ":".join(parts[:7])
        event = _sns_lambda_event(self, message, message_id, subject, message_attributes)
        submit_async(function_arn, json.dumps(event).encode("utf-8"), qualifier, None)
        return None

    install(Subscription, "publish", publish)


_NEEDS_CONFIRMATION = ("email", "email-json")


@moto_patch(
    "moto.sns.models:SNSBackend.subscribe",
    "moto.sns.responses:SNSResponse.subscribe",
    "moto.sns.responses:SNSResponse.list_subscriptions",
    "moto.sns.responses:SNSResponse.list_subscriptions_by_topic",
)
def sns_email_subscriptions_pending_confirmation() -> None:
    """An email subscription waits for a confirmation nobody can click here: Subscribe answers
    ``pending confirmation``, the lists show ``PendingConfirmation`` and its attributes say so,
    as on AWS (moto showed a confirmed subscription's ARN)."""
    from moto.sns.models import SNSBackend
    from moto.sns.responses import SNSResponse

    subscribe = moto_original(SNSBackend, "subscribe")

    def backend_subscribe(self: Any, topic_arn: str, endpoint: str, protocol: str) -> Any:
        known = self._find_subscription(topic_arn, endpoint, protocol)
        subscription = subscribe(self, topic_arn, endpoint, protocol)
        if known is None and protocol in _NEEDS_CONFIRMATION:
            subscription.attributes["PendingConfirmation"] = "true"
            subscription.attributes["ConfirmationWasAuthenticated"] = "false"
        return subscription

    install(SNSBackend, "subscribe", backend_subscribe)

    def pending(subscription: Any) -> bool:
        return str(subscription.attributes.get("PendingConfirmation")).lower() == "true"

    response_subscribe = moto_original(SNSResponse, "subscribe")

    def subscribe_response(self: Any) -> Any:
        result = response_subscribe(self)
        arn = result.result["SubscriptionArn"]
        subscription = self.backend.subscriptions.get(arn)
        wants_arn = str(self._get_param("ReturnSubscriptionArn")).lower() == "true"
        if subscription is not None and pending(subscription) and not wants_arn:
            result.result["SubscriptionArn"] = "pending confirmation"
        return result

    def listed(subscriptions: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "SubscriptionArn": "PendingConfirmation" if pending(s) else s.arn,
                "Owner": s.owner,
                "Protocol": s.protocol,
                "Endpoint": s.endpoint,
                "TopicArn": s.topic_arn,
            }
            for s in subscriptions
        ]

    list_all = moto_original(SNSResponse, "list_subscriptions")
    list_by_topic = moto_original(SNSResponse, "list_subscriptions_by_topic")

    def list_subscriptions(self: Any) -> Any:
        result = list_all(self)
        result.result["Subscriptions"] = listed(result.result["Subscriptions"])
        return result

    def list_subscriptions_by_topic(self: Any) -> Any:
        result = list_by_topic(self)
        result.result["Subscriptions"] = listed(result.result["Subscriptions"])
        return result

    install(SNSResponse, "subscribe", subscribe_response)
    install(SNSResponse, "list_subscriptions", list_subscriptions)
    install(SNSResponse, "list_subscriptions_by_topic", list_subscriptions_by_topic)
