"""orderflow: the Streamline order pipeline's shared domain and runtime package.

Modules, one concern each: ``events`` (the one schema), ``errors`` (transient vs poison),
``logic`` (pure domain rules), ``batch`` (the partial-batch entry point every queue/stream
handler uses), ``observability``, ``settings``, ``dal`` (boto3 adapters), ``recovery`` (the
recovery workflow's pure core: reading and classifying failure records), ``recovery_contract``
(its state shapes and kinds), ``recovery_drain`` (failure messages into workflow items) and
``recovery_outcomes`` (what acknowledge deletes, the run's summary). Import from the
submodules; this package stays empty so importing one handler never pays for the others.
"""

from __future__ import annotations

__all__: list[str] = []
