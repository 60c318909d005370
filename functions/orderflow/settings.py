"""Environment settings, validated once at cold start.

Each function declares the variables it needs as a model; :func:`load_settings` reads the
environment once per model and fails with the names of the missing variables, so a
mis-wired stack fails at the first invocation with a clear message instead of deep in a
record. The models build their validators on first use (``defer_build``): a function's cold
start pays for the one model it loads, not for every function's. No ``from __future__ import
annotations`` here: pydantic would re-evaluate every field annotation from its string form.

Example::

    >>> settings = load_settings(IngestSettings)      # doctest: +SKIP
    >>> settings.orders_table
    'orders'
"""

import functools
import os
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "ChangesSettings",
    "CommonSettings",
    "FulfilSettings",
    "IngestSettings",
    "NotifierSettings",
    "NotifySettings",
    "PoisonSinkSettings",
    "QuarantineSettings",
    "ReplaySettings",
    "SettingsError",
    "load_settings",
]

S = TypeVar("S", bound="CommonSettings")


class SettingsError(RuntimeError):
    """A required environment variable is missing or invalid (names it)."""


class CommonSettings(BaseModel):
    """Variables every Streamline function gets."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", defer_build=True)

    service: Annotated[str, Field(alias="POWERTOOLS_SERVICE_NAME")] = "streamline"
    stage: Annotated[str, Field(alias="STAGE")] = "dev"
    chaos_enabled: Annotated[bool, Field(alias="CHAOS_ENABLED")] = False


class IngestSettings(CommonSettings):
    orders_table: Annotated[str, Field(alias="ORDERS_TABLE", min_length=1)]
    failure_queue_url: Annotated[str, Field(alias="FAILURE_QUEUE_URL", min_length=1)]


class ChangesSettings(CommonSettings):
    fulfilment_queue_url: Annotated[str, Field(alias="FULFILMENT_QUEUE_URL", min_length=1)]
    notifications_queue_url: Annotated[str, Field(alias="NOTIFICATIONS_QUEUE_URL", min_length=1)]
    failure_queue_url: Annotated[str, Field(alias="FAILURE_QUEUE_URL", min_length=1)]


class FulfilSettings(CommonSettings):
    effects_table: Annotated[str, Field(alias="EFFECTS_TABLE", min_length=1)]
    dlq_url: Annotated[str, Field(alias="DLQ_URL", min_length=1)]


class NotifySettings(CommonSettings):
    notifier_function_name: Annotated[str, Field(alias="NOTIFIER_FUNCTION_NAME", min_length=1)]
    dlq_url: Annotated[str, Field(alias="DLQ_URL", min_length=1)]


class NotifierSettings(CommonSettings):
    effects_table: Annotated[str, Field(alias="EFFECTS_TABLE", min_length=1)]


class DrainSettings(CommonSettings):
    # Where payloads too large for the workflow's state are kept (``payloads/`` prefix).
    quarantine_bucket: Annotated[str, Field(alias="QUARANTINE_BUCKET", min_length=1)]


class ReplaySettings(CommonSettings):
    recovery_table: Annotated[str, Field(alias="RECOVERY_TABLE", min_length=1)]
    max_replay_attempts: Annotated[int, Field(alias="MAX_REPLAY_ATTEMPTS", ge=1)] = 3


class QuarantineSettings(CommonSettings):
    recovery_table: Annotated[str, Field(alias="RECOVERY_TABLE", min_length=1)]
    quarantine_bucket: Annotated[str, Field(alias="QUARANTINE_BUCKET", min_length=1)]


class PoisonSinkSettings(CommonSettings):
    """Where a batch handler sends poison envelopes (variable name depends on the source)."""

    failure_queue_url: Annotated[str | None, Field(alias="FAILURE_QUEUE_URL")] = None
    dlq_url: Annotated[str | None, Field(alias="DLQ_URL")] = None


@functools.cache
def load_settings(model: type[S]) -> S:
    """Read and validate ``model`` from ``os.environ`` (cached: once per cold start).

    Raises:
        SettingsError: naming every missing or invalid variable, e.g.
            ``"IngestSettings: missing environment variable ORDERS_TABLE"``.
    """
    aliases = {field.alias or name for name, field in model.model_fields.items()}
    values = {name: os.environ[name] for name in aliases if name in os.environ}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ".".join(str(loc) for loc in error["loc"])
            if error["type"] == "missing":
                problems.append(f"missing environment variable {name}")
            else:
                problems.append(f"invalid environment variable {name}: {error['msg']}")
        raise SettingsError(f"{model.__name__}: " + "; ".join(problems)) from None
