"""The patch registry refuses to run on a moto it was not written for, or with a patch whose target
is gone: a moto upgrade fails at start-up naming the patch, never silently mid-pipeline."""

from __future__ import annotations

import pytest

from streamline.local import patches


def test_patches_are_version_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto

    monkeypatch.setattr(moto, "__version__", "9.9.9")
    with pytest.raises(patches.PatchError, match=r"moto 5\.2\.5.*9\.9\.9"):
        patches.apply_all()


def test_patches_fail_loudly_when_a_patched_attribute_is_gone() -> None:
    broken = patches.Patch(
        "broken", patches.MOTO_VERSION, ("moto.sqs.models:Queue.no_such",), lambda: None, "test"
    )
    patches.PATCHES.append(broken)
    try:
        with pytest.raises(patches.PatchError, match=r"broken.*Queue\.no_such"):
            patches.apply_all()
    finally:
        patches.PATCHES.remove(broken)


def test_the_per_request_lookups_are_moto_s_answers_computed_once() -> None:
    import inspect

    import moto.backends
    import moto.core.responses as responses
    from moto.sqs.responses import SQSResponse

    from streamline.local.patches.registry import moto_original

    patches.apply_all()
    names = responses.method_names_from_class(SQSResponse)
    assert names == {name for name, _ in inspect.getmembers(SQSResponse, inspect.isfunction)}
    assert "send_message" in names
    assert responses.method_names_from_class(SQSResponse) is names  # cached, not recomputed
    listed = moto.backends.list_of_moto_modules()
    original = moto_original(moto.backends, "list_of_moto_modules")
    assert listed == set(original()) and {"sqs", "dynamodb", "kinesis"} <= listed


class _KeysForbidden(dict):  # type: ignore[type-arg]
    """A shard's records that fail the test if anything lists every key."""

    def keys(self):  # type: ignore[no-untyped-def, override]
        raise AssertionError("listed every key of the shard: O(records) per call")


def test_a_shard_s_ends_are_moto_s_answers_without_listing_its_records() -> None:
    from moto.kinesis.models import Shard

    from streamline.local.patches.registry import moto_original

    patches.apply_all()
    shard = Shard(0, "0", "340282366920938463463374607431768211455", "123456789012", "us-east-1")
    original_max = moto_original(Shard, "get_max_sequence_number")
    original_min = moto_original(Shard, "get_min_sequence_number")
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == (0, 0)
    for _ in range(5):
        shard.put_record("key", "ZGF0YQ==", None)
    del shard.records[1]  # trimmed by retention: the oldest is gone
    expected = (original_min(shard), original_max(shard))
    assert expected == (2, 5)
    shard.records = _KeysForbidden(shard.records)
    assert (shard.get_min_sequence_number(), shard.get_max_sequence_number()) == expected
    assert shard.put_record("key", "ZGF0YQ==", None) == "6"


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
    from moto.dynamodb.models import DynamoDBBackend
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
    backend = DynamoDBBackend("us-east-1", "123456789012")
    backend.create_table(
        "t",
        schema=[{"AttributeName": "k", "KeyType": "HASH"}],
        throughput=None,
        attr=[{"AttributeName": "k", "AttributeType": "S"}],
        global_indexes=None,
        indexes=None,
        streams=None,
        billing_mode="PAY_PER_REQUEST",
        sse_specification=None,
        tags=None,
        deletion_protection_enabled=None,
        warm_throughput=None,
    )
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
