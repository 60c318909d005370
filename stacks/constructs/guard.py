"""Synth-time guard against the silent-loss bug.

An event source mapping with ReportBatchItemFailures treats a handler that returns nothing as
"the whole batch succeeded". A handler that is not built on our batch entry point therefore
drops every failed record without a trace. The processors refuse, at synth time, to wire a
handler unless its source file shows it is decorated with
``orderflow.batch.partial_batch_handler(source=Source.<X>)`` for the right source kind.

The check reads the handler file with `ast` and never imports it, so synth needs none of the
function's runtime dependencies.

Example:
    >>> require_partial_batch_handler(Path("functions/ingest/handler.py"), "handler", {"KINESIS"})
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["BATCH_MODULE", "DECORATOR", "require_partial_batch_handler", "resolve_handler"]

BATCH_MODULE = "orderflow.batch"
DECORATOR = "partial_batch_handler"
SOURCE_ENUM = "Source"


def resolve_handler(code_dir: Path, handler: str) -> tuple[Path, str]:
    """Map a Lambda handler string ("ingest.handler.handler") to (file, symbol)."""
    module, _, symbol = handler.rpartition(".")
    if not module or not symbol:
        raise ValueError(f"handler {handler!r} is not of the form 'package.module.function'")
    return code_dir / Path(*module.split(".")).with_suffix(".py"), symbol


def require_partial_batch_handler(handler_file: Path, symbol: str, expected: set[str]) -> str:
    """Raise ValueError unless `symbol` in `handler_file` is a partial batch handler.

    `expected` holds the allowed `Source` member names (e.g. {"SQS"} or {"KINESIS"}).
    Returns the source member found.
    """
    where = f"{handler_file}:{symbol}"
    wanted = " or ".join(f"Source.{name}" for name in sorted(expected))
    fix = f"decorate it with @{DECORATOR}(source={wanted}) from {BATCH_MODULE}"
    try:
        tree = ast.parse(handler_file.read_text(encoding="utf-8"), filename=str(handler_file))
    except FileNotFoundError:
        raise ValueError(f"{where}: handler file does not exist") from None
    except SyntaxError as exc:
        raise ValueError(
            f"{where}: handler file does not parse ({exc.msg}, line {exc.lineno})"
        ) from None

    decorator_names, module_names, source_names = _batch_imports(tree)
    function = _top_level_function(tree, symbol)
    if function is None:
        raise ValueError(f"{where}: no top-level function named {symbol!r}; {fix}")

    for decorator in function.decorator_list:
        if not isinstance(decorator, ast.Call):
            continue
        if not _is_batch_decorator(decorator.func, decorator_names, module_names):
            continue
        found = _source_member(decorator, source_names, module_names)
        if found is None:
            raise ValueError(f"{where}: @{DECORATOR} has no source=Source.<X> argument; {fix}")
        if found not in expected:
            raise ValueError(
                f"{where}: wired to a {wanted} event source but declares Source.{found}; {fix}"
            )
        return found
    raise ValueError(
        f"{where}: is not a partial batch handler (missing @{DECORATOR}); a handler that does "
        f"not return batchItemFailures silently loses failed records; {fix}"
    )


def _batch_imports(tree: ast.Module) -> tuple[set[str], set[str], set[str]]:
    """Local names bound to the decorator, to the batch module, and to the Source enum."""
    decorators: set[str] = set()
    modules: set[str] = set()
    sources: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == BATCH_MODULE and node.level == 0:
            for alias in node.names:
                local = alias.asname or alias.name
                if alias.name == DECORATOR:
                    decorators.add(local)
                elif alias.name == SOURCE_ENUM:
                    sources.add(local)
        elif isinstance(node, ast.ImportFrom) and node.module == "orderflow" and node.level == 0:
            modules.update(a.asname or a.name for a in node.names if a.name == "batch")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == BATCH_MODULE:
                    modules.add(alias.asname or BATCH_MODULE)
    return decorators, modules, sources


def _top_level_function(
    tree: ast.Module, symbol: str
) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    found = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == symbol:
            found = node
        elif _rebinds(node, symbol):
            # a later assignment replaces the decorated function: it is no longer the handler
            found = None
    return found


def _rebinds(node: ast.stmt, symbol: str) -> bool:
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Name) and t.id == symbol for t in targets)
    if isinstance(node, ast.ClassDef):
        return node.name == symbol
    return False


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _is_batch_decorator(func: ast.expr, decorators: set[str], modules: set[str]) -> bool:
    name = _dotted(func)
    if name is None:
        return False
    if name in decorators:
        return True
    return any(name == f"{module}.{DECORATOR}" for module in modules)


def _source_member(call: ast.Call, sources: set[str], modules: set[str]) -> str | None:
    value: ast.expr | None = next((k.value for k in call.keywords if k.arg == "source"), None)
    if value is None and call.args:
        value = call.args[0]
    if not isinstance(value, ast.Attribute):
        return None
    enum = _dotted(value.value)
    allowed = sources | {f"{module}.{SOURCE_ENUM}" for module in modules}
    return value.attr if enum in allowed else None
