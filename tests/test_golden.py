"""Golden events: every recorded capture, decoded, compared field by field with a reviewed file.

For each ``*.jsonl`` in ``TICKWIRE_RECORDED_DIR`` there is ``tests/golden/<stem>.events.jsonl``:
one JSON object per decoded event, in order, with ``src_line`` (the capture line that produced
it), ``type`` and every field of the event except ``recv_ns`` (the local clock at decode time).
``BookUpdate.book`` (the live book object) is replaced by a summary of the book after the frame:
``valid``, ``seq``, best bid and ask, level counts per side and a digest of every level.

Regenerate (then review the diff): ``pytest tests/test_golden.py --regen-golden`` or
``TICKWIRE_REGEN_GOLDEN=1``. Without either, a missing golden file fails. How the files were
reviewed: tests/golden/README.md.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterator, Union

import msgspec
import pytest

from tickwire.decode import decode_lines, decoder_session
from tickwire.model import Event, to_dict

from .conftest import RECORDED, recorded

GOLDEN = Path(__file__).resolve().parent / "golden"
SUFFIX = ".events.jsonl"
MAX_GOLDEN_BYTES = 1_500_000  # beyond this a capture needs a compact golden form (see README)

Segments = list[tuple[int, int, str]]

# Capture file -> how it is decoded. A venue spec (``decode_lines(spec, ...)``) when the file is
# one recording; otherwise ``[(first_line, last_line, spec), ...]`` (1-based, inclusive, together
# covering every line): one decoder session per segment, as each recording was its own
# connection, and each decoded with the spec of the endpoint it came from (the spec sets
# ``market`` on the events). A file here with no entry fails test_golden.
CAPTURES: dict[str, Union[str, Segments]] = {
    # OKX v5 public, one recording of 2022-05-13 (books with the legacy checksum, trades, tickers).
    "okx_books_cryptofeed.jsonl": "okx",
    "okx_trades_cryptofeed.jsonl": "okx",
    "okx_tickers_cryptofeed.jsonl": "okx",
    # ccxt: recordings joined one after the other, each opening with its own ack (connId differs).
    "okx_books5_ccxt.jsonl": [(1, 3, "okx"), (4, 6, "okx")],                    # SWAP, then SPOT
    "okx_trades_ccxt.jsonl": [(1, 3, "okx"), (4, 6, "okx")],                    # SWAP, then SPOT
    "okx_tickers_ccxt.jsonl": [(1, 3, "okx"), (4, 6, "okx"), (7, 9, "okx")],    # SPOT, SWAP, SPOT
    # Bybit's own ob500 archive of XRPUSDT (a USDT perpetual: linear); 500 is retired, adopted as is.
    "bybit_orderbook.500_nautilus.jsonl": "bybit.linear",
    # Spot orderbook.1 (ack with ret_msg "subscribe", `ts` before `type`), then linear orderbook.50.
    "bybit_orderbook_ccxt.jsonl": [(1, 3, "bybit.spot"), (4, 5, "bybit.linear")],
    # Linear (ack ret_msg "", UUID trade ids), then spot (ack ret_msg "subscribe", numeric ids).
    "bybit_publicTrade_ccxt.jsonl": [(1, 3, "bybit.linear"), (4, 6, "bybit.spot")],
    # Linear snapshot + delta (funding fields), then spot: ack and 2 snapshots (usdIndexPrice).
    "bybit_tickers_ccxt.jsonl": [(1, 2, "bybit.linear"), (3, 5, "bybit.spot")],
    # tardis 2023: BTCUSD is inverse (sizes in contracts), LTCUSDT linear.
    "bybit_publicTrade_tardis.jsonl": [(1, 1, "bybit.inverse"), (2, 2, "bybit.linear")],
    # tardis 2023: BTCUSD perp and BTCUSDU23 dated future are both on the inverse endpoint; BTCUSDT linear.
    "bybit_tickers_tardis.jsonl": [(1, 4, "bybit.inverse"), (5, 5, "bybit.linear")],
    # tardis: lines 1-2 recorded 2023-04-05 (snapshot, delta u+1); line 3 is a lone delta
    # recorded 2023-04-21 (u 1188472, a different run), kept as a recording of its own.
    "bybit_orderbook.1_tardis.jsonl": [(1, 2, "bybit.linear"), (3, 3, "bybit.linear")],
    # Wrapped documentation examples and single real frames from many sources (client frames
    # are skipped by decode). Runs of lines by endpoint; the private control frames among 1-21
    # go through the linear session (they yield nothing but the auth failure, line 8); the
    # private pushes (34-38: order, execution.fast, position, wallet, execution.spot) and the
    # trade endpoint's replies (39-41, retCode style: nothing) through the private one.
    "bybit_examples.jsonl": [
        (1, 24, "bybit.linear"),  # control frames of every category; linear books 22-24
        (25, 25, "bybit.spot"),   # 2023 spot orderbook.1 delta
        (26, 26, "bybit.linear"),
        (27, 28, "bybit.spot"),   # spot publicTrade, spot tickers
        (29, 32, "bybit.linear"),  # tickers delta and snapshot, kline, allLiquidation
        (33, 33, "bybit.option"),  # option ticker
        (34, 41, "bybit.private"),  # private pushes and order-entry frames
    ],
    # OKX v5 (docs, cryptofeed, ccxt, and a close frame from /ws/v5/private written as text),
    # then the OKX DEX market WS examples.
    "okx_examples.jsonl": [(1, 29, "okx"), (30, 34, "okxdex")],
    # BG Exchange: one wire format for public and private (bge.decode_endpoint).
    "bge_examples.jsonl": "bge",
}


def segments(name: str, n_lines: int) -> Segments:
    entry = CAPTURES[name]
    segs = [(1, n_lines, entry)] if isinstance(entry, str) else list(entry)
    expect = 1
    for first, last, _ in segs:
        assert first == expect and last >= first, f"{name}: segments {segs} must run on from line {expect}"
        expect = last + 1
    assert expect == n_lines + 1, (f"{name}: segments {segs} cover lines 1-{expect - 1}, the file has "
                                   f"{n_lines}: update CAPTURES")
    return segs


# --------------------------------------------------------------------------- records


def book_summary(book: Any) -> dict[str, Any] | None:
    """The book after the frame: stable, small, and what users read (best levels, validity)."""
    if book is None:
        return None
    bid, ask = book.best_bid(), book.best_ask()
    levels = [sorted(book.bids.items()), sorted(book.asks.items())]
    digest = hashlib.sha256(json.dumps(levels, separators=(",", ":")).encode()).hexdigest()[:16]
    return {"valid": book.valid, "seq": book.seq, "bid": list(bid) if bid else None,
            "ask": list(ask) if ask else None, "levels": [len(book.bids), len(book.asks)], "digest": digest}


def record(ev: Event, line: int) -> dict[str, Any]:
    book = getattr(ev, "book", None)
    d = to_dict(msgspec.structs.replace(ev, book=None) if book is not None else ev)
    del d["recv_ns"]
    if "book" in d:
        d["book"] = book_summary(book)
    return {"src_line": line, **d}


def decode_capture(name: str) -> Iterator[dict[str, Any]]:
    """Decoded events of one capture as golden records (book summaries taken after each frame)."""
    lines = recorded(name).read_bytes().splitlines()
    for first, last, spec in segments(name, len(lines)):
        session = decoder_session(spec)
        for i in range(first, last + 1):
            for ev in decode_lines(spec, [lines[i - 1]], session=session):
                yield record(ev, i)


def golden_path(name: str) -> Path:
    return GOLDEN / (Path(name).stem + SUFFIX)


def dump(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records)


# --------------------------------------------------------------------------- comparison


def first_difference(want: Any, got: Any, path: str) -> tuple[str, Any, Any] | None:
    if isinstance(want, dict) and isinstance(got, dict):
        for k in [*want, *(k for k in got if k not in want)]:
            if k not in got:
                return f"{path}.{k}", want[k], "<missing>"
            if k not in want:
                return f"{path}.{k}", "<not in golden>", got[k]
            d = first_difference(want[k], got[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(want, list) and isinstance(got, list):
        for i, (w, g) in enumerate(zip(want, got)):
            d = first_difference(w, g, f"{path}[{i}]")
            if d:
                return d
        if len(want) != len(got):
            return f"{path} (length)", len(want), len(got)
        return None
    if type(want) is not type(got) or want != got:
        return path, want, got
    return None


def _short(v: Any, n: int = 200) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def mismatches(name: str, want: list[dict], got: list[dict]) -> list[str]:
    out = []
    for i, (w, g) in enumerate(zip(want, got)):
        d = first_difference(w, g, "")
        if d:
            field, a, b = d
            out.append(f"{name}: event {i} (capture line {w.get('src_line')}, {w.get('type')}): field "
                       f"{field.lstrip('.')}: golden {_short(a)} != decoded {_short(b)}")
    if len(want) != len(got):
        more, what = (want, "golden only") if len(want) > len(got) else (got, "decoded only")
        n = min(len(want), len(got))
        out.append(f"{name}: golden has {len(want)} events, decoded {len(got)}; first {what}: event {n} "
                   f"{_short(more[n], 300)}")
    return out


# --------------------------------------------------------------------------- tests


def _names() -> list[str]:
    on_disk = {p.name for p in RECORDED.glob("*.jsonl")} if RECORDED.is_dir() else set()
    return sorted(set(CAPTURES) | on_disk)


@pytest.mark.parametrize("name", _names())
def test_golden(name: str, regen_golden: bool) -> None:
    if RECORDED.is_dir() and not (RECORDED / name).exists():
        pytest.fail(f"{name} is in CAPTURES but not in {RECORDED}: remove its entry and its golden file")
    recorded(name)  # skips when the folder is absent
    if name not in CAPTURES:
        pytest.fail(f"{RECORDED / name} has no venue spec: add it to CAPTURES in tests/test_golden.py, "
                    f"then run with --regen-golden and review tests/golden/{Path(name).stem}{SUFFIX}")
    got = list(decode_capture(name))
    path = golden_path(name)
    if regen_golden:
        text = dump(got)
        assert len(text.encode()) <= MAX_GOLDEN_BYTES, (
            f"{path.name} would be {len(text.encode())} bytes: store a compact form (see tests/golden/README.md)")
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"no golden file {path} for {name}: run pytest tests/test_golden.py --regen-golden "
                    f"(or TICKWIRE_REGEN_GOLDEN=1) and review it")
    want = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    problems = mismatches(path.name, want, got)
    assert not problems, f"{len(problems)} mismatch(es):\n" + "\n".join(problems[:10])


def test_every_golden_file_belongs_to_a_mapped_capture() -> None:
    stale = [p.name for p in GOLDEN.glob("*" + SUFFIX) if p.name[: -len(SUFFIX)] + ".jsonl" not in CAPTURES]
    assert not stale, f"golden files without a CAPTURES entry: {stale}"


def test_the_comparison_names_file_event_field_and_both_values() -> None:
    want = [{"src_line": 3, "type": "Trade", "price": "1.5", "book": {"bid": ["1", "2"]}}]
    got = [{"src_line": 3, "type": "Trade", "price": "1.50", "book": {"bid": ["1", "2"]}}]
    (msg,) = mismatches("x.events.jsonl", want, got)
    assert msg == "x.events.jsonl: event 0 (capture line 3, Trade): field price: golden '1.5' != decoded '1.50'"
    got = [{**want[0], "book": {"bid": ["1", "3"]}}, want[0]]
    msgs = mismatches("x.events.jsonl", want, got)
    assert "field book.bid[1]: golden '2' != decoded '3'" in msgs[0]
    assert "golden has 1 events, decoded 2" in msgs[1]
    assert first_difference({"a": 1}, {"a": True}, "") == (".a", 1, True)  # no bool/int confusion
