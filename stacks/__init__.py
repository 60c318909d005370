"""Streamline CDK stacks: one per concern, composed by `build_pipeline` for one stage."""

from stacks.config import StageConfig, StageConfigError
from stacks.pipeline import Pipeline, build_pipeline

__all__ = ["Pipeline", "StageConfig", "StageConfigError", "build_pipeline"]
