"""Streamline's docker-free local cloud: moto, patched, plus a Lambda runtime and event engines.

Example::

    from streamline.local import LocalCloud

    with LocalCloud() as cloud:
        cloud.deploy(".")
        cloud.wait_idle(timeout=60)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamline.local.cloud import LocalCloud

__all__ = ["LocalCloud"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the package (e.g. for contracts) must not pull in boto3 and moto.
    if name == "LocalCloud":
        from streamline.local.cloud import LocalCloud

        return LocalCloud
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
