"""notifier: asynchronously invoked with notifications; Lambda Destinations route results.

The payload is notify's batch or one task (``orderflow.notifications``). Not a batch handler:
errors propagate so Lambda retries the invocation and, when retries are exhausted, sends the
request and the error (``errorType`` = PoisonRecordError or TransientError) to the OnFailure
destination, where the recovery workflow splits a batch into its tasks and classifies each.
A retried batch records each effect once: for what already went, the conditional write is
refused (a write unit each, nothing changed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orderflow.dal import EffectsRepository
from orderflow.errors import ErrorKind, PoisonRecordError, TransientError, classify, describe
from orderflow.events import NotificationTask, parse_model
from orderflow.notifications import Notification, read_notifications
from orderflow.observability import MetricUnit, linked_traces, logger, metrics, tracer
from orderflow.settings import NotifierSettings, load_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

__all__ = ["handler"]

settings = load_settings(NotifierSettings)
effects = EffectsRepository(settings.effects_table)


@logger.inject_lambda_context(correlation_id_path="task_id", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Record each notification's effect once; returns them for the OnSuccess destination.

    Every notification is tried; then the invocation fails if one did, transient first (a
    retry may still succeed), with the named error recovery reads.

    Example::

        >>> handler({"kind": "notify", "task_id": ..., ...}, context)   # doctest: +SKIP
        {"effect_id": "notify#o-1#PAID", "created": True}
    """
    try:
        notifications = read_notifications(event)
    except PoisonRecordError as exc:
        _count(poisoned=1)
        logger.warning("Notification batch refused", extra={"reason": exc.reason})
        raise
    done: list[dict[str, Any]] = []
    failures: dict[ErrorKind, list[BaseException]] = {ErrorKind.POISON: [], ErrorKind.TRANSIENT: []}
    try:
        for notification in notifications:
            try:
                done.append(_notify(notification))
            except Exception as exc:
                failures[classify(exc)].append(exc)
    finally:
        linked_traces.flush()  # the segments each notification added to its order's trace
    transient, poison = failures[ErrorKind.TRANSIENT], failures[ErrorKind.POISON]
    _count(
        sent=sum(effect["created"] for effect in done),
        processed=len(done),
        poisoned=len(poison),
        failed=len(transient),
    )
    if transient or poison:
        first = (transient or poison)[0]
        reason = describe(first)
        if len(notifications) > 1:
            reason = f"{len(transient) + len(poison)} of {len(notifications)} failed; {reason}"
        # Raise our named types: the destination record's errorType is what recovery reads.
        if transient:
            raise TransientError(reason) from first
        raise PoisonRecordError(reason) from first
    if len(notifications) == 1 and event is notifications[0].task:
        return done[0]
    return {"effects": done}


def _notify(notification: Notification) -> dict[str, Any]:
    """One notification's effect, recorded in its order's trace; raises what it failed with."""
    with linked_traces.hop(notification.trace_header):
        try:
            task = parse_model(NotificationTask, notification.task)
            created = effects.put_once(
                task.effect_id, order_id=task.order_id, kind=task.kind, event_id=task.event_id
            )
        except Exception as exc:
            logger.warning(
                "Notification failed",
                extra={"reason": describe(exc), "classification": classify(exc)},
            )
            raise
    return {"effect_id": task.effect_id, "created": created}


def _count(*, sent: int = 0, processed: int = 0, poisoned: int = 0, failed: int = 0) -> None:
    # Records* as the batch handlers count them (dashboards, the cost model's records per
    # invocation); Notifications* as the notifier always has (its alarms and dashboard).
    for name, value in (
        ("RecordsProcessed", processed),
        ("RecordsPoisoned", poisoned),
        ("RecordsFailed", failed),
        ("NotificationsSent", sent),
        ("NotificationsPoisoned", poisoned),
        ("NotificationsFailed", failed),
    ):
        if value or name in ("RecordsProcessed", "NotificationsSent"):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
