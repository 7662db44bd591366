"""`tickwire demo`: every simulated venue recorded into a dataset that `tickwire query` reads."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from rich.console import Console

from tickwire import model as m
from tickwire.book import Book
from tickwire.sinks.dashboard import Dashboard
from tickwire.cli.demo import DEFAULT_STREAMS, available_venues


def tw(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "tickwire.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_demo_records_every_venue_then_query_reads_it(tmp_path):
    out = tmp_path / "data"
    res = tw("demo", "--duration", "5", "--no-dashboard", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    text = res.stdout
    assert "\x1b[" not in text  # not a terminal: plain lines, no control codes
    assert "wrote " in text and "raw archive" in text and "example query" in text
    assert set(available_venues()) == {"bybit", "okx", "okxdex", "bge"}
    q = tw("query", "--data", str(out), "--format", "json", "select count(*) AS n from trades")
    assert q.returncode == 0, q.stderr
    assert json.loads(q.stdout.splitlines()[0])["n"] > 0
    q = tw("query", "--data", str(out), "--format", "json",
           "select venue, count(*) AS n from trades group by venue order by venue")
    assert [json.loads(x)["venue"] for x in q.stdout.splitlines()] == ["bge", "bybit", "okx"]
    q = tw("query", "--data", str(out), "--format", "json", "select count(*) AS n from dex_prices")
    assert json.loads(q.stdout.splitlines()[0])["n"] > 0
    # the example query's result is printed: one row per venue/market/symbol with trades
    assert "BTC-USDT" in text and "BTCUSDT" in text and "BTC_USDT" in text
    assert (out / "raw").is_dir()


def test_dashboard_rows_and_rendering():
    specs = DEFAULT_STREAMS["bybit"][:2] + ["okx:books:BTC-USDT"]
    dash = Dashboard(specs=specs, title="t")
    book = Book("okx", "BTC-USDT")
    book.apply_snapshot([["65000.1", "1"]], [["65000.2", "2"]], 1)
    ns = 1_800_000_000_000_000_000
    dash.add(m.BookUpdate(venue="bybit", stream=specs[0], exch_ns=ns, recv_ns=ns + 2_000_000, book=None))
    dash.add(m.Trade(venue="bybit", stream=specs[1], exch_ns=ns, recv_ns=ns + 4_000_000, price="65000.10",
                     size="0.1", side="buy"))
    dash.add(m.Gap(venue="okx", stream="okx:books:BTC-USDT", recv_ns=ns))
    dash.sample()
    rows = {r[0]: r for r in dash.rows()}
    assert rows[specs[1]][3] == "65000.10"           # last price, exact string
    assert rows[specs[1]][8] == 4.0                  # p50 exch->recv, ms
    assert rows["okx:books:BTC-USDT"][7] == 1        # gaps
    assert dash.events == 3 and "3 events" in dash.line() and "gaps 1" in dash.line()
    for width in (80, 140):
        con = Console(file=io.StringIO(), width=width, record=True)
        con.print(dash.table("caption", width))
        shown = con.export_text()
        assert "okx:books:BTC-USDT" in shown           # no emoji markup (":books:")
        assert max(len(x) for x in shown.splitlines()) <= width
