"""Operating the pipeline: commands that work against the local cloud or a real AWS account."""

__all__: list[str] = []
