"""CloudFormation: what an unchanged ``cdk deploy`` needs from moto's stacks.

Change sets keep outputs and exports and are scoped by stack (CDK names every one
``cdk-deploy-change-set``), a resolved SSM parameter passes through on update, template URLs on
127.0.0.1 load, and ``DependsOn`` orders creation. Custom resources are
:mod:`.custom_resources`; each service's CloudFormation model fixes live in its own module.
"""

from __future__ import annotations

import threading
from typing import Any

from streamline.local.patches.registry import install, moto_original, moto_patch


def find_change_set(backend: Any, name: str, stack_name: str | None) -> Any:
    """The change set called ``name`` (its name or ARN), in ``stack_name`` when given."""
    if name in backend.change_sets:  # an ARN
        return backend.change_sets[name]
    for change_set in backend.change_sets.values():
        if change_set.change_set_name == name and (
            stack_name is None or stack_name in (change_set.stack_name, change_set.stack_id)
        ):
            return change_set
    return None


@moto_patch(
    "moto.cloudformation.models:CloudFormationBackend.execute_change_set",
    "moto.cloudformation.models:CloudFormationBackend.describe_change_set",
    "moto.cloudformation.models:CloudFormationBackend.delete_change_set",
    "moto.cloudformation.responses:CloudFormationResponse.describe_change_set",
    "moto.cloudformation.responses:CloudFormationResponse.delete_change_set",
)
def cloudformation_change_sets() -> None:
    """Change sets (how cdk deploy works) keep outputs/exports and are scoped by stack.

    moto's execute_change_set never built outputs or exports (Fn::ImportValue failed), looked
    change sets up by name across all stacks (CDK names every one ``cdk-deploy-change-set``),
    crashed deleting a missing one and reported a missing one as a missing stack, so the second
    deploy of any stack failed.
    """
    from moto.cloudformation import responses as cfn_responses
    from moto.cloudformation.exceptions import CloudFormationError
    from moto.cloudformation.models import CloudFormationBackend

    class ChangeSetNotFound(CloudFormationError):
        code = "ChangeSetNotFound"

        def __init__(self, name: str) -> None:
            super().__init__(f"ChangeSet [{name}] does not exist")

    execute = moto_original(CloudFormationBackend, "execute_change_set")

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = find_change_set(self, change_set_name, stack_name)
        if change_set is None:
            return execute(self, change_set_name, stack_name)
        stack = self.stacks[change_set.stack_id]
        stack.cross_stack_resources = self.exports
        stack.resource_map.cross_stack_resources = self.exports
        execute(self, change_set.change_set_id, stack_name)
        stack._parse_template()
        stack.output_map = stack._create_output_map()
        for export in stack.exports:
            self.exports[export.name] = export
        return None

    def describe_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> Any:
        change_set = find_change_set(self, change_set_name, stack_name)
        if change_set is None:
            raise ChangeSetNotFound(change_set_name)
        return change_set

    def delete_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = find_change_set(self, change_set_name, stack_name)
        if change_set is not None:
            del self.change_sets[change_set.change_set_id]

    def describe_response(self: Any) -> Any:
        return cfn_responses.ActionResult(
            self.cloudformation_backend.describe_change_set(
                self._get_param("ChangeSetName"), self._get_param("StackName")
            )
        )

    def delete_response(self: Any) -> Any:
        self.cloudformation_backend.delete_change_set(
            self._get_param("ChangeSetName"), self._get_param("StackName")
        )
        return cfn_responses.EmptyResult()

    install(CloudFormationBackend, "execute_change_set", execute_change_set)
    install(CloudFormationBackend, "describe_change_set", describe_change_set)
    install(CloudFormationBackend, "delete_change_set", delete_change_set)
    install(cfn_responses.CloudFormationResponse, "describe_change_set", describe_response)
    install(cfn_responses.CloudFormationResponse, "delete_change_set", delete_response)


@moto_patch("moto.cloudformation.parsing:ResourceMap.parse_ssm_parameter")
def cloudformation_ssm_previous_value() -> None:
    """An SSM-typed parameter whose stored value is already resolved passes through.

    On update CDK sends BootstrapVersion with UsePreviousValue; moto stored the resolved "33"
    and looked it up as a parameter name again (AttributeError -> HTTP 500).
    """
    from moto.cloudformation.parsing import ResourceMap
    from moto.ssm import ssm_backends

    original = moto_original(ResourceMap, "parse_ssm_parameter")

    def parse_ssm_parameter(self: Any, value: str, value_type: str) -> Any:
        ssm = ssm_backends[self._account_id][self._region_name]
        if ssm.get_parameter(value) is None:
            return value.split(",") if value_type.find("List") > 0 else value
        return original(self, value, value_type)

    install(ResourceMap, "parse_ssm_parameter", parse_ssm_parameter)


@moto_patch(
    "moto.cloudformation.utils:get_stack_from_s3_url",
    "moto.cloudformation.models:get_stack_from_s3_url",
    "moto.cloudformation.responses:get_stack_from_s3_url",
)
def cloudformation_template_url_loopback() -> None:
    """Template URLs on 127.0.0.1 are path-style too (moto only knew "localhost")."""
    import moto.cloudformation.models as cfn_models
    import moto.cloudformation.responses as cfn_responses
    import moto.cloudformation.utils as cfn_utils

    original = moto_original(cfn_utils, "get_stack_from_s3_url")

    def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
        return original(
            template_url.replace("//127.0.0.1:", "//localhost:", 1), account_id, partition
        )

    for module in (cfn_utils, cfn_models, cfn_responses):
        install(module, "get_stack_from_s3_url", get_stack_from_s3_url)


_creating = threading.local()


@moto_patch("moto.cloudformation.parsing:ResourceMap.__getitem__")
def cloudformation_depends_on_first() -> None:
    """A resource is created after everything its ``DependsOn`` names, as CloudFormation
    orders them. moto created resources in template order (Ref and GetAtt targets on demand)
    and ignored DependsOn, so a custom resource ran before the IAM policy it depends on existed
    (CDK's LogRetention and AwsCustomResource add exactly that dependency)."""
    import moto.cloudformation.parsing as parsing

    get = moto_original(parsing.ResourceMap, "__getitem__")

    def __getitem__(self: Any, key: str) -> Any:
        if key not in self._parsed_resources:
            depends = (self._resource_json_map.get(key) or {}).get("DependsOn") or []
            pending = getattr(_creating, "keys", None)
            if pending is None:
                pending = _creating.keys = set()
            if depends and key not in pending:
                pending.add(key)  # a cycle (invalid in CloudFormation) must not recurse forever
                try:
                    for dependency in [depends] if isinstance(depends, str) else depends:
                        if dependency in self._resource_json_map and dependency not in pending:
                            __getitem__(self, dependency)
                finally:
                    pending.discard(key)
        return get(self, key)

    install(parsing.ResourceMap, "__getitem__", __getitem__)
