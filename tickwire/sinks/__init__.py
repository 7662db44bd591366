"""Sinks: where events go. Parquet dataset + raw frame archive (:class:`Recorder`), queries,
``compact`` and ``verify``.

Import-light: pyarrow and duckdb are loaded only when a recorder writes or a query runs.
See ``docs/recording.md`` for the layout, schemas and durability policy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Recorder", "RecorderError", "RecorderStats", "recover", "query", "connect", "read_archive",
           "decode_archive", "KINDS", "compact", "verify"]

_LAZY = {
    "Recorder": "tickwire.sinks.recorder",
    "RecorderStats": "tickwire.sinks.recorder",
    "RecorderError": "tickwire.sinks.writer",
    "recover": "tickwire.sinks.writer",
    "query": "tickwire.sinks.query",
    "connect": "tickwire.sinks.query",
    "read_archive": "tickwire.sinks.archive",
    "decode_archive": "tickwire.sinks.archive",
    "KINDS": "tickwire.sinks.schema",
    "compact": "tickwire.sinks.dataset",
    "verify": "tickwire.sinks.verify",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'tickwire.sinks' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
