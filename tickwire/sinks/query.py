"""SQL over a recorded dataset with DuckDB: one view per table, duplicates removed.

    >>> import tickwire
    >>> tickwire.query("SELECT symbol, count(*) FROM trades GROUP BY 1", data="./data")

Every view has the files' columns, the ``venue`` and ``date`` partition columns, two
computed timestamps, ``recv_time`` and ``exch_time`` (``TIMESTAMP_NS``, UTC), from
``recv_ns`` / ``exch_ns``, and a ``DOUBLE`` twin ``<name>_f`` of every decimal-string column
(``price_f``, ``size_f``, ``bid_price_f``...: floats without a cast; the strings stay exact). A table with no file yet is an empty view with the right
columns, so queries do not fail on a young dataset. What a running recorder flushed is
there: it publishes a part at every flush.

Duplicates (the same trade, book message or state recorded twice: two recorders, a re-run
into the same folder, a venue re-sending after a reconnect) are removed: rows of one identity
(:func:`tickwire.sinks.dataset.identity_sql`) keep the first received. A partition whose files
all come from one source (one recorder, or one ``tickwire compact``) cannot hold two rows of
one identity and is read as it is; the others go through a window over their identity. The
views are planned when the connection is made (:func:`connect`): a long-lived connection sees
new files and new partitions (deduplicated), but a partition that gains a second source later
is deduplicated only by a new connection (``tickwire.query()`` makes one per call). The
``<table>_all`` views show every row as stored. Tables ``tickwire derive`` wrote into
``DATA/derived`` are views named as their view (``snapshot10_1s``, ``bars1m``, ...).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from tickwire.sinks.dataset import dedup_clause, partitions
from tickwire.sinks.schema import KINDS, STRS, decimal_columns, duckdb_type


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def has_files(data: str | os.PathLike, kind: str) -> bool:
    return bool(partitions(data, kind))


def _read(glob: str | list[str]) -> str:
    src = _sql_str(glob) if isinstance(glob, str) else "[" + ", ".join(_sql_str(g) for g in glob) + "]"
    return (f"read_parquet({src}, hive_partitioning = true, union_by_name = true, "
            "hive_types = {'venue': VARCHAR, 'date': DATE})")


def _empty(kind: str) -> str:
    k = KINDS[kind]
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in k.columns)
    return f"SELECT {cols}, CAST(NULL AS VARCHAR) AS venue, CAST(NULL AS DATE) AS date WHERE false"


def _computed(kind: str) -> str:
    """The columns a view adds to the files': ``recv_time``/``exch_time`` and a DOUBLE twin
    ``<name>_f`` of every decimal-string column (``DOUBLE[]`` of a list; null where a value is
    not a number). Computed only when a query reads them."""
    cols = ["make_timestamp_ns(recv_ns) AS recv_time", "make_timestamp_ns(exch_ns) AS exch_time"]
    for c in decimal_columns(KINDS[kind]):
        cols.append(f"TRY_CAST({c.name} AS {'DOUBLE[]' if c.type == STRS else 'DOUBLE'}) AS {c.name}_f")
    return ", ".join(cols)


def view_sql(data: str | os.PathLike, kind: str, dedup: bool = True, listed: bool = False) -> str:
    """The ``CREATE VIEW`` statement of one table (``dedup=False``: the ``<table>_all`` view).
    ``listed``: read the files listed now, not globs (see :func:`connect`)."""
    parts = partitions(data, kind)
    name = kind if dedup else f"{kind}_all"
    if not parts:
        return f"CREATE OR REPLACE VIEW {name} AS SELECT *, {_computed(kind)} FROM ({_empty(kind)})"
    if listed:
        files = [str(f.path.resolve()) for p in parts for f in p.files]
        if not dedup:
            return f"CREATE OR REPLACE VIEW {name} AS SELECT *, {_computed(kind)} FROM {_read(files)}"
        clean = [str(f.path.resolve()) for p in parts if p.clean for f in p.files]
        rest = [str(f.path.resolve()) for p in parts if not p.clean for f in p.files]
        body = " UNION ALL BY NAME ".join(
            ([f"SELECT * FROM {_read(clean)}"] if clean else []) +
            ([f"SELECT * FROM {_read(rest)} {dedup_clause(kind)}"] if rest else []))
        return f"CREATE OR REPLACE VIEW {name} AS SELECT *, {_computed(kind)} FROM ({body})"
    src = _read(str(Path(data).resolve() / kind / "**" / "*.parquet"))
    if not dedup:
        return f"CREATE OR REPLACE VIEW {name} AS SELECT *, {_computed(kind)} FROM {src}"
    clean = [p for p in parts if p.clean]
    if not clean:
        body = f"SELECT * FROM {src} {dedup_clause(kind)}"
    else:
        # clean partitions: read as they are, one glob per directory (no filter: counts come from
        # the files' metadata); everything else (including partitions made after this view): the
        # window over the identity. The hive filter prunes the clean ones' files from that scan.
        keys = ", ".join(f"({_sql_str(p.venue)}, DATE {_sql_str(p.date)})" for p in clean)
        body = (f"SELECT * FROM {_read([str(p.path.resolve() / '*.parquet') for p in clean])} UNION ALL BY NAME "
                f"SELECT * FROM {src} WHERE (venue, date) NOT IN ({keys}) {dedup_clause(kind)}")
    return f"CREATE OR REPLACE VIEW {name} AS SELECT *, {_computed(kind)} FROM ({body})"


def connect(data: str | os.PathLike = "./data", con: Any = None, listed: bool = False) -> Any:
    """A DuckDB connection with one view per table of the dataset at ``data`` (duplicates
    removed), and ``<table>_all`` views of every stored row.

    By default the views read globs: a long-lived connection sees files published later. But
    DuckDB lists a directory and then looks its entries up by path, so a query that runs while
    a partition is swapped (a recorder's roll, ``tickwire compact``) can silently miss that
    partition's files. ``listed=True`` reads the files listed now instead (a consistent set:
    a swap replaces a partition directory in one rename); a file swapped away before DuckDB
    opens it is an error to retry, never a silent omission (:func:`run` does that)."""
    import duckdb

    if not Path(data).is_dir():
        raise FileNotFoundError(f"no dataset at {data} (record one with `tickwire record ... --out {data}`)")
    con = con or duckdb.connect()
    for kind in KINDS:
        con.execute(view_sql(data, kind, listed=listed))
        con.execute(view_sql(data, kind, dedup=False, listed=listed))
    for sql in derived_views_sql(data, listed=listed):
        con.execute(sql)
    return con


DERIVED_DIR = "derived"


def derived_views_sql(data: str | os.PathLike, listed: bool = False) -> list[str]:
    """A view per table ``tickwire derive`` wrote into ``DATA/derived/<view>`` (``snapshot10_1s``,
    ``quotes``, ``"bars0.5vol"``...), named as the view, with ``recv_time``/``exch_time``. Its
    files are replaced whole by the next ``derive`` run: no duplicates to remove."""
    base = Path(data) / DERIVED_DIR
    try:
        views = sorted((e for e in os.scandir(base) if e.is_dir() and not e.name.startswith(("_", "."))),
                       key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    taken = set(KINDS) | {f"{k}_all" for k in KINDS}
    out = []
    for e in views:
        files = sorted(str(Path(d, n).resolve()) for d, _, names in os.walk(e.path)
                       for n in names if n.endswith(".parquet") and not n.startswith(("_", ".")))
        if not files or e.name in taken:
            continue
        src = _read(files) if listed else _read(str(Path(e.path).resolve() / "**" / "*.parquet"))
        name = '"' + e.name.replace('"', '""') + '"'
        out.append(f"CREATE OR REPLACE VIEW {name} AS SELECT *, make_timestamp_ns(recv_ns) AS recv_time, "
                   f"make_timestamp_ns(exch_ns) AS exch_time FROM {src}")
    return out


SWAP_RETRIES = 5


def run(sql: str, data: str | os.PathLike, fetch: Callable[[Any], Any]) -> Any:
    """``fetch(relation)`` of ``sql`` (``None`` for a statement without a result) over the files
    of the dataset listed now; again with a fresh listing when a partition was swapped while
    the query ran (a file listed is gone), at most SWAP_RETRIES times."""
    import duckdb

    for attempt in range(SWAP_RETRIES + 1):
        con = duckdb.connect()
        try:
            return fetch(connect(data, con, listed=True).sql(sql))
        except duckdb.IOException as e:
            if attempt == SWAP_RETRIES or not any(m in str(e) for m in _SWAPPED):
                raise
        finally:
            con.close()
        time.sleep(0.02 * (attempt + 1))  # (a compaction swaps partition after partition)
    raise AssertionError("unreachable")


_SWAPPED = ("Cannot open file", "No such file", "No files found")


def query(sql: str, data: str | os.PathLike = "./data") -> Any:
    """Run ``sql`` over the dataset at ``data``; the result as a ``pandas.DataFrame``."""

    def fetch(rel: Any) -> Any:
        if rel is None:
            import pandas as pd

            return pd.DataFrame()
        return rel.df()

    return run(sql, data, fetch)
