"""DynamoDB: stream records and table settings as AWS writes them.

A table's stream label comes from the journaled change's clock (so a replay restores the same
stream ARN), UpdateItem on a new item writes one INSERT holding the whole item, and a template's
``SSESpecification`` is applied. moto's built-in stream -> Lambda trigger is turned off in
:mod:`.awslambda` (``builtin_triggers_off``).
"""

from __future__ import annotations

from typing import Any

from streamline.local import durability
from streamline.local.patches.registry import (
    cfn_wrapper,
    install,
    moto_original,
    moto_patch,
    rewrite_method,
)


@moto_patch("moto.dynamodb.models.table:Table.set_stream_specification")
def dynamodb_stream_label_from_the_change_clock() -> None:
    """A table's stream label (in its stream ARN) comes from the journaled change's clock.

    moto stamps the label with the time it runs; a journal replay runs the change at the time
    it was journaled, a moment earlier, so the restored table had another stream ARN and every
    mapping on it pointed nowhere. ``durability.change_time`` is that moment both times.
    """
    from moto.dynamodb.models.table import Table

    install(
        Table,
        "set_stream_specification",
        rewrite_method(
            Table,
            "set_stream_specification",
            [("utcnow().isoformat()", "_durability.change_time().isoformat()")],
        ),
    )
    import moto.dynamodb.models.table as table_module

    table_module._durability = durability  # type: ignore[attr-defined]


@moto_patch("moto.dynamodb.models:DynamoDBBackend.update_item")
def update_item_writes_one_stream_record() -> None:
    """UpdateItem on a new item: one INSERT holding the whole item, as DynamoDB Streams write it.

    moto creates the item by putting its bare key first, which records an INSERT of the key
    alone, then records the update as a second INSERT. A consumer met an image with nothing but
    the key (every order written by UpdateItem looked like poison to ``changes``).
    """
    from moto.dynamodb.models import DynamoDBBackend

    install(
        DynamoDBBackend,
        "update_item",
        rewrite_method(
            DynamoDBBackend,
            "update_item",
            [
                (
                    "table.put_item(data)\n",
                    # (moto's source, dedented: this line sits 8 spaces in)
                    "_shard, table.stream_shard = table.stream_shard, None\n"
                    "        try:\n"
                    "            table.put_item(data)\n"
                    "        finally:\n"
                    "            table.stream_shard = _shard\n",
                )
            ],
        ),
    )


@moto_patch("moto.dynamodb.models.table:Table.create_from_cloudformation_json")
def dynamodb_cloudformation_sse_specification() -> None:
    """A table's ``SSESpecification`` (``SSEEnabled``) is applied and DescribeTable reports it
    (moto's table reads the API's ``Enabled``: the template's setting was stored unread)."""
    from moto.dynamodb.models.table import Table

    def adjust(properties: dict[str, Any]) -> dict[str, Any]:
        sse = properties.get("SSESpecification")
        if isinstance(sse, dict) and "SSEEnabled" in sse:
            api = {"Enabled": str(sse["SSEEnabled"]).lower() == "true"}
            for key in ("SSEType", "KMSMasterKeyId"):
                if sse.get(key):
                    api[key] = sse[key]
            properties["SSESpecification"] = api if api["Enabled"] else None
        return properties

    cfn_wrapper(Table, adjust)


#: Distinct update (and condition) expressions kept parsed. A pipeline writes with a handful of
#: expression strings (values travel as placeholders); the bound only matters for a client
#: that builds a new expression per call.
PARSED_UPDATE_EXPRESSIONS = 512


@moto_patch("moto.dynamodb.parsing.expressions:UpdateExpressionParser.make")
def dynamodb_update_expressions_parsed_once() -> None:
    """An UpdateExpression string is tokenised and parsed once, not twice per UpdateItem.

    moto parsed the same string in the request handler (to check placeholders) and again in the
    backend, on every call: about a quarter of the local server's CPU in the pipeline, whose
    UpdateItems reuse one expression with new values. The parsed tree is read-only to moto (the
    validator works on a deep copy), so one tree per string serves every call; a string that
    fails to parse is not cached and fails the same way each time.
    """
    import functools

    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    original = moto_original(UpdateExpressionParser, "make").__func__

    @functools.lru_cache(maxsize=PARSED_UPDATE_EXPRESSIONS)
    def parsed(expression: str) -> Any:
        return original(UpdateExpressionParser, expression)

    def make(cls: Any, expression_str: Any) -> Any:
        if cls is UpdateExpressionParser and isinstance(expression_str, str):
            return parsed(expression_str)
        return original(cls, expression_str)

    install(UpdateExpressionParser, "make", classmethod(make))


@moto_patch("moto.dynamodb.comparisons:ConditionExpressionParser._lex_condition_expression")
def dynamodb_condition_expressions_lexed_once() -> None:
    """A ConditionExpression string is split into tokens once, not on every request.

    moto's lexer tries up to six regular expressions per token, on every conditional write,
    though the pipeline's writes reuse a few expression strings (values travel as
    placeholders). The tokens depend on the string alone; names and values are applied by the
    later parse steps, which still run per request. Each call gets fresh token nodes, equal to
    moto's; a string moto cannot lex is not cached and fails the same way each time.
    """
    import functools
    from collections import deque

    from moto.dynamodb.comparisons import ConditionExpressionParser

    original = moto_original(ConditionExpressionParser, "_lex_condition_expression")

    @functools.lru_cache(maxsize=PARSED_UPDATE_EXPRESSIONS)
    def tokens(expression: str) -> tuple[tuple[Any, str], ...]:
        lexed = original(ConditionExpressionParser(expression, None, None))
        return tuple((node.nonterminal, node.text) for node in lexed)

    def _lex_condition_expression(self: Any) -> Any:
        if not isinstance(self.condition_expression, str):
            return original(self)
        node, literal = self.Node, self.Kind.LITERAL
        return deque(
            node(nonterminal=kind, kind=literal, text=text, value=text, children=[])
            for kind, text in tokens(self.condition_expression)
        )

    install(ConditionExpressionParser, "_lex_condition_expression", _lex_condition_expression)


@moto_patch("moto.dynamodb.parsing.validators:deepcopy")
def dynamodb_update_validation_copies_trees_directly() -> None:
    """The UpdateExpression validator copies the parsed tree with a copier that knows its nodes.

    moto deep-copies the tree before validating it, twice per UpdateItem on a new item, through
    ``copy.deepcopy``'s generic ``__reduce_ex__`` path: a fifth of the call's CPU for the
    pipeline's 12-attribute update. Nodes are plain objects whose attributes are lists, other
    nodes (``parent`` included) and immutable values; they are copied the same way, with the
    same memo (shared and cyclic references stay shared), and anything else goes to
    ``copy.deepcopy`` itself.
    """
    import copy

    import moto.dynamodb.parsing.validators as validators
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]

    immutable = frozenset({str, int, float, bool, type(None)})
    plain_nodes: dict[type, bool] = {}  # node classes without a __deepcopy__ of their own

    def clone(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if memo is None:
            memo = {}
        return _clone(value, memo)

    def _clone(value: Any, memo: dict[int, Any]) -> Any:
        kind = type(value)
        if kind in immutable:
            return value
        known = memo.get(id(value))
        if known is not None:
            return known
        if kind is list:
            copied: list[Any] = []
            memo[id(value)] = copied
            for item in value:
                copied.append(item if type(item) in immutable else _clone(item, memo))
            return copied
        plain = plain_nodes.get(kind)
        if plain is None:
            plain = plain_nodes[kind] = issubclass(kind, Node) and not hasattr(kind, "__deepcopy__")
        if plain:
            node = object.__new__(kind)
            memo[id(value)] = node
            attributes = node.__dict__
            for key, item in value.__dict__.items():
                attributes[key] = item if type(item) in immutable else _clone(item, memo)
            return node
        return copy.deepcopy(value, memo)

    install(validators, "deepcopy", clone)


@moto_patch(
    "moto.dynamodb.parsing.ast_nodes:DepthFirstTraverser.nodes_to_be_processed",
    "moto.dynamodb.parsing.ast_nodes:DepthFirstTraverser.process",
)
def dynamodb_tree_walkers_build_their_map_once() -> None:
    """Each validator pass builds its node-type map once, not at every node it visits.

    moto's tree walkers rebuilt their ``{node type: handler}`` dict (and a tuple of its keys)
    at every node of every pass: about 500 dicts per UpdateItem for the pipeline's update. The
    map is a literal of the walker's own bound methods, the same every time for one walker, so
    it is kept on the walker after the first node.
    """
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser  # type: ignore[attr-defined]

    def processing(self: Any) -> dict[Any, Any]:
        found = self.__dict__.get("_streamline_map")
        if found is None:
            found = self.__dict__["_streamline_map"] = self._processing_map()
        return found

    def nodes_to_be_processed(self: Any) -> tuple[Any, ...]:
        found = self.__dict__.get("_streamline_types")
        if found is None:
            found = self.__dict__["_streamline_types"] = tuple(processing(self).keys())
        return found

    def process(self: Any, node: Any) -> Any:
        for class_key, processor in processing(self).items():
            if isinstance(node, class_key):
                return processor(node)
        return None

    install(DepthFirstTraverser, "nodes_to_be_processed", nodes_to_be_processed)
    install(DepthFirstTraverser, "process", process)


@moto_patch(
    "moto.dynamodb.parsing.validators:ActionCountValidator.traverse",
    "moto.dynamodb.parsing.validators:OverlappingPathsValidator.traverse",
)
def dynamodb_update_structure_checked_at_the_root() -> None:
    """Two structure checks of an UpdateExpression run once on the whole tree, not at each
    of its nodes, when the whole tree passes.

    moto checks "at most one SET/REMOVE/ADD clause" and "no two actions on overlapping paths"
    at every node that is an ``UpdateExpression`` (about 35 in the pipeline's update), each
    check a walk of that node's subtree: a third of UpdateItem's CPU. A node's clauses and
    actions are a subset of the root's, so when the root passes, every node passes, and the
    walk changes nothing (each check returns its node as it was). When the root fails, moto's
    own walk runs, so the error and its wording are moto's.
    """
    from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
        UpdateExpression,
        UpdateExpressionAddClause,
        UpdateExpressionRemoveClause,
        UpdateExpressionSetClause,
    )
    from moto.dynamodb.parsing.validators import ActionCountValidator, OverlappingPathsValidator

    clause_types = [
        UpdateExpressionAddClause,
        UpdateExpressionRemoveClause,
        UpdateExpressionSetClause,
    ]
    count_walk = moto_original(ActionCountValidator, "traverse")
    overlap_walk = moto_original(OverlappingPathsValidator, "traverse")

    def counts_traverse(self: Any, node: Any) -> Any:
        if isinstance(node, UpdateExpression):
            found = [type(clause) for clause in node.find_clauses(clause_types)]
            if all(found.count(kind) <= 1 for kind in clause_types):
                return node
        return count_walk(self, node)

    def overlaps_traverse(self: Any, node: Any) -> Any:
        if isinstance(node, UpdateExpression):
            try:
                self.check_for_overlapping_paths(node)
            except Exception:  # moto's walk raises it again, in moto's order
                return overlap_walk(self, node)
            return node
        return overlap_walk(self, node)

    install(ActionCountValidator, "traverse", counts_traverse)
    install(OverlappingPathsValidator, "traverse", overlaps_traverse)
