"""EventBridge: ``Ref`` to an event bus in a template resolves to its name.

moto's EventBus had no physical id, so a Rule naming its bus by Ref failed the deploy.
"""

from __future__ import annotations

from streamline.local.patches.registry import install, moto_patch


@moto_patch("moto.events.models:EventBus.create_from_cloudformation_json")
def events_bus_ref_is_its_name() -> None:
    """``Ref`` to an AWS::Events::EventBus resolves to the bus name, as CloudFormation documents.

    moto's EventBus has no physical id, so a Ref (e.g. a Rule's EventBusName) resolved to the
    Python object and put_rule crashed with "'EventBus' object has no attribute 'split'".
    """
    from moto.events.models import EventBus

    install(EventBus, "physical_resource_id", property(lambda self: self.name))
