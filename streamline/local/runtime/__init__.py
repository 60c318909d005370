"""The local Lambda runtime: warm execution environments for deployed Python functions.

:class:`FunctionRunner` implements :class:`streamline.local.contracts.Invoker`; the environments
are subprocesses running :mod:`streamline.local.runtime.bootstrap`, fed code from the deployed
zip, layers (moto-held zips or the public Powertools layer, served from local packages) and the
runtime's own boto3.
"""

from __future__ import annotations

from streamline.local.runtime.config import FunctionConfig, read_function_config
from streamline.local.runtime.layers import CodeStore, is_public_powertools_layer
from streamline.local.runtime.logs import LogShipper, emf_metric_data
from streamline.local.runtime.runner import (
    DEFAULT_CONCURRENCY_CAP,
    FunctionRunner,
    new_trace_header,
)

__all__ = [
    "DEFAULT_CONCURRENCY_CAP",
    "CodeStore",
    "FunctionConfig",
    "FunctionRunner",
    "LogShipper",
    "emf_metric_data",
    "is_public_powertools_layer",
    "new_trace_header",
    "read_function_config",
]
