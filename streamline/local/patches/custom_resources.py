"""CloudFormation custom resources: invoked at deploy time, waited for, updated and deleted.

A stack operation sends Create, Update and Delete to the resource's function and waits for the
answer PUT to its ResponseURL (served by the patched ``process_cfn_response`` on the loopback
server), failing the deploy with the reason when the answer is FAILED or never comes. moto sent
Create only, from a thread that ran after the deploy had returned COMPLETE. Functions run
through the runner registered in :mod:`.invokers`; a journal replay reuses the recorded answer.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from streamline.local import durability
from streamline.local.patches.cloudformation import find_change_set
from streamline.local.patches.invokers import current_invoker, no_engine
from streamline.local.patches.registry import install, moto_original, moto_patch
from streamline.local.server import MOTO_LOCK

_log = logging.getLogger(__name__)


@moto_patch("moto.settings:moto_server_host")
def custom_resource_callback_host() -> None:
    """Custom-resource ResponseURLs point at the loopback server, not host.docker.internal."""
    import moto.settings

    install(moto.settings, "moto_server_host", lambda: "http://localhost")


#: How long a stack operation waits for a custom resource's answer (the CDK CLI gives up on a
#: request after 300 s; CloudFormation's own default is an hour).
CUSTOM_RESOURCE_TIMEOUT = 240.0
#: After the function returned an error without answering, how long an answer may still come.
_ANSWER_GRACE = 2.0


class _Answers:
    """Bodies PUT to custom resources' ResponseURLs, by RequestId, each with its waiter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[str, dict[str, Any]] = {}
        self._events: dict[str, threading.Event] = {}

    def expect(self, request_id: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(request_id, threading.Event())

    def deliver(self, body: dict[str, Any]) -> bool:
        """Keep an answer; True when a stack operation is waiting for it."""
        request_id = str(body.get("RequestId", ""))
        with self._lock:
            event = self._events.get(request_id)
            if event is None:
                return False
            self._bodies.setdefault(request_id, body)  # the first answer counts, as in CFN
            event.set()
            return True

    def take(self, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._events.pop(request_id, None)
            return self._bodies.pop(request_id, None)


CUSTOM_RESOURCE_ANSWERS = _Answers()


class CustomResourceFailed(Exception):
    """A custom resource answered FAILED, never answered, or could not be invoked."""


def stringified(value: Any) -> Any:
    """Resource properties as CloudFormation sends them to a custom resource: every scalar a
    string (``true`` -> ``"true"``, ``7`` -> ``"7"``), lists and maps kept."""
    if isinstance(value, dict):
        return {k: stringified(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stringified(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _ask_custom_resource(function_arn: str, event: dict[str, Any]) -> dict[str, Any]:
    """Send ``event`` to a custom resource's function and return its answer (the body it PUT
    to the ResponseURL). moto's lock is released meanwhile, as the function calls moto back;
    the random source is kept, so ids drawn after it are the ones a replay draws."""
    from moto.moto_api._internal import mock_random

    request_id = event["RequestId"]
    if durability.replaying():  # never run a function while replaying: reuse its answer
        recorded = durability.recorded_cfn_answer(request_id)
        if recorded is None:
            return {"Status": "FAILED", "Reason": "the local cloud stopped before it answered"}
        return recorded
    invoker = current_invoker()
    if invoker is None:
        raise no_engine("function runner")
    waiter = CUSTOM_RESOURCE_ANSWERS.expect(request_id)
    state = mock_random.getstate()
    owned = MOTO_LOCK._is_owned()  # type: ignore[attr-defined]
    saved = MOTO_LOCK._release_save() if owned else None  # type: ignore[attr-defined]
    failure = None
    try:
        with durability.snapshots_held():
            try:
                result = invoker.invoke(function_arn, json.dumps(event).encode())
            except Exception as exc:
                failure = f"invoking {function_arn} failed: {exc}"
            else:
                if result.function_error:
                    if not waiter.wait(_ANSWER_GRACE):
                        failure = f"its function failed: {_error_text(result.payload)}"
                elif not waiter.wait(CUSTOM_RESOURCE_TIMEOUT):
                    failure = f"no answer within {CUSTOM_RESOURCE_TIMEOUT:.0f} s"
    finally:
        if owned:
            MOTO_LOCK._acquire_restore(saved)  # type: ignore[attr-defined]
        mock_random.setstate(state)
    answer = CUSTOM_RESOURCE_ANSWERS.take(request_id)
    if answer is None:
        return {"Status": "FAILED", "Reason": failure or "no answer"}
    return answer


def _error_text(payload: bytes) -> str:
    try:
        document = json.loads(payload)
        return f"{document.get('errorType')}: {document.get('errorMessage')}"
    except (ValueError, AttributeError):
        return payload.decode("utf-8", "replace")[:300]


def _custom_event(model: Any, request_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    import moto.settings
    from moto.moto_api._internal import mock_random

    host = f"{moto.settings.moto_server_host()}:{moto.settings.moto_server_port()}"
    event = {
        "RequestType": request_type,
        "ServiceToken": properties["ServiceToken"],
        "ResponseURL": f"{host}/cloudformation_{model.region_name}/cfnresponse"
        f"?stack={model.stack_id}",
        "StackId": model.stack_id,
        "RequestId": str(mock_random.uuid4()),
        "LogicalResourceId": model.logical_id,
        "ResourceType": model.resource_type,
        "ResourceProperties": stringified(properties),
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = model.physical_resource_id
    return event


def _settle(model: Any, request_type: str, answer: dict[str, Any]) -> None:
    if answer.get("Status") != "SUCCESS":
        raise CustomResourceFailed(
            f"{model.logical_id} ({model.resource_type}) {request_type} failed: "
            f"{answer.get('Reason') or 'no reason given'}"
        )
    physical = answer.get("PhysicalResourceId")
    if physical:
        model.physical_id = str(physical)
    data = answer.get("Data")
    model.set_data(data if isinstance(data, dict) else {})


def _function_arn(account_id: str, region_name: str, token: str) -> str:
    from moto.awslambda.utils import get_backend

    try:
        return str(get_backend(account_id, region_name).get_function(token).function_arn)
    except Exception:
        raise CustomResourceFailed(
            f"ServiceToken {token} names no function the local cloud holds (the local cloud "
            "runs Lambda-backed custom resources only)"
        ) from None


# How a custom resource is created, updated and deleted (installed on moto's CustomModel).


def _custom_create(
    cls: Any,
    resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    from moto.cloudformation import cloudformation_backends
    from moto.cloudformation.custom_model import CustomModel

    properties = dict(cloudformation_json.get("Properties") or {})
    factory: Any = CustomModel
    model = factory(region_name, "", kwargs["LogicalId"], resource_name)
    model.stack_id = kwargs["StackId"]
    model.resource_type = kwargs["ResourceType"]
    model.account_id = account_id
    model.properties = properties
    function_arn = _function_arn(account_id, region_name, properties.get("ServiceToken", ""))
    event = _custom_event(model, "Create", properties)
    model.request_id = event["RequestId"]
    stack = cloudformation_backends[account_id][region_name].get_stack(model.stack_id)
    stack.add_custom_resource(model)
    _settle(model, "Create", _ask_custom_resource(function_arn, event))
    return model


def _custom_update(
    cls: Any,
    original_resource: Any,
    new_resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
) -> Any:
    model = original_resource
    properties = dict(cloudformation_json.get("Properties") or {})
    old = dict(getattr(model, "properties", {}) or {})
    if old.get("ServiceToken") not in (None, properties.get("ServiceToken")):
        raise CustomResourceFailed(
            f"{model.logical_id}: a custom resource's ServiceToken cannot change"
        )
    function_arn = _function_arn(account_id, region_name, properties.get("ServiceToken", ""))
    event = _custom_event(model, "Update", properties)
    event["OldResourceProperties"] = stringified(old)
    previous_id = model.physical_resource_id
    _settle(model, "Update", _ask_custom_resource(function_arn, event))
    model.properties = properties
    if model.physical_resource_id != previous_id:
        # A new physical resource replaced the old one: CloudFormation deletes the old.
        cleanup = _custom_event(model, "Delete", old)
        cleanup["PhysicalResourceId"] = previous_id
        answer = _ask_custom_resource(function_arn, cleanup)
        if answer.get("Status") != "SUCCESS":
            _log.warning(
                "custom resource %s: deleting the replaced %s failed: %s",
                model.logical_id,
                previous_id,
                answer.get("Reason"),
            )
    return model


def _custom_delete(self: Any, account_id: str, region_name: str) -> None:
    properties = dict(getattr(self, "properties", {}) or {})
    if not properties.get("ServiceToken"):
        return  # made before this patch: nothing to tell
    try:
        function_arn = _function_arn(account_id, region_name, properties["ServiceToken"])
    except CustomResourceFailed:
        return  # its function is gone: CloudFormation would wait an hour, then go on
    event = _custom_event(self, "Delete", properties)
    _settle(self, "Delete", _ask_custom_resource(function_arn, event))


@moto_patch(
    "moto.cloudformation.parsing:resource_class_from_type",
    "moto.cloudformation.custom_model:CustomModel.create_from_cloudformation_json",
    "moto.cloudformation.custom_model:CustomModel.physical_resource_id",
    "moto.cloudformation.responses:CloudFormationResponse.process_cfn_response",
    "moto.cloudformation.parsing:ResourceMap.delete",
    "moto.cloudformation.models:CloudFormationBackend.execute_change_set",
)
def custom_resources_run_at_deploy_time() -> None:
    """Custom resources behave as CloudFormation documents: a stack operation sends Create,
    Update and Delete to the resource's function, waits for its answer, and fails naming the
    reason when it answers FAILED (or not at all); the answer's PhysicalResourceId and Data are
    what Ref and Fn::GetAtt read; scalar properties arrive as strings; ``AWS::CloudFormation::
    CustomResource`` counts too. moto sent Create only, from a thread that ran after the
    deploy had returned COMPLETE (outputs read None), ignored FAILED, never sent Update or
    Delete, and skipped the plain type."""
    import moto.cloudformation.parsing as parsing
    from moto.cloudformation.custom_model import CustomModel
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.models import CloudFormationBackend
    from moto.cloudformation.responses import CloudFormationResponse

    class_for = moto_original(parsing, "resource_class_from_type")

    def resource_class_from_type(resource_type: str) -> Any:
        if resource_type == "AWS::CloudFormation::CustomResource":
            return CustomModel
        return class_for(resource_type)

    install(parsing, "resource_class_from_type", resource_class_from_type)
    install(
        CustomModel,
        "physical_resource_id",
        property(lambda self: getattr(self, "physical_id", None) or self.resource_name),
    )

    install(CustomModel, "create_from_cloudformation_json", classmethod(_custom_create))
    install(CustomModel, "update_from_cloudformation_json", classmethod(_custom_update))
    install(CustomModel, "delete", _custom_delete)

    # Custom resources go first when a stack is deleted: their functions (and what those
    # clean up, like a bucket's objects) must still exist when Delete arrives.
    delete_map = moto_original(parsing.ResourceMap, "delete")

    def delete_resources(self: Any) -> None:
        for logical_id, resource in list(self._parsed_resources.items()):
            body = self._resource_json_map.get(logical_id, {})
            if isinstance(resource, CustomModel) and body.get("DeletionPolicy") != "Retain":
                custom: Any = resource
                custom.delete(self._account_id, self._region_name)
                self._parsed_resources.pop(logical_id, None)
        delete_map(self)

    install(parsing.ResourceMap, "delete", delete_resources)

    def process_cfn_response(self: Any) -> Any:
        try:
            body = json.loads(self.body or "{}")
        except ValueError:
            body = None
        if isinstance(body, dict):
            CUSTOM_RESOURCE_ANSWERS.deliver(body)
        return 200, {"status": 200}, ""

    install(CloudFormationResponse, "process_cfn_response", process_cfn_response)

    # A custom resource that failed fails the deploy, naming it and its reason.
    execute = CloudFormationBackend.execute_change_set  # the installed one (change sets patch)

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> Any:
        change_set = find_change_set(self, change_set_name, stack_name)
        stack = self.stacks.get(change_set.stack_id) if change_set is not None else None
        new = stack is None or stack.status == "REVIEW_IN_PROGRESS"
        try:
            return execute(self, change_set_name, stack_name)
        except CustomResourceFailed as exc:
            if stack is not None:
                stack.status = "ROLLBACK_COMPLETE" if new else "UPDATE_ROLLBACK_COMPLETE"
            raise ValidationError(stack_name or change_set_name, str(exc)) from None

    install(CloudFormationBackend, "execute_change_set", execute_change_set)
