"""Save moto's state on stop and load it on start, so a restarted local cloud loses nothing.

AWS keeps queues, streams, tables, functions and stacks whatever happens to the machines that
serve them; a local cloud that forgets everything when its process ends is no place to test
"a restart in the middle of a run". moto keeps all of it in plain Python objects (its
"backends"), so the whole graph is pickled in one go (one pickle keeps the objects that several
services share shared). The few members that cannot be pickled as they are get a reducer here:
locks and conditions come back new and unlocked (nothing holds them across a restart), and
the Lambda backend's weak ARN index comes back pointing at the same restored functions.

Event-source-mapping positions are already durable (``esm/checkpoints.py``), and in-flight SQS
messages keep their absolute visibility deadlines, so they come back when the timeout passes,
as on AWS. What is lost is what AWS would lose too: an invocation running at the moment of the
stop is not finished (its batch is delivered again).

Example::

    save(backends, state_dir / "moto-state.pickle")      # under backends.lock, engines stopped
    load(state_dir / "moto-state.pickle")                  # before the engines start
"""

from __future__ import annotations

import functools
import importlib
import io
import logging
import os
import pickle
import sys
import threading
import weakref
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = [
    "EVENTS_FILE",
    "STATE_FILE",
    "PersistenceError",
    "load",
    "load_events",
    "save",
    "save_events",
]

_log = logging.getLogger(__name__)

STATE_FILE = "moto-state.pickle"
EVENTS_FILE = "async-events.pickle"
#: Bumped when the saved layout changes; a file of another format is refused, not half-read.
_FORMAT = 1

_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class PersistenceError(RuntimeError):
    """The saved state cannot be written or read (named, never silently dropped)."""


def _new_lock(reentrant: bool) -> Any:
    return threading.RLock() if reentrant else threading.Lock()


def _weak_values(items: dict[Any, Any]) -> weakref.WeakValueDictionary[Any, Any]:
    return weakref.WeakValueDictionary(items)


def _default_dict(factory: Any, items: dict[Any, Any]) -> defaultdict[Any, Any]:
    return defaultdict(factory, items)


def _plain_factory(factory: Any) -> Any:
    """A picklable stand-in for a ``lambda: {}``-style factory (moto's defaultdicts use them)."""
    sample = factory()
    kind = type(sample)
    if isinstance(sample, defaultdict) and not sample:
        inner = sample.default_factory
        if getattr(inner, "__name__", "") == "<lambda>":
            inner = _plain_factory(inner)
        return functools.partial(defaultdict, inner)
    if kind in (dict, list, set, int, str) and sample == kind():
        return kind
    raise PersistenceError(f"cannot save a defaultdict whose factory makes {sample!r}")


def _default_dict_subclass(
    cls: type[defaultdict[Any, Any]], factory: Any, items: dict[Any, Any], state: dict[str, Any]
) -> defaultdict[Any, Any]:
    # Such subclasses (moto's ssm ParameterDict) take other __init__ arguments: bypass it.
    obj = cls.__new__(cls)
    defaultdict.__init__(obj, factory)
    obj.update(items)
    obj.__dict__.update(state)
    return obj


def _private_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(pem, password=None)


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        # moto's KMS (and IAM/ACM) keys hold cryptography key objects, which pickle refuses.
        if type(obj).__module__.startswith("cryptography.") and hasattr(obj, "private_bytes"):
            return _private_key, (_key_pem(obj),)
        if isinstance(obj, defaultdict):
            factory = obj.default_factory
            if getattr(factory, "__name__", "") == "<lambda>":
                factory = _plain_factory(factory)
            if type(obj) is not defaultdict:
                return _default_dict_subclass, (type(obj), factory, dict(obj), vars(obj))
            if factory is not obj.default_factory:
                return _default_dict, (factory, dict(obj))
            return NotImplemented
        if isinstance(obj, _LOCK_TYPES):
            return _new_lock, (isinstance(obj, type(threading.RLock())),)
        if isinstance(obj, weakref.WeakValueDictionary):
            return _weak_values, (dict(obj.items()),)
        if _is_execution(obj) and obj.exec_worker is not None:
            # The interpreter's worker (a thread) cannot be saved; its history can.
            return _restored_execution, (type(obj), _execution_state(obj))
        return NotImplemented


def _is_execution(obj: Any) -> bool:
    module = type(obj).__module__
    return module == "moto.stepfunctions.parser.backend.execution" and hasattr(obj, "exec_worker")


def _execution_state(execution: Any) -> dict[str, Any]:
    state = dict(vars(execution))
    try:
        state["restored_history"] = execution.to_history_output()
    except Exception:  # no history to keep (it never started)
        state["restored_history"] = None
    state["exec_worker"] = None
    return state


def _restored_execution(cls: type, state: dict[str, Any]) -> Any:
    execution: Any = object.__new__(cls)
    execution.__dict__.update(state)
    return execution


def _backend_dicts() -> dict[str, Any]:
    """Every moto BackendDict this process has imported, by ``module:attribute``.

    Only imported services can hold state; walking the modules (rather than moto's list of
    services) also finds backends a service keeps beside its main one.
    """
    from moto.core.base_backend import BackendDict

    found: dict[str, Any] = {}
    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("moto.") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, BackendDict):
                found.setdefault(f"{value.__class__.__module__}:{module_name}:{attr}", value)
    # The same BackendDict imported under several names is saved once.
    unique: dict[int, str] = {}
    for key, value in found.items():
        unique.setdefault(id(value), key)
    return {key: found[key] for key in unique.values()}


def save(path: Path, lock: Any, *, meta: dict[str, Any] | None = None) -> int:
    """Pickle every used service's state to ``path`` (atomically); returns the bytes written.

    ``meta`` travels with it (the durability layer's journal position and pending events).
    Hold no other lock; this takes ``lock`` (moto's) while it walks the objects.
    """
    buffer = io.BytesIO()
    with lock:
        state = {name: dict(backend) for name, backend in _backend_dicts().items()}
        try:
            _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
                {"format": _FORMAT, "state": state, "meta": meta or {}}
            )
        except Exception as exc:
            raise PersistenceError(f"cannot save the local cloud's state: {exc}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return buffer.tell()


def load(path: Path, lock: Any) -> dict[str, Any]:
    """Replace moto's state with the one saved at ``path``; returns the ``meta`` saved with it."""
    try:
        saved = pickle.loads(path.read_bytes())
    except Exception as exc:
        raise PersistenceError(
            f"cannot read the saved local cloud state {path} ({exc}); remove it to start empty"
        ) from exc
    if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
        raise PersistenceError(f"{path} was saved by another version; remove it to start empty")
    state: dict[str, dict[str, Any]] = saved["state"]
    with lock:
        for name in state:
            _, module_name, _ = name.split(":")
            importlib.import_module(module_name)
        backends = _backend_dicts()
        for name, accounts in state.items():
            backend = backends.get(name)
            if backend is None:
                raise PersistenceError(f"saved state has {name!r}, which moto lacks")
            backend.clear()
            backend.update(accounts)
    meta = saved.get("meta")
    return dict(meta) if isinstance(meta, dict) else {}


def save_events(state_dir: Path, events: list[Any]) -> None:
    """Save the asynchronous events not yet delivered (``AsyncEngine.pending``)."""
    path = Path(state_dir) / EVENTS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps({"format": _FORMAT, "events": events}))
    os.replace(tmp, path)


def load_events(state_dir: Path) -> list[Any]:
    """The saved asynchronous events (none when nothing was saved); the file is consumed."""
    path = Path(state_dir) / EVENTS_FILE
    if not path.exists():
        return []
    try:
        saved = pickle.loads(path.read_bytes())
    except Exception as exc:
        raise PersistenceError(f"cannot read {path} ({exc}); remove it to start empty") from exc
    path.unlink()
    if not isinstance(saved, dict) or saved.get("format") != _FORMAT:
        raise PersistenceError(f"{path} was saved by another version")
    return list(saved["events"])
