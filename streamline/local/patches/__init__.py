"""Every change Streamline makes to moto: named, idempotent and version-checked.

One module per AWS service patched (:mod:`.sqs`, :mod:`.awslambda`, :mod:`.stepfunctions`,
:mod:`.cloudformation` and :mod:`.custom_resources`, :mod:`.cloudwatch`, :mod:`.sns`,
:mod:`.iam_sts`, :mod:`.dynamodb`, :mod:`.events`, and :mod:`.core` for what every service
shares), each saying what it patches and why. :mod:`.registry` declares, checks and applies
them; :mod:`.invokers` holds where invocations go. The apply order is set here, once, because
several patches wrap what an earlier one installed (the FIFO-order receive replaces the O(1)
receive's walk, the id checks wrap the batch send that keeps system attributes, custom
resources wrap the change-set execute, ...); keep it when adding a patch.

Example::

    from streamline.local import patches
    patches.apply_all()
    patches.set_invokers(runner, async_engine)
"""

from __future__ import annotations

from streamline.local.patches import (
    awslambda,
    cloudformation,
    cloudwatch,
    core,
    custom_resources,
    dynamodb,
    events,
    iam_sts,
    kinesis,
    sns,
    sqs,
    stepfunctions,
)
from streamline.local.patches.invokers import (
    MappingObserver,
    clear_invokers,
    clear_mapping_observer,
    set_invokers,
    set_mapping_observer,
    using_invokers,
)
from streamline.local.patches.registry import (
    MOTO_VERSION,
    PATCHES,
    Patch,
    PatchError,
    applied,
    apply_all,
    set_apply_order,
)

__all__ = [
    "MOTO_VERSION",
    "PATCHES",
    "MappingObserver",
    "Patch",
    "PatchError",
    "applied",
    "apply_all",
    "clear_invokers",
    "clear_mapping_observer",
    "set_invokers",
    "set_mapping_observer",
    "using_invokers",
]

set_apply_order(
    # moto's built-in event-source triggers off; DynamoDB stream records as AWS writes them
    awslambda.builtin_triggers_off,  # first: it reads the source of moto's own Queue.add_message
    dynamodb.dynamodb_stream_label_from_the_change_clock,
    dynamodb.update_item_writes_one_stream_record,
    dynamodb.dynamodb_update_expressions_parsed_once,
    dynamodb.dynamodb_condition_expressions_lexed_once,
    dynamodb.dynamodb_update_validation_copies_trees_directly,
    dynamodb.dynamodb_tree_walkers_build_their_map_once,
    dynamodb.dynamodb_update_structure_checked_at_the_root,
    # invocations routed to our runner and async engine
    awslambda.lambda_invoker_replaced,
    sns.sns_lambda_delivery_async,
    stepfunctions.stepfunctions_execute_deployed_machines,
    stepfunctions.stepfunctions_executions_survive_restarts,
    # SQS hot paths, each wrapping the one before (the counters wrap what is installed)
    sqs.sqs_hot_paths_constant_time,
    sqs.sqs_receive_keeps_fifo_group_order,
    sqs.sqs_batch_entries_keep_system_attributes,
    sqs.sqs_message_counters,
    kinesis.kinesis_shard_ends_constant_time,
    awslambda.lambda_event_source_mapping_validation,
    # public layers, and the Lambda properties CloudFormation drops
    awslambda.lambda_public_layers_accepted,
    awslambda.lambda_logging_config_reported,
    awslambda.lambda_cloudformation_properties,
    awslambda.lambda_event_invoke_config_replaces,
    # CloudFormation models moto lacks or gets wrong
    sqs.sqs_cloudformation_fifo_name,
    events.events_bus_ref_is_its_name,
    cloudwatch.cloudwatch_alarm_cloudformation,
    iam_sts.policy_conditions_apply_only_when_true,
    cloudwatch.cloudwatch_describe_alarm_history,
    # what an unchanged `cdk deploy` needs
    cloudformation.cloudformation_change_sets,
    cloudformation.cloudformation_ssm_previous_value,
    cloudformation.cloudformation_template_url_loopback,
    custom_resources.custom_resource_callback_host,
    core.cors_off,
    core.api_call_counting,
    core.request_lookups_computed_once,
    # smaller fidelity gaps (the id checks wrap the SQS patches above)
    sqs.sqs_message_group_and_deduplication_ids_validated,
    cloudwatch.cloudwatch_alarms_start_insufficient_data,
    cloudwatch.cloudwatch_percentiles,
    sns.sns_email_subscriptions_pending_confirmation,
    # function credentials and the IAM audit
    iam_sts.sts_caller_identity_of_function_keys,
    iam_sts.iam_audit_of_function_calls,
    # template properties moto's CloudFormation stores wrongly (streamline.local.properties)
    dynamodb.dynamodb_cloudformation_sse_specification,
    awslambda.lambda_event_source_mapping_cloudformation_tags,
    # custom resources (wrapping the change-set execute installed above), DependsOn, roles
    custom_resources.custom_resources_run_at_deploy_time,
    cloudformation.cloudformation_depends_on_first,
    iam_sts.iam_role_managed_policy_arns_kept,
)
