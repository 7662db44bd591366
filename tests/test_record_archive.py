"""Raw frame archive: exact frames, connection markers, offline re-decoding, damage handling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tickwire import model as m
from tickwire.decode import decoder_session, frame_of_line
from tickwire.net.tap import SocketInfo
from tickwire.sinks import archive
from tickwire.sinks.recorder import Recorder

from .conftest import recorded

NS = 1_732_000_000_000_000_000
CONN = "bybit/public/linear#1"


def bybit_frames(*names):
    out = []
    for name in names:
        with open(recorded(name), "rb") as f:
            for line in f:
                fr = frame_of_line(line)
                if fr is not None:
                    out.append(fr)
    return out


class FakeFeed:
    """The part of a feed a recorder uses: add_tap / remove_tap."""

    def __init__(self):
        self.taps = []

    def add_tap(self, tap):
        self.taps.append(tap)

    def remove_tap(self, tap):
        self.taps.remove(tap)


def sock(n, opened_ns):
    return SocketInfo(id=f"{CONN}.{n}", conn=CONN, venue="bybit", endpoint="public/linear",
                      url="ws://127.0.0.1:9/v5/public/linear", streams=("bybit.linear:orderbook.1:BTCUSDT",),
                      opened_ns=opened_ns)


def test_frames_round_trip_exactly_with_markers(tmp_path):
    frames = [b'{"op":"pong"}', b'{"a":"line\nbreak"}', b"\x00\x01binary\n\xff", "{\"u\":\"é\"}".encode()]
    rec = Recorder(tmp_path)
    rec.connection(CONN, "bybit", "public/linear", "ws://x/v5/public/linear", ["bybit.linear:publicTrade:BTCUSDT"])
    for i, f in enumerate(frames):
        rec.raw(CONN, NS + i, f, binary=(i == 2))
    rec.add(m.Disconnected(venue="bybit", conn=CONN, recv_ns=NS + 10, reason="closed by venue: 1006"))
    rec.raw(CONN, NS + 20, b'{"op":"again"}', False)
    rec.close()
    files = archive.archive_files(tmp_path)
    assert len(files) == 1 and files[0].name.endswith(".twraw.zst")
    assert "raw/venue=bybit/date=2024-11-19" in str(files[0])
    recs = list(archive.read_archive(files[0]))
    assert [(r.kind, r.recv_ns - NS, r.conn) for r in recs] == [
        ("C", 0, CONN), ("T", 0, CONN), ("X", 1, CONN), ("B", 2, CONN), ("T", 3, CONN), ("D", 10, CONN),
        ("C", 20, CONN), ("T", 20, CONN), ("D", 20, CONN)]
    assert [r.data for r in recs if r.is_frame] == frames + [b'{"op":"again"}']
    assert [r.binary for r in recs if r.is_frame] == [False, False, True, False, False]
    c = recs[0].data
    assert (c["venue"], c["endpoint"], c["url"], c["subs"]) == ("bybit", "public/linear", "ws://x/v5/public/linear",
                                                                 ["bybit.linear:publicTrade:BTCUSDT"])
    assert recs[5].data["reason"] == "closed by venue: 1006"
    assert recs[-1].data["reason"] == "recording ended"
    assert recs[0].writer == rec.writer_id


def test_archive_decodes_offline_like_live_without_naming_the_venue(tmp_path):
    frames = bybit_frames("bybit_orderbook_ccxt.jsonl", "bybit_publicTrade_ccxt.jsonl", "bybit_tickers_ccxt.jsonl")
    live = decoder_session("bybit.linear")
    live.conn = CONN
    expected = []
    rec = Recorder(tmp_path)
    rec.connection(CONN, "bybit", "public/linear")
    for i, f in enumerate(frames):
        rec.raw(CONN, NS + i * 1000, f, False)
        expected.extend(live.on_frame(f, False, NS + i * 1000))
    rec.close()
    got = [e for e in archive.decode_archive(tmp_path / "raw") if not e.is_status]
    exp = [e for e in expected if not e.is_status]
    assert len(got) > 20
    import msgspec

    def same(e):  # `book` is the live book object (its final state); compare what the frames said
        return m.to_json(msgspec.structs.replace(e, book=None) if isinstance(e, m.BookUpdate) else e)

    assert [same(e) for e in got] == [same(e) for e in exp]
    kinds = {type(e).__name__ for e in got}
    assert {"Trade", "BookUpdate", "Ticker"} <= kinds
    # the CLI does the same from the archive path alone
    res = CliRunner().invoke(_app(), ["decode", str(tmp_path / "raw"), "--no-status"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == len(exp) and lines[0]["type"] == type(exp[0]).__name__
    # ... and rebuilds a Parquet dataset
    res = CliRunner().invoke(_app(), ["decode", str(tmp_path / "raw"), "--out", str(tmp_path / "re")])
    assert res.exit_code == 0, res.output
    from tickwire.sinks.query import query

    n = query("SELECT count(*) AS n FROM trades", data=tmp_path / "re")["n"][0]
    assert n == sum(isinstance(e, m.Trade) for e in exp)


def test_frame_lines_still_need_a_venue(tmp_path):
    p = tmp_path / "frames.jsonl"
    p.write_bytes(b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT","S":"Buy",'
                  b'"v":"1","p":"2","i":"x","seq":1}]}\n')
    res = CliRunner().invoke(_app(), ["decode", str(p)])
    assert res.exit_code == 2 and "--venue" in res.output
    res = CliRunner().invoke(_app(), ["decode", str(p), "--venue", "bybit.linear"])
    assert res.exit_code == 0 and json.loads(res.stdout.splitlines()[0])["price"] == "2"


def test_reconnects_start_fresh_sessions_and_files_roll_with_connection_state(tmp_path):
    frames = bybit_frames("bybit_orderbook.1_tardis.jsonl")  # snapshot, then deltas u=+1
    feed = FakeFeed()
    rec = Recorder(tmp_path, roll_size=1)  # every flush publishes a new file
    rec.attach(feed)
    assert feed.taps == [rec]
    s1, s2 = sock(1, NS - 5), sock(2, NS + 50)
    rec.opened(s1)
    rec.frame(s1.id, NS, frames[0], False)          # snapshot
    rec.flush(wait=True)
    rec.frame(s1.id, NS + 1, frames[1], False)      # delta: continues in the next file
    rec.flush(wait=True)
    rec.closed(s1.id, NS + 40, "connection lost")
    rec.opened(s2)                                  # the reconnect is its own socket
    rec.frame(s2.id, NS + 60, frames[0], False)
    rec.close()
    assert feed.taps == []
    files = archive.archive_files(tmp_path)
    assert len(files) == 3
    heads = [[(r.kind, r.data.get("continued", False) if r.kind == "C" else None)
              for r in archive.read_archive(f)][0] for f in files]
    assert heads == [("C", False), ("C", True), ("C", True)]
    recs = [r for f in files for r in archive.read_archive(f)]
    assert [(r.kind, r.conn[-2:]) for r in recs] == [
        ("C", ".1"), ("T", ".1"), ("C", ".1"), ("T", ".1"), ("C", ".1"), ("D", ".1"), ("C", ".2"), ("T", ".2"),
        ("D", ".2")]
    events = list(archive.decode_archive(tmp_path))
    names = [type(e).__name__ for e in events]
    # one session across the first two files: the delta applies without a gap
    assert names[:3] == ["Connected", "BookUpdate", "BookUpdate"]
    assert "Gap" not in names[:3]
    assert names[3:] == ["Gap", "Disconnected", "Connected", "BookUpdate", "Gap", "Disconnected"]


def test_torn_or_damaged_archives_are_detected(tmp_path):
    rec = Recorder(tmp_path)
    rec.connection(CONN, "bybit", "public/linear")
    for i in range(3):
        rec.raw(CONN, NS + i, b'{"op":"pong","i":%d}' % i, False)
        rec.flush(wait=True)
    rec.close()
    f = archive.archive_files(tmp_path)[0]
    data = f.read_bytes()
    full = archive.valid_length(f)
    assert full == len(data)
    f.write_bytes(data[:-3])
    with pytest.raises(archive.ArchiveError):
        list(archive.read_archive(f))
    kept = list(archive.read_archive(f, strict=False))  # every complete block; the torn one (the D) is gone
    assert [r.kind for r in kept] == ["C", "T", "T", "T"]
    assert archive.valid_length(f) < full
    bad = bytearray(data)
    bad[-2] ^= 0xFF
    f.write_bytes(bytes(bad))
    with pytest.raises(archive.ArchiveError, match="damaged"):
        list(archive.read_archive(f))
    (tmp_path / "x.twraw.zst").write_bytes(b"not an archive")
    with pytest.raises(archive.ArchiveError):
        list(archive.read_archive(tmp_path / "x.twraw.zst"))


def test_zstd_tool_reads_the_lines(tmp_path):
    import shutil

    if shutil.which("zstdcat") is None:
        pytest.skip("zstdcat not installed")
    rec = Recorder(tmp_path)
    rec.connection(CONN, "bybit", "public/linear")
    rec.raw(CONN, NS, b'{"op":"pong"}', False)
    rec.close()
    out = subprocess.run(["zstdcat", str(archive.archive_files(tmp_path)[0])], capture_output=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith(b"#tickwire-raw 1 ") and lines[2] == b'T %d %s {"op":"pong"}' % (NS, CONN.encode())


def _app():
    import tickwire.cli as cli

    return cli.app


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
