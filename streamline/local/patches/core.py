"""moto's core, for every service at once: no CORS, each API call counted, and the per-request
lookups moto recomputes done once.

moto's server reflected any Origin with CORS headers (any web page could call the local cloud);
the access policy (``server.AccessPolicy``) answers the allowed origins instead. Every request
through ``BaseResponse.call_action`` is counted by caller, service and operation for the cost
model (:mod:`streamline.local.api_calls`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from streamline.local import durability
from streamline.local.patches.registry import install, moto_original, moto_patch


@moto_patch("moto.moto_server.werkzeug_app:DISABLE_GLOBAL_CORS")
def cors_off() -> None:
    """No CORS headers from moto: the server answers browsers only for allowed origins.

    moto wraps every service app in flask-cors, reflecting any Origin with every method and
    header: any web page the user visited could call the local cloud. The access policy
    (``server.AccessPolicy``) adds CORS headers for the origins ``--allow-origin`` names.
    """
    import moto.moto_server.werkzeug_app as werkzeug_app
    import moto.settings

    install(werkzeug_app, "DISABLE_GLOBAL_CORS", True)
    install(moto.settings, "DISABLE_GLOBAL_CORS", True)


class _NotCounted(Exception):
    """Leaves the counting block of a replayed request (counted when it first ran)."""


@moto_patch("moto.core.responses:BaseResponse.call_action")
def api_call_counting() -> None:
    """Count each API request by caller, service and operation for the cost model.

    The caller is the function whose credentials signed the request, else ``client``; see
    :mod:`streamline.local.api_calls`. Every JSON, query and REST service ends in
    ``BaseResponse.call_action`` (DynamoDB's override calls it); S3 does not and is not counted.
    """
    import time

    from moto.core.responses import BaseResponse

    from streamline.local.api_calls import API_CALLS, caller_of, request_shape

    original = moto_original(BaseResponse, "call_action")

    def call_action(self: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self)
        finally:
            # Counting must never fail a request: a request we cannot read is not counted.
            # A replayed request was counted when it first ran.
            with contextlib.suppress(Exception):
                if durability.replaying():
                    raise _NotCounted
                service = self.boto3_service_name or "unknown"
                operation = self._get_action() or "unknown"
                API_CALLS.record(
                    caller_of(self.headers, self.querystring),
                    service,
                    operation,
                    server_ms=(time.perf_counter() - started) * 1000,
                    **request_shape(service, operation, self.body),
                )

    install(BaseResponse, "call_action", call_action)


@moto_patch(
    "moto.core.responses:method_names_from_class",
    "moto.backends:list_of_moto_modules",
)
def request_lookups_computed_once() -> None:
    """moto's server lists a response class's methods (``inspect.getmembers``) and its own
    package directory (``os.listdir``) on every request; both answers are fixed once the patches
    are applied, so each is computed once (issue 13: ~1 ms CPU per request of ~4 per event).

    The method names are cached per class on first use, which is after ``apply_all``: every patch
    that adds an action method is installed before the server answers its first request.
    """
    import moto.backends
    import moto.core.responses as responses

    method_names = moto_original(responses, "method_names_from_class")
    cached: dict[type, frozenset[str]] = {}

    def method_names_from_class(clazz: type) -> frozenset[str]:
        names = cached.get(clazz)
        if names is None:
            names = cached[clazz] = frozenset(method_names(clazz))
        return names

    modules = frozenset(moto_original(moto.backends, "list_of_moto_modules")())

    def list_of_moto_modules() -> frozenset[str]:
        return modules

    install(responses, "method_names_from_class", method_names_from_class)
    install(moto.backends, "list_of_moto_modules", list_of_moto_modules)
