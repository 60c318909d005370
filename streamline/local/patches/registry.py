"""How a moto patch is declared, checked and applied: the registry every patch module uses.

moto is pinned (``MOTO_VERSION``). A patch is a function decorated with :func:`moto_patch`, naming
the moto attributes it replaces; the package (``streamline.local.patches``) puts the declared
patches in their apply order with :func:`set_apply_order`. :func:`apply_all` refuses to run on
another moto version, or when an attribute a patch relies on has gone, so an upgrade fails
loudly at start-up instead of misbehaving later. Where a patch rewrites a line of moto source
(:func:`rewrite_method`), it asserts the line is still there.

The helpers (:func:`moto_patch`, :func:`moto_original`, :func:`install`, :func:`rewrite_method`,
:func:`cfn_wrapper`, :func:`request_header`) are for the patch modules of this package; callers
outside it use what the package exports (its ``__all__``).
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MOTO_VERSION = "5.2.5"


class PatchError(RuntimeError):
    """moto is not the version the patches were written for, or a patched attribute moved."""


@dataclass(frozen=True, slots=True)
class Patch:
    """One named change to moto. ``targets`` are ``"module:Qualified.attr"`` strings."""

    name: str
    moto_version: str
    targets: tuple[str, ...]
    apply: Callable[[], None]
    reason: str


#: Every patch, in the order :func:`apply_all` applies them (set by :func:`set_apply_order`).
PATCHES: list[Patch] = []
# Declared by @moto_patch as the patch modules are imported, until the package orders them.
_declared: dict[Callable[[], None], Patch] = {}
_applied: set[str] = set()
_apply_lock = threading.Lock()
# First-seen originals, keyed by (owner id, attribute), so applying twice wraps moto's code and
# never our own wrapper.
_originals: dict[tuple[int, str], Any] = {}


def moto_patch(*targets: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Declare the decorated function a patch of ``targets``; its docstring's first paragraph
    is the reason :data:`PATCHES` reports."""

    def register(func: Callable[[], None]) -> Callable[[], None]:
        reason = inspect.cleandoc(func.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        _declared[func] = Patch(func.__name__, MOTO_VERSION, targets, func, reason)
        return func

    return register


def set_apply_order(*funcs: Callable[[], None]) -> None:
    """Make :data:`PATCHES` the declared patches in this order, each one exactly once.

    Order matters: several patches wrap what an earlier one installed. A declared patch left
    out, or one listed twice, is a mistake in the package, refused here at import.
    """
    missing = [f.__name__ for f in _declared if f not in funcs]
    unknown = [f.__name__ for f in funcs if f not in _declared]
    if missing or unknown or len(set(funcs)) != len(funcs):
        raise PatchError(
            f"patch order: missing {missing}, not declared {unknown}, or a patch listed twice"
        )
    PATCHES[:] = [_declared[f] for f in funcs]


def _resolve(target: str) -> tuple[Any, str]:
    module_name, _, qualified = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, attr = qualified.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attr


def moto_original(owner: Any, attr: str) -> Any:
    """moto's own attribute, as it was before any patch (raw, e.g. a classmethod object)."""
    key = (id(owner), attr)
    if key not in _originals:
        # An instance attribute (set in __init__) has no class-level original.
        _originals[key] = inspect.getattr_static(owner, attr, None)
    return _originals[key]


def install(owner: Any, attr: str, new: Any) -> None:
    """Set ``owner.attr`` to ``new``, having kept moto's original first (:func:`moto_original`)."""
    moto_original(owner, attr)
    setattr(owner, attr, new)


def rewrite_method(cls: type, name: str, replacements: list[tuple[str, str]]) -> Callable[..., Any]:
    """Recompile moto's ``cls.name`` with source substitutions (asserting each one matches).

    Used where the fix is one expression inside a long method, so we do not copy moto's code.
    """
    func = moto_original(cls, name)
    source = textwrap.dedent(inspect.getsource(func))
    for old, new in replacements:
        if old not in source:
            raise PatchError(f"{cls.__name__}.{name}: expected source text not found: {old!r}")
        source = source.replace(old, new)
    module = inspect.getmodule(func)
    namespace: dict[str, Any] = {}
    exec(compile(source, inspect.getsourcefile(func) or "<moto>", "exec"), vars(module), namespace)
    return namespace[name]


def apply_all() -> None:
    """Check the moto version and every target, then apply each patch once (idempotent)."""
    import moto

    if moto.__version__ != MOTO_VERSION:
        raise PatchError(
            f"streamline's moto patches were written for moto {MOTO_VERSION}, "
            f"but moto {moto.__version__} is installed; pin moto[server]=={MOTO_VERSION}"
        )
    with _apply_lock:
        for patch in PATCHES:
            if patch.moto_version != moto.__version__:
                raise PatchError(f"patch {patch.name} targets moto {patch.moto_version}")
            for target in patch.targets:
                try:
                    owner, attr = _resolve(target)
                    inspect.getattr_static(owner, attr)
                except (ImportError, AttributeError) as exc:
                    raise PatchError(
                        f"patch {patch.name}: moto {moto.__version__} has no {target} ({exc})"
                    ) from None
        for patch in PATCHES:
            if patch.name not in _applied:
                patch.apply()
                _applied.add(patch.name)


def applied() -> list[str]:
    """Names of the patches applied in this process."""
    return [p.name for p in PATCHES if p.name in _applied]


def request_header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """The request header ``name`` as a string, or None."""
    if not headers:
        return None
    # werkzeug Headers are case-insensitive, but internal callers pass plain dicts.
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return None if value is None else str(value)


# Template properties moto's CloudFormation stores wrongly (see streamline.local.properties).


def cfn_wrapper(owner: Any, adjust: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Wrap ``owner.create_from_cloudformation_json`` so it sees ``adjust``ed properties."""
    create = moto_original(owner, "create_from_cloudformation_json").__func__

    def create_from_cloudformation_json(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        properties = dict(cloudformation_json.get("Properties") or {})
        adjusted = {**cloudformation_json, "Properties": adjust(properties)}
        return create(cls, resource_name, adjusted, account_id, region_name, **kwargs)

    install(owner, "create_from_cloudformation_json", classmethod(create_from_cloudformation_json))
