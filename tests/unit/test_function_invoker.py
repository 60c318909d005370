"""The invoker reads an asynchronous invocation's (empty) body, so its connection goes back to
the client's pool: an unread body keeps the connection checked out and the next invoke opens a
new one (the pipeline bench measured one new connection per event before this)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from botocore.response import StreamingBody
from orderflow.dal import FunctionInvoker
from orderflow.dal import invoker as invoker_module


class _Body(io.BytesIO):
    def __init__(self) -> None:
        super().__init__(b"")
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)


class _Lambda:
    def __init__(self) -> None:
        self.bodies: list[_Body] = []
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        raw = _Body()
        self.bodies.append(raw)
        return {"StatusCode": 202, "Payload": StreamingBody(raw, 0)}


def test_an_async_invoke_reads_its_body_to_free_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _Lambda()
    monkeypatch.setattr(invoker_module, "client", lambda service: fake)
    assert FunctionInvoker().invoke_async("notifier", b'{"n": 1}') == 202
    assert fake.calls == [
        {"FunctionName": "notifier", "InvocationType": "Event", "Payload": b'{"n": 1}'}
    ]
    (body,) = fake.bodies
    assert body.reads >= 1  # read to its end by the invoker


def test_an_async_invoke_without_a_body_still_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoBody:
        def invoke(self, **kwargs: Any) -> dict[str, Any]:
            return {"StatusCode": 202}

    monkeypatch.setattr(invoker_module, "client", lambda service: NoBody())
    assert FunctionInvoker().invoke_async("notifier", b"{}") == 202
