"""Streamline: producers, ops tooling and the docker-free local cloud for the order pipeline."""

__all__: list[str] = []
