"""Infra test fixtures: each stage's app is synthesized once per session (per xdist worker)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from .support import CONCERNS, HANDLER_TEMPLATE, Synth, build_pipeline, cdk_context


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Synth]]:
    cache: dict[str, Synth] = {}

    def build(stage: str) -> Synth:
        if stage not in cache:
            outdir = tmp_path_factory.mktemp(f"cdk-{stage}")
            app = App(context=cdk_context(stage=stage), outdir=str(outdir))
            pipeline = build_pipeline(app)
            app.synth()
            templates = {
                concern: Template.from_stack(getattr(pipeline, concern)) for concern in CONCERNS
            }
            cache[stage] = Synth(stage, pipeline, outdir, templates)
        return cache[stage]

    yield build


@pytest.fixture(scope="session")
def dev(synth: Callable[[str], Synth]) -> Synth:
    return synth("dev")


@pytest.fixture(scope="session")
def prod(synth: Callable[[str], Synth]) -> Synth:
    return synth("prod")


@pytest.fixture(params=["dev", "prod"], scope="session")
def stage(request: pytest.FixtureRequest, synth: Callable[[str], Synth]) -> Synth:
    return synth(request.param)


@pytest.fixture
def handler_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write tiny handler modules under tmp_path: write("ingest", source="KINESIS")."""

    def write(name: str, body: str | None = None, *, source: str = "SQS") -> Path:
        package = tmp_path / name
        package.mkdir(exist_ok=True)
        (package / "handler.py").write_text(
            body if body is not None else HANDLER_TEMPLATE.format(source=source)
        )
        return tmp_path

    return write
