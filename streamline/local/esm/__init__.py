"""Event-source-mapping engine of the local cloud: SQS, Kinesis and DynamoDB Streams.

Example::

    from streamline.local.esm import EsmEngine
    engine = EsmEngine(backends, invoker, state_dir, clock)
    engine.start()
"""

from __future__ import annotations

from streamline.local.esm.checkpoints import CheckpointStore
from streamline.local.esm.config import MappingConfig, SourceKind
from streamline.local.esm.engine import EsmEngine
from streamline.local.esm.filters import FilterError, FilterMatcher
from streamline.local.esm.responses import BatchOutcome, OutcomeKind, parse_batch_response
from streamline.local.esm.validation import (
    MappingValidationError,
    check_create,
    check_update,
    validate_spec,
    wrap_create,
    wrap_update,
)

__all__ = [
    "BatchOutcome",
    "CheckpointStore",
    "EsmEngine",
    "FilterError",
    "FilterMatcher",
    "MappingConfig",
    "MappingValidationError",
    "OutcomeKind",
    "SourceKind",
    "check_create",
    "check_update",
    "parse_batch_response",
    "validate_spec",
    "wrap_create",
    "wrap_update",
]
