"""notifier: asynchronously invoked with one NotificationTask; Lambda Destinations route results.

Not a batch handler: errors propagate so Lambda retries the invocation and, when retries are
exhausted, sends the request and the error (``errorType`` = PoisonRecordError or
TransientError) to the OnFailure destination, where the recovery workflow classifies it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orderflow.dal import EffectsRepository
from orderflow.errors import ErrorKind, PoisonRecordError, TransientError, classify, describe
from orderflow.events import NotificationTask, parse_model
from orderflow.observability import MetricUnit, logger, metrics, tracer
from orderflow.settings import NotifierSettings, load_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

settings = load_settings(NotifierSettings)
effects = EffectsRepository(settings.effects_table)


@logger.inject_lambda_context(correlation_id_path="task_id", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Record the notification effect once; returns it for the OnSuccess destination.

    Example::

        >>> handler({"kind": "notify", "task_id": ..., ...}, context)   # doctest: +SKIP
        {"effect_id": "notify#o-1#PAID", "created": True}
    """
    try:
        task = parse_model(NotificationTask, event)
        created = effects.put_once(
            task.effect_id, order_id=task.order_id, kind=task.kind, event_id=task.event_id
        )
    except Exception as exc:
        kind = classify(exc)
        metrics.add_metric(
            name="NotificationsPoisoned" if kind is ErrorKind.POISON else "NotificationsFailed",
            unit=MetricUnit.Count,
            value=1,
        )
        reason = describe(exc)
        logger.warning("Notification failed", extra={"reason": reason, "classification": kind})
        # Raise our named types: the destination record's errorType is what recovery reads.
        if isinstance(exc, (PoisonRecordError, TransientError)):
            raise
        if kind is ErrorKind.POISON:
            raise PoisonRecordError(reason) from exc
        raise TransientError(reason) from exc
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=int(created))
    return {"effect_id": task.effect_id, "created": created}
