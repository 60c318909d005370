"""The DynamoDB patches that make UpdateItem cheaper change nothing moto answers: every case here
runs through moto's own code (patches lifted) and through the patched code, on fresh tables, and
the items, stream records and errors must be the same, word for word."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from streamline.local import patches
from streamline.local.patches.registry import moto_original

KEY = {"k": {"S": "one"}}

#: (update expression, names, values, condition): applied in order to one item, starting absent.
CASES: list[list[tuple[str, dict[str, str], dict[str, Any], str | None]]] = [
    [  # the pipeline's orders write: a new item, a newer event, a stale one (condition fails)
        (
            "SET #s = :s, #v = :v, #e = :e, #seen = if_not_exists(#seen, :m), #t = :t",
            {"#s": "status", "#v": "version", "#e": "eid", "#seen": "seen_A", "#t": "trace"},
            {
                ":s": {"S": "A"},
                ":v": {"N": "1"},
                ":e": {"S": "e1"},
                ":m": {"S": "m"},
                ":t": {"S": "x"},
            },
            "attribute_not_exists(k) OR version < :v",
        ),
        (
            "SET #s = :s, #v = :v, #seen = if_not_exists(#seen, :m) REMOVE #t",
            {"#s": "status", "#v": "version", "#seen": "seen_B", "#t": "trace"},
            {":s": {"S": "B"}, ":v": {"N": "2"}, ":m": {"S": "m2"}},
            "attribute_not_exists(k) OR version < :v",
        ),
        (
            "SET #s = :s, #v = :v",
            {"#s": "status", "#v": "version"},
            {":s": {"S": "OLD"}, ":v": {"N": "1"}},
            "attribute_not_exists(k) OR version < :v",
        ),
    ],
    [("SET a = :a, a = :b", {}, {":a": {"S": "1"}, ":b": {"S": "2"}}, None)],
    [("SET #a = :a, #b = :b", {"#a": "x", "#b": "x"}, {":a": {"S": "1"}, ":b": {"S": "2"}}, None)],
    [("SET a.b = :x, a = :y", {}, {":x": {"S": "1"}, ":y": {"M": {}}}, None)],
    [("SET a = :a SET b = :b", {}, {":a": {"S": "1"}, ":b": {"S": "2"}}, None)],
    [("SET a = :a REMOVE a", {}, {":a": {"S": "1"}}, None)],
    [("REMOVE a REMOVE b", {}, {}, None)],
    [("ADD n :one ADD m :one", {}, {":one": {"N": "1"}}, None)],
    [("SET #k = :v", {"#k": "k"}, {":v": {"S": "two"}}, None)],
    [("SET a = :missing", {}, {":a": {"S": "1"}}, None)],
    [("SET a = b + :one", {}, {":one": {"N": "1"}}, None)],
    [("SET m.x.y = :v", {}, {":v": {"S": "deep"}}, None)],
    [
        (
            "SET l = list_append(if_not_exists(l, :empty), :l), n = :zero",
            {},
            {":empty": {"L": []}, ":l": {"L": [{"S": "a"}]}, ":zero": {"N": "0"}},
            None,
        ),
        (
            "SET l = list_append(l, :l), n = n + :one ADD s :set",
            {},
            {":l": {"L": [{"S": "b"}]}, ":one": {"N": "1"}, ":set": {"SS": ["p", "q"]}},
            None,
        ),
        (
            "DELETE s :sub REMOVE l[0] SET m = :m",
            {},
            {":sub": {"SS": ["p"]}, ":m": {"M": {"x": {"S": "y"}}}},
            None,
        ),
        (
            "SET m.x = :y, m.z = :z",
            {},
            {":y": {"S": "new"}, ":z": {"N": "7"}},
            "attribute_exists(m)",
        ),
        ("SET #a = :e", {"#a": "e"}, {":e": {"S": ""}}, None),
    ],
]


@contextlib.contextmanager
def moto_as_shipped() -> Iterator[None]:
    """Lift the DynamoDB expression patches for the duration (they are put back after)."""
    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
    from moto.dynamodb.parsing.validators import ActionCountValidator, OverlappingPathsValidator

    owners = [
        (validators, "deepcopy"),
        (DepthFirstTraverser, "nodes_to_be_processed"),
        (DepthFirstTraverser, "process"),
        (ActionCountValidator, "traverse"),
        (OverlappingPathsValidator, "traverse"),
        (UpdateExpressionParser, "make"),
        (ConditionExpressionParser, "_lex_condition_expression"),
    ]
    patched = [
        (owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name))
        for owner, name in owners
    ]
    try:
        for owner, name in owners:
            original = moto_original(owner, name)
            if isinstance(owner, type) and name not in vars(owner):
                delattr(owner, name)  # inherited in moto: back to the base class's
            else:
                setattr(owner, name, original)
        yield
    finally:
        for owner, name, value in patched:
            setattr(owner, name, value)


def _backend(streams: dict[str, Any] | None) -> Any:
    """A fresh DynamoDB backend holding table "t" (hash key "k")."""
    from moto.dynamodb.models import DynamoDBBackend

    backend = DynamoDBBackend("us-east-1", "123456789012")
    backend.create_table(
        "t",
        schema=[{"AttributeName": "k", "KeyType": "HASH"}],
        throughput=None,
        attr=[{"AttributeName": "k", "AttributeType": "S"}],
        global_indexes=None,
        indexes=None,
        streams=streams,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=[],
        deletion_protection_enabled=None,
        warm_throughput=None,
    )
    return backend


def _run(steps: list[tuple[str, dict[str, str], dict[str, Any], str | None]]) -> list[Any]:
    backend = _backend({"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    seen: list[Any] = []
    for expression, names, values, condition in steps:
        try:
            item = backend.update_item(
                "t", KEY, expression, names, values, condition_expression=condition
            )
            seen.append(("ok", json.dumps(item.to_json(), sort_keys=True)))
        except Exception as exc:  # the error is part of the answer
            seen.append(("error", type(exc).__name__, str(exc)))
    shard = backend.get_table("t").stream_shard
    assert shard is not None
    seen.append(
        [
            (record["eventName"], json.dumps(record["dynamodb"].get("NewImage"), sort_keys=True))
            for record in (r.to_json() for r in shard.items)
        ]
    )
    return seen


@pytest.mark.parametrize("steps", CASES, ids=[case[0][0][:40] for case in CASES])
def test_update_item_answers_as_moto_does(steps: list[Any]) -> None:
    patches.apply_all()
    patched = _run(steps)
    with moto_as_shipped():
        shipped = _run(steps)
    assert patched == shipped


def test_the_comparison_really_runs_moto_as_shipped() -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    patches.apply_all()
    assert UpdateExpressionParser.make("SET a = :a") is UpdateExpressionParser.make("SET a = :a")
    with moto_as_shipped():  # moto parses anew each time
        assert UpdateExpressionParser.make("SET a = :a") is not UpdateExpressionParser.make(
            "SET a = :a"
        )
    assert UpdateExpressionParser.make("SET a = :a") is UpdateExpressionParser.make("SET a = :a")


def _tree(node: object) -> object:
    """A parse tree as nested tuples (node type, children or value), without parent links."""
    children = getattr(node, "children", None)
    if isinstance(children, list):
        return (type(node).__name__, [_tree(child) for child in children])
    if isinstance(node, str | int | float):
        return (type(node).__name__, node)
    return (type(node).__name__, children)


def test_an_update_expression_is_parsed_once_into_moto_s_own_tree() -> None:
    from moto.dynamodb.exceptions import InvalidTokenException
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from streamline.local.patches.registry import moto_original

    patches.apply_all()
    original = moto_original(UpdateExpressionParser, "make").__func__
    expressions = [
        "SET #a = :a, #b = if_not_exists(#b, :b) REMOVE #c",
        "SET n = n + :one ADD tags :t DELETE old :o",
        "REMOVE a.b[2], #x",
    ]
    for text in expressions:
        parsed = UpdateExpressionParser.make(text)
        assert _tree(parsed) == _tree(original(UpdateExpressionParser, text))
        assert UpdateExpressionParser.make(text) is parsed  # parsed once

    # moto validates and executes on a copy: the shared tree is the same after real updates.
    backend = _backend(streams=None)
    text = "SET #a = :a, #n = if_not_exists(#n, :zero) + :one"
    before = _tree(UpdateExpressionParser.make(text))
    for n in range(3):
        item = backend.update_item(
            "t",
            {"k": {"S": "one"}},
            text,
            {"#a": "a", "#n": "n"},
            {":a": {"S": f"v{n}"}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
        )
    assert item.to_json()["Attributes"]["n"] == {"N": "3"}
    assert _tree(UpdateExpressionParser.make(text)) == before
    with pytest.raises(InvalidTokenException):  # a bad string fails every time, never cached
        UpdateExpressionParser.make("SET a = = b")
    with pytest.raises(InvalidTokenException):
        UpdateExpressionParser.make("SET a = = b")


def test_a_condition_expression_is_lexed_once_into_moto_s_own_tokens() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    from streamline.local.patches.registry import moto_original

    patches.apply_all()
    original = moto_original(ConditionExpressionParser, "_lex_condition_expression")
    expressions = [
        "attribute_not_exists(effect_id)",
        "attribute_not_exists(#v) OR (#v < :v AND #s <> :s) OR size(#t) BETWEEN :a AND :b",
        "a.b[1] IN (:x, :y) AND NOT contains(#list, :z)",
    ]
    for text in expressions:
        for _ in range(2):  # the second call is served from the cache
            parser = ConditionExpressionParser(text, None, None)
            cached = parser._lex_condition_expression()
            assert list(cached) == list(original(ConditionExpressionParser(text, None, None)))
            cached[0].children.append("changed by a caller")  # fresh nodes every call
    names, values = {"#v": "version"}, {":v": {"N": "3"}}
    for _ in range(2):
        parsed = ConditionExpressionParser("attribute_not_exists(#v) OR #v < :v", names, values)
        assert parsed.parse().expr(None) is True  # no item: the condition holds
    for _ in range(2):  # a string moto cannot lex fails every time, never cached
        with pytest.raises(ValueError, match="Cannot parse condition"):
            ConditionExpressionParser("a = $b", None, None)._lex_condition_expression()
