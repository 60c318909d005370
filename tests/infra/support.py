"""Helpers shared by the infra tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not add the repo root
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk import Stack  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from stacks import Pipeline, build_pipeline  # noqa: E402

__all__ = [
    "CONCERNS",
    "HANDLER_TEMPLATE",
    "ROOT",
    "Synth",
    "build_pipeline",
    "cdk_context",
    "iter_states",
    "resources",
    "state_machine_definition",
]

CONCERNS = ("ingest", "processing", "orchestration", "monitoring")


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """The context cdk.json gives the CLI, plus overrides (e.g. stage="prod")."""
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return {**context, **overrides}


@dataclass
class Synth:
    """One synthesized stage: the stacks, their templates and the cloud assembly directory."""

    stage: str
    pipeline: Pipeline
    outdir: Path
    templates: dict[str, Template]

    def stack(self, concern: str) -> Stack:
        return getattr(self.pipeline, concern)  # type: ignore[no-any-return]

    def template(self, concern: str) -> Template:
        return self.templates[concern]

    def json(self, concern: str) -> dict[str, Any]:
        return self.templates[concern].to_json()  # type: ignore[no-any-return]

    def logical_id(self, construct: Any) -> str:
        """Logical id of an L2 construct's (or L1's) CloudFormation resource."""
        resource = construct.node.default_child or construct
        stack = Stack.of(resource)
        return str(stack.resolve(stack.get_logical_id(resource)))

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def state_machine_definition(template: dict[str, Any]) -> dict[str, Any]:
    """The ASL of the (single) state machine, with every CloudFormation token as "<token>"."""
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    definition = machine["Properties"]["DefinitionString"]
    if isinstance(definition, str):
        return json.loads(definition)  # type: ignore[no-any-return]
    parts = definition["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "<token>" for p in parts))  # type: ignore[no-any-return]


def iter_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, including those nested in Map item processors."""
    for name, state in states.items():
        yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from iter_states(processor["States"])


HANDLER_TEMPLATE = """
from orderflow.batch import Source, partial_batch_handler


@partial_batch_handler(source=Source.{source})
def handler(record):
    return None
"""
