"""The dashboard stays readable on an 80x24 terminal and says what its numbers are."""

from __future__ import annotations

from rich.console import Console

from tickwire import model as m
from tickwire.sinks.dashboard import Dashboard


def render(board: Dashboard, width: int, height: int, caption: str = "") -> list[str]:
    con = Console(width=width, height=height, record=True, color_system=None)
    con.print(board.table(caption, width, height))
    return con.export_text().rstrip("\n").splitlines()


def test_many_streams_fit_80x24_with_the_title_and_the_legend_visible():
    specs = [f"bybit.linear:orderbook.50:SYM{i:02d}USDT" for i in range(40)]
    board = Dashboard(None, specs, title="tickwire record -> ./data")
    for i, spec in enumerate(specs):
        for _ in range(i % 5):
            board.add(m.Trade("1.5", "2", "buy", str(i), 0, venue="bybit", market="linear", symbol=spec[-10:],
                              stream=spec, exch_ns=1, recv_ns=2_000_001))
    board.sample()
    lines = render(board, 80, 24, "3.0 s of 60 s | 1,234 rows written, 2 files | Ctrl-C stops")
    assert len(lines) <= 24
    assert lines[0].startswith("tickwire record")                # the header never scrolls off
    assert any("more streams" in x for x in lines)                # the rest is counted, not cut silently
    text = " ".join(" ".join(lines).split())
    assert "exchange time -> local receipt" in text and "contracts or coins" in text and "level rows" in text
    assert max(len(x) for x in lines) <= 80


def test_few_streams_are_all_shown():
    specs = ["okx:books:BTC-USDT", "okx:trades:BTC-USDT"]
    board = Dashboard(None, specs, title="t")
    lines = render(board, 120, 40)
    assert sum(s in " ".join(lines) for s in specs) == 2 and not any("more streams" in x for x in lines)
