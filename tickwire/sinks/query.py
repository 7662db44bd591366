"""SQL over a recorded dataset with DuckDB: one view per table, over the Parquet globs.

    >>> import tickwire
    >>> tickwire.query("SELECT symbol, count(*) FROM trades GROUP BY 1", data="./data")

Every view has the files' columns, the ``venue`` and ``date`` partition columns, and two
computed timestamps, ``recv_time`` and ``exch_time`` (``TIMESTAMP_NS``, UTC), from
``recv_ns`` / ``exch_ns``. A table with no file yet is an empty view with the right
columns, so queries do not fail on a young dataset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tickwire.sinks.schema import KINDS, duckdb_type


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def has_files(data: str | os.PathLike, kind: str) -> bool:
    d = Path(data) / kind
    if not d.is_dir():
        return False
    return any(p.name.endswith(".parquet") and not p.name.startswith((".", "_")) for p in d.rglob("*.parquet"))


def view_sql(data: str | os.PathLike, kind: str) -> str:
    """The ``CREATE VIEW`` statement of one table."""
    k = KINDS[kind]
    if has_files(data, kind):
        glob = str(Path(data).resolve() / kind / "**" / "*.parquet")
        return (f"CREATE OR REPLACE VIEW {kind} AS SELECT *, make_timestamp_ns(recv_ns) AS recv_time, "
                f"make_timestamp_ns(exch_ns) AS exch_time FROM read_parquet({_sql_str(glob)}, "
                "hive_partitioning = true, union_by_name = true, "
                "hive_types = {'venue': VARCHAR, 'date': DATE})")
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in k.columns)
    return (f"CREATE OR REPLACE VIEW {kind} AS SELECT {cols}, CAST(NULL AS VARCHAR) AS venue, "
            "CAST(NULL AS DATE) AS date, CAST(NULL AS TIMESTAMP_NS) AS recv_time, "
            "CAST(NULL AS TIMESTAMP_NS) AS exch_time WHERE false")


def connect(data: str | os.PathLike = "./data", con: Any = None) -> Any:
    """A DuckDB connection with one view per table of the dataset at ``data``."""
    import duckdb

    if not Path(data).is_dir():
        raise FileNotFoundError(f"no dataset at {data} (record one with `tickwire record ... --out {data}`)")
    con = con or duckdb.connect()
    for kind in KINDS:
        con.execute(view_sql(data, kind))
    return con


def query(sql: str, data: str | os.PathLike = "./data") -> Any:
    """Run ``sql`` over the dataset at ``data``; the result as a ``pandas.DataFrame``."""
    con = connect(data)
    try:
        rel = con.sql(sql)
        if rel is None:
            import pandas as pd

            return pd.DataFrame()
        return rel.df()
    finally:
        con.close()
