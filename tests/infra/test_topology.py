"""The stacks and the topology table agree: every name the ops commands and the demo look up
exists as a stack output, and the recovery workflow's sources are the table's failure queues."""

from __future__ import annotations

from streamline import topology

from .support import Synth, iter_states, state_machine_definition


def test_every_processor_output_the_tools_read_is_emitted(stage: Synth) -> None:
    outputs: set[str] = set()
    for concern in ("ingest", "processing", "orchestration", "monitoring"):
        outputs |= set(stage.json(concern).get("Outputs", {}))
    for p in topology.PROCESSORS:
        wanted = {p.function_output, p.failure_output} | ({p.queue_output} - {None})
        assert wanted <= outputs, (p.name, wanted - outputs)


def test_recovery_sources_are_the_tables_failure_queues_in_order(dev: Synth) -> None:
    definition = state_machine_definition(dev.json("orchestration"))
    states = dict(iter_states(definition["States"]))
    sources = states["BuildSources"]["Result"]["sources"]
    assert [(s["name"], s["kind"]) for s in sources] == [
        (p.failure_name, p.recovery_kind) for p in topology.PROCESSORS
    ]


def test_the_derived_lookups_cover_every_processor() -> None:
    names = [p.name for p in topology.PROCESSORS]
    assert list(topology.function_outputs()) == names
    assert sorted(topology.failure_queue_names().values()) == sorted(
        p.failure_name for p in topology.PROCESSORS
    )
    assert set(topology.replayable_failure_outputs()) == {"ingest", "changes"}
