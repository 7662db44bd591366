"""Decoder fuzzing, fixed-seed samples (``python -m bench fuzz`` runs a million inputs).

Every venue's session gets corrupted frames (structure-aware mutations of the real captures in
``../shared/recorded`` and of the simulators' frames: truncated, wrong types, missing fields, huge
and deeply nested frames, NaN and negative numbers, wrong compression), interleaved with clean
ones so that books exist for the corruption to hit. Nothing may raise out of a session or hang;
a book the session calls valid holds only good levels; a book that breaks is reported (a Gap).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickwire.sim.framework.mutate import OPS, Mutator
from tickwire.venues import get_venue

pytest.importorskip("tickwire.sim")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import chaos, fuzz  # noqa: E402


@pytest.fixture(scope="module")
def seeds():
    return fuzz.corpus(list(fuzz.VENUES), sim_seconds=1.5, seed=3)


def _of(seeds, venue):
    return {k: v for k, v in seeds.items() if k[0] == venue and v}


@pytest.mark.parametrize("venue", fuzz.VENUES)
def test_a_fixed_seed_sample_finds_nothing(seeds, venue):
    mine = _of(seeds, venue)
    assert mine, f"no seed frames for {venue}"
    t0 = time.perf_counter()
    s = fuzz.fuzz(mine, 4_000, seed=11, batch=200)
    assert s.inputs == 4_000 and s.clean > 1_000 and s.events > 1_000
    assert not s.findings, s.findings
    assert s.max_input_s < 2.0 and time.perf_counter() - t0 < 30
    assert len(s.ops) >= 12  # nearly every kind of corruption was played


@pytest.mark.parametrize("venue", fuzz.VENUES)
def test_recorded_captures_are_seeds(venue):
    rec = fuzz.recorded_seeds()
    if not rec:
        pytest.skip("recorded frames not available (TICKWIRE_RECORDED_DIR)")
    assert any(k[0] == venue for k in rec) or venue == "okxdex"  # (no DEX capture exists)


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
                     | st.text(max_size=12), lambda c: st.lists(c, max_size=4)
                     | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=12)


@pytest.mark.parametrize("venue", fuzz.VENUES)
def test_hypothesis_values_in_any_place_of_a_frame(seeds, venue):
    """Hypothesis draws the frame, the place and the value put there (any JSON, NaN included),
    or one of the mutator's operations; the session already holds books from clean frames."""
    keys = sorted(_of(seeds, venue))
    targets = {k: fuzz.Target(k, seeds[k]) for k in keys}
    stats = fuzz.Stats()
    for t in targets.values():  # books first
        for _ in range(min(200, len(t.tape))):
            t.step(None, None, stats, 2.0, corrupt=False)  # type: ignore[arg-type]

    @settings(max_examples=150, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(key=st.sampled_from(keys), i=st.integers(0, 10**6), value=_json, op=st.sampled_from(OPS + ("value",)),
           r=st.randoms(use_true_random=True))
    def run(key, i, value, op, r):
        t = targets[key]
        payload, binary = t.tape[i % len(t.tape)]
        if op == "value":
            try:
                obj = json.loads(payload)
            except ValueError:
                return
            m = Mutator(r)
            new = m._rebuild(m._walk(obj), lambda c, k: c.__setitem__(k, value))
            if not isinstance(new, (dict, list)):
                return
            payload = json.dumps(new, allow_nan=True).encode()
        else:
            payload, binary, _ = Mutator(r, ops=(op,)).mutate(payload, binary)
        t.fed += 1
        t.feed(payload, binary, op, stats, 2.0)
        assert not stats.findings, stats.findings

    run()


@pytest.mark.parametrize("key", [("bybit", "public/linear"), ("bybit", "private"), ("okx", "public"),
                                 ("okx", "business"), ("bge", "public"), ("okxdex", "dex")])
@pytest.mark.parametrize("frame, binary", [
    (b"[" * 100_000 + b"]" * 100_000, False),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, False),
    (b'{"data":[' + b'["1","2"],' * 100_000 + b'["1","2"]]}', False),
    (b'{"topic":"' + b"x" * (1 << 20) + b'"}', False),
    (b"", False), (b"\xff\xfe\x00", True), (b"\x1f\x8b\x08\x00garbage", True),
    (__import__("gzip").compress(b'{"x":"' + b"0" * (80 << 20) + b'"}'), True),
    (b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[[NaN,"1","0","1"]],'
     b'"bids":[],"ts":"1","seqId":2,"prevSeqId":1,"checksum":0}]}', False),
])
def test_nasty_frames_neither_raise_nor_hang(key, frame, binary):
    s = get_venue(key[0]).decoder(key[1])
    t0 = time.perf_counter()
    out = s.decode_safely(frame, binary, 1)
    s.on_timer(2)
    assert time.perf_counter() - t0 < 2.0
    assert all(type(e).__name__ == "VenueError" for e in out), out


def test_live_reader_path_under_any_garbling_survives_and_is_exact_after():
    """The engine's reader on real sockets: 20 % of the simulator's frames corrupted in every way
    (digits changed too: while that lasts a book may differ from the venue's, undetectably); the
    feed must not raise, and once it stops every book is exact again."""
    case = chaos.Case("okx", "garble-any", [(0.3, "garble=20")], sim_options={"garble_detectable": False},
                      strict_books=False)
    row = asyncio.run(chaos.run_case(case, seconds=2.5, settle_s=1.5))
    assert row.injected > 30 and row.raised == 0
    assert not row.findings, row.findings
    assert row.exact > 0 and row.inexact == 0
