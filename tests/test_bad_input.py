"""Bad prices/sizes and frames that make a dialect raise: never part of a valid book, never an
exception out of a session (live or offline), always a VenueError (and for a book a Gap and a
resync). Each case was observed: "1,5", "", "abc" accepted; NaN the best bid; negative sizes
kept; "0E-8" deleting in snapshots but not in deltas; RecursionError and others escaping."""

from __future__ import annotations

import json

import pytest

from tickwire.book import BadLevel, Book, _py_kind
from tickwire.decode import decoder_session
from tickwire.model import BookUpdate, Gap, VenueError
from tickwire.net import hot
from tickwire.venues import parse
from tickwire.venues.base import SessionOptions
from tickwire.venues import get_venue

from .contract import events, sends

KINDS = [c.level_kind for c in [hot.compiled] if c is not None] + [_py_kind]
BAD = ["1,5", "", "abc", "NaN", "nan", "-1", "inf", "1e", "1.2.3", " 1", "0x10", None, 5]


@pytest.mark.parametrize("kind", KINDS)
def test_level_kind_both_twins(kind):
    for good in ("1", "1.5", ".5", "1.", "65000.10", "1e-8", "2E+3"):
        assert kind(good) == 1, good
    for zero in ("0", "0.0", "0.00000000", "0E-8", "0e+3", ".0", "0."):
        assert kind(zero) == 0, zero
    for bad in BAD:
        assert kind(bad) == -1, bad


@pytest.mark.parametrize("eager", [False, True], ids=["dict-mode", "sorted-mode"])
@pytest.mark.parametrize("bad", BAD)
def test_a_bad_level_never_enters_a_valid_book(eager, bad):
    b = Book("x", "X")
    b.apply_snapshot([("100", "1"), ("99", "2")], [("101", "1")], 1)
    if eager:
        for _ in range(5):
            b.apply_delta([("98", "1")], [], 2)
            b.best_bid()
        assert b.bids_side.eager
    with pytest.raises(BadLevel):
        b.apply_delta([("97", "1"), ("96", bad)], [], 3)
    assert not b.valid
    with pytest.raises(BadLevel):
        b.apply_snapshot([(bad, "1")], [], 4)
    assert not b.valid
    b.apply_snapshot([("100", "1")], [("101", "0E-8"), ("102", "3")], 5)  # zero in any spelling
    assert b.valid and b.asks == {"102": "3"} and b.best_bid() == ("100", "1")


def test_zero_deletes_in_deltas_in_every_spelling():
    b = Book()
    b.apply_snapshot([("100", "1"), ("99", "1"), ("98", "1")], [], 1)
    b.apply_delta([("100", "0E-8"), ("99", "0.000"), ("98", "0e0")], [], 2)
    assert b.bids == {} and b.valid


def _bybit_session():
    v = get_venue("bybit")
    s = v.new_session("public/linear", "t#1", SessionOptions(timers=v.timers()))
    s.add([parse("bybit.linear:orderbook.50:BTCUSDT")])
    s.start(1)
    sends(s)
    return s


def _book(typ, u, b, a, compact=True):
    return json.dumps({"topic": "orderbook.50.BTCUSDT", "type": typ, "ts": 1, "cts": 1,
                       "data": {"s": "BTCUSDT", "b": b, "a": a, "u": u, "seq": u}},
                      separators=(",", ":") if compact else None).encode()


@pytest.mark.parametrize("compact", [True, False], ids=["inline-hot-path", "generic-path"])
def test_a_bad_delta_is_a_gap_and_a_resync(compact):
    s = _bybit_session()
    _b = _book
    _book_ = lambda *a: _b(*a, compact=compact)  # noqa: E731
    (snap,) = s.decode_safely(_book_("snapshot", 1, [["100", "1"]], [["101", "1"]]), False, 10)
    assert isinstance(snap, BookUpdate) and snap.book.valid
    out = s.decode_safely(_book_("delta", 2, [["100", "NaN"]], []), False, 20)
    assert [type(e) for e in out] == [VenueError, Gap]
    assert out[0].code == "bad-level" and not snap.book.valid
    s.on_timer(30)
    assert [json.loads(x.payload)["op"] for x in sends(s) if x.payload[:1] == b"{"][-2:] == ["unsubscribe", "subscribe"]
    assert s.decode_safely(_book_("delta", 3, [["100", "2"]], []), False, 40) == []  # waits for the snapshot
    (snap2, resynced) = s.decode_safely(_book_("snapshot", 9, [["100", "3"]], [["101", "1"]]), False, 50)
    assert snap2.book.valid and type(resynced).__name__ == "Resynced"


@pytest.mark.parametrize("venue, frame", [
    ("bybit.linear", b"[" * 5000 + b"]" * 5000),
    ("okx", b'{"arg":' * 3000 + b"1" + b"}" * 3000),
    ("bge", b"[" * 100000),
    ("bybit.option", b'{"success":true,"ret_msg":"","conn_id":"x","type":"COMMAND_RESP","data":{"successTopics":5}}'),
    ("okx", b'{"event":"channel-conn-count","channel":"books","connCount":"lots","connId":"a"}'),
])
def test_frames_that_used_to_raise_are_venue_errors_offline(venue, frame):
    s = decoder_session(venue)
    out = s.decode_safely(frame, False, 1)
    assert all(isinstance(e, VenueError) for e in out)


def test_a_resync_whose_snapshot_never_comes_is_retried_with_backoff_and_reported():
    """Bug: after a Gap the stream was resubscribed once; a lost snapshot left it dead silently."""
    s = _bybit_session()
    s.decode_safely(_book("snapshot", 1, [["100", "1"]], [["101", "1"]]), False, 10)
    (gap,) = s.decode_safely(_book("delta", 5, [["100", "2"]], []), False, 20)  # u jumped: Gap
    assert isinstance(gap, Gap)
    s.on_timer(30)
    ops = [json.loads(x.payload)["op"] for x in sends(s)]
    assert ops == ["unsubscribe", "subscribe"]
    t = 30
    retries = []
    for _ in range(4):  # the snapshot never comes
        for _ in range(400):
            t += 100_000_000
            s.on_timer(t)
            frames = [json.loads(x.payload)["op"] for x in sends(s) if b'"ping"' not in x.payload]
            if "subscribe" in frames:
                retries.append(t)
                break
            s.pong_pending = False
    assert len(retries) == 4
    gaps = [e for e in events(s) if isinstance(e, Gap)]
    assert len(gaps) == 4 and all("still broken" in g.reason for g in gaps)
    waits = [b - a for a, b in zip(retries, retries[1:])]
    assert waits == sorted(waits) and waits[-1] > waits[0]  # backoff grows
    assert s.broken() == ["bybit.linear:orderbook.50:BTCUSDT"]
    out = s.decode_safely(_book("snapshot", 50, [["100", "3"]], [["101", "1"]]), False, t + 1)
    assert [type(e).__name__ for e in out] == ["BookUpdate", "Resynced"] and s.broken() == []


def test_okx_falls_back_to_rest_after_a_gap_when_no_ws_snapshot_comes():
    """Bug: OKX skipped its REST fallback once a gap was reported."""
    from .contract import FetchSnapshot, actions

    v = get_venue("okx")
    s = v.new_session("public", "t#1", SessionOptions(timers=v.timers(), extra={"snapshot_wait_s": 0.5}))
    s.add([parse("okx:books:BTC-USDT")])
    s.start(1)
    sends(s)

    def upd(prev, seq, action="update"):
        return json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action,
                           "data": [{"bids": [[str(seq), "1", "0", "1"]], "asks": [], "ts": "1", "checksum": 0,
                                     "prevSeqId": prev, "seqId": seq}]}, separators=(",", ":")).encode()

    s.decode_safely(upd(-1, 10, "snapshot"), False, 10)
    (gap,) = s.decode_safely(upd(15, 20), False, 20)
    assert isinstance(gap, Gap)
    s.on_timer(30)
    sends(s)  # the resync went out; the venue answers with deltas only
    for seq, t in ((25, 40), (30, 50)):
        s.decode_safely(upd(seq - 5, seq), False, t)
    s.on_timer(int(1e9))
    (req,) = actions(s, FetchSnapshot)
    body = {"code": "0", "data": [{"bids": [["25", "1", "0", "1"]], "asks": [], "ts": "1", "seqId": 25}]}
    out = s.on_rest_snapshot(req.topic, body, int(2e9))
    assert [type(e).__name__ for e in out] == ["BookUpdate", "Resynced", "BookUpdate"]
    assert out[-1].seq == 30 and out[-1].book.valid


@pytest.mark.parametrize("venue", ["okx", "bge"])
def test_a_compression_bomb_is_refused_not_inflated(venue):
    """Bug: a 398 KB gzip/deflate frame became 400 MB in memory."""
    import gzip
    import zlib

    big = b'{"x":"' + b"0" * (200 * 1024 * 1024) + b'"}'
    if venue == "bge":
        frame = gzip.compress(big, 9)
    else:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        frame = c.compress(big) + c.flush()
    assert len(frame) < 1_000_000
    s = decoder_session(venue)
    (err,) = s.decode_safely(frame, True, 1)
    assert isinstance(err, VenueError) and "more than" in err.msg
