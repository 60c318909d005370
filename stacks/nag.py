"""The one place that records cdk-nag suppressions; every call carries a one-line reason.

Example:
    >>> suppress(role, ("AwsSolutions-IAM5", "X-Ray supports only '*'", ["Resource::*"]))
"""

from __future__ import annotations

from collections.abc import Sequence

from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct

__all__ = ["Suppression", "suppress"]

# (rule id, reason, optional applies_to findings: exact strings or RegexAppliesTo)
Suppression = tuple[str, str] | tuple[str, str, Sequence[str | RegexAppliesTo]]


def suppress(construct: IConstruct, *suppressions: Suppression) -> None:
    """Suppress the given rules on `construct` and its children."""
    NagSuppressions.add_resource_suppressions(
        construct,
        [
            NagPackSuppression(
                id=entry[0],
                reason=entry[1],
                applies_to=list(entry[2]) if len(entry) == 3 else None,
            )
            for entry in suppressions
        ],
        apply_to_children=True,
    )
