"""Cold start (Lambda INIT): keep the cyclic garbage collector out of a handler's imports.

Importing a handler builds ~90,000 long-lived objects (boto3, Powertools, the X-Ray SDK,
pydantic and the schema) and almost no garbage (~700 unreachable objects). With the collector
running, its collections over that growing heap take about a tenth of INIT. So a handler module
calls :func:`begin` before its imports and :func:`end` after its module-level set-up; in
between the collector is paused, and :func:`end` moves everything built so far into the
permanent generation (:func:`gc.freeze`) before resuming it, so no later collection, during
invocations included, walks that heap again.

Both act once per process, since a cold start happens once; later calls (tests importing a
handler again, a second handler module in the same process) do nothing. If INIT fails between
the two, the collector stays paused, but Lambda discards an environment whose INIT failed.

Example (a handler module)::

    from orderflow import coldstart

    coldstart.begin()

    from orderflow.batch import Source, partial_batch_handler  # noqa: E402
    ...

    coldstart.end()
"""

from __future__ import annotations

import gc

__all__ = ["begin", "end"]

_state = {"begun": False, "paused": False}


def begin() -> None:
    """Pause the collector for this process's cold start (no-op after the first call)."""
    if _state["begun"]:
        return
    _state["begun"] = True
    if gc.isenabled():
        gc.disable()
        _state["paused"] = True


def end() -> None:
    """Freeze what INIT built and resume the collector, if :func:`begin` paused it."""
    if not _state["paused"]:
        return
    _state["paused"] = False
    gc.freeze()
    gc.enable()
