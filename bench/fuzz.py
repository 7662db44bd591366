"""``python -m bench fuzz``: structure-aware fuzzing of every venue's decoder, with hypothesis.

Seeds are the real captures in ``../shared/recorded`` (``TICKWIRE_RECORDED_DIR``) and frames the
simulators send to a feed subscribed to books, trades, tickers, candles and private streams of
every venue. Each input is a seed corrupted by :class:`tickwire.sim.framework.mutate.Mutator`
(truncated, bytes flipped, wrong types, missing or extra keys, numbers that are not numbers,
levels of the wrong shape, nonsense sequence fields, nesting up to 100,000 deep, frames up to
1 MB, duplicate keys, invalid UTF-8, wrong or broken compression, bombs); clean frames of the
same tape are interleaved so the sessions hold books that the corrupt ones hit. Hypothesis
drives it: each example draws a venue tape and a random generator and plays a batch of inputs.

The oracle, for every input:

* nothing raises out of the session (``decode_safely``, and ``on_timer`` / ``drain`` that the
  engine calls next), and no input takes longer than ``--hang-s`` (a watchdog also cuts a hang);
* a book the session calls valid holds only finite non-negative decimal levels with a size > 0
  (the levels an update brought, at every input; every level of every book, every 64 inputs);
* a book that was valid and is not any more was reported (its stream has a Gap open);
* every event encodes (``to_json``), sampled.

The live reader path (picows frames through the engine's compiled reader) is fuzzed by the
simulators' ``garble`` fault under a real feed (``bench/chaos.py``): detectable corruption,
where any valid book must equal the venue's truth, and every kind of corruption, where the feed
must survive and be exact again once it stops.

    python -m bench fuzz                  # >= 1M inputs, writes its section of bench/RESULTS.md
    python -m bench fuzz --quick          # 50k inputs, prints only
    python -m bench fuzz --inputs 200000 --venues okx
"""

from __future__ import annotations

import argparse
import asyncio
from decimal import Decimal
import os
import random
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickwire.model import BookUpdate, to_json
from tickwire.sim.framework.mutate import OPS, Mutator
from tickwire.venues import get_venue
from tickwire.venues.base import Session

RECORDED = Path(os.environ.get("TICKWIRE_RECORDED_DIR", Path(__file__).resolve().parents[2] / "shared" / "recorded"))
VENUES = ("bybit", "okx", "bge", "okxdex")
_DECIMAL = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

Key = tuple[str, str]  # (venue, endpoint)
# VenueError codes of tickwire's own (the others echo the venue's code)
_OWN_CODES = frozenset({"decode", "inflate", "internal", "bad-trade", "bad-level", "unrecognized", "credentials", "rest",
                        "channel-conn-count-error"})


# --------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------


def recorded_seeds(folder: Path = RECORDED) -> dict[Key, list[tuple[bytes, bool]]]:
    """The real captures, per (venue, endpoint) of the decoder that reads them."""
    from tickwire.decode import frame_of_line

    out: dict[Key, list[tuple[bytes, bool]]] = defaultdict(list)
    if not folder.is_dir():
        return out
    for f in sorted(folder.glob("*.jsonl")):
        venue = f.name.split("_", 1)[0]
        if venue not in VENUES:
            continue
        v = get_venue(venue)
        endpoint = v.decode_endpoint("")
        for line in f.read_bytes().splitlines():
            frame = frame_of_line(line)
            if frame:
                out[(venue, endpoint)].append((frame, False))
    return out


SIM_STREAMS = {
    "bybit": ["bybit.linear:orderbook.50:BTCUSDT", "bybit.linear:orderbook.1:ETHUSDT", "bybit.linear:publicTrade:BTCUSDT",
              "bybit.linear:tickers:BTCUSDT", "bybit.linear:kline.1:BTCUSDT", "bybit.linear:allLiquidation:BTCUSDT",
              "bybit.spot:orderbook.200:BTCUSDT", "bybit.spot:publicTrade:BTCUSDT", "bybit.spot:tickers:BTCUSDT",
              "bybit.inverse:orderbook.50:BTCUSD", "bybit.option:orderbook.25:BTC-27DEC26-100000-C",
              "bybit.option:publicTrade:BTC", "bybit.option:tickers:BTC-27DEC26-100000-C",
              "bybit:order:ANY", "bybit:execution:ANY", "bybit:position:ANY", "bybit:wallet:ANY"],
    "okx": ["okx:books:BTC-USDT", "okx:books5:ETH-USDT", "okx:bbo-tbt:BTC-USDT-SWAP", "okx:books-l2-tbt:SOL-USDT",
            "okx:trades:BTC-USDT", "okx:trades-all:ETH-USDT", "okx:tickers:BTC-USDT", "okx:candle1m:BTC-USDT",
            "okx:funding-rate:BTC-USDT-SWAP", "okx:mark-price:BTC-USDT-SWAP", "okx:open-interest:BTC-USDT-SWAP",
            "okx:index-tickers:BTC-USDT", "okx:orders:ANY", "okx:account:ANY", "okx:positions:ANY"],
    "bge": ["bge:orderbook.0:BTC_USDT", "bge:orderbook.9:ETH_USDT", "bge:percent10:BTC_USDT", "bge:fills:BTC_USDT",
            "bge:ticker:BTC_USDT", "bge:candles.1min:BTC_USDT", "bge:orders:ALL", "bge:assets:BTC_USDT"],
    "okxdex": ["okxdex:price:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
               "okxdex:trades:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
               "okxdex:dex-token-candle1m:1/0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
               "okxdex:price-info:501/So11111111111111111111111111111111111111112",
               "okxdex:dex-market-new-signal-openapi:501"],
}


async def _capture(venues: list[str], seconds: float, seed: int) -> dict[Key, list[tuple[bytes, bool]]]:
    import tickwire
    from tickwire.credentials import SIM_TEST_KEY
    from tickwire.net.tap import SocketInfo, Tap
    from tickwire.sim import Simulator

    out: dict[Key, list[tuple[bytes, bool]]] = defaultdict(list)
    socks: dict[str, Key] = {}

    class Capture(Tap):
        def opened(self, sock: SocketInfo) -> None:
            socks[sock.id] = (sock.venue, sock.endpoint)

        def frame(self, sock_id: str, recv_ns: int, payload: bytes, binary: bool) -> None:
            key = socks.get(sock_id)
            if key is not None and len(out[key]) < 20_000:
                out[key].append((bytes(payload), binary))

    opts = {"bybit": {"speed": 4}, "okx": {"checksum": "legacy"}, "bge": {"book_interval_ms": 100}}
    specs = [s for v in venues for s in SIM_STREAMS[v]]
    async with Simulator(venues=venues, seed=seed, options={v: opts[v] for v in venues if v in opts}) as sim:
        creds = {v: SIM_TEST_KEY for v in venues}
        feed = tickwire.stream(*specs, endpoints=sim.endpoints, credentials=creds, instruments=False)
        f = await feed.__aenter__()
        f.add_tap(Capture())
        try:
            async with asyncio.timeout(seconds):
                async for _ in f:
                    pass
        except TimeoutError:
            pass
        finally:
            await feed.__aexit__(None, None, None)
    return out


def sim_seeds(venues: list[str], seconds: float = 3.0, seed: int = 1) -> dict[Key, list[tuple[bytes, bool]]]:
    """Frames the simulators sent to a feed of books, trades, tickers, candles and private streams."""
    return asyncio.run(_capture(venues, seconds, seed))


def corpus(venues: list[str], sim_seconds: float = 3.0, seed: int = 1) -> dict[Key, list[tuple[bytes, bool]]]:
    out: dict[Key, list[tuple[bytes, bool]]] = defaultdict(list)
    for k, v in recorded_seeds().items():
        if k[0] in venues:
            out[k] += v
    for k, v in sim_seeds(venues, sim_seconds, seed).items():
        out[k] += v
    return dict(out)


# --------------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------------


class _Hang(BaseException):
    """Raised by the watchdog in the middle of an input that takes too long."""


def _good(x: Any, size: bool = False) -> bool:
    if not isinstance(x, str) or _DECIMAL.fullmatch(x) is None:
        return False
    return not size or Decimal(x) > 0


@dataclass
class Stats:
    inputs: int = 0                 # corrupted frames decoded
    clean: int = 0                  # clean frames of the tapes, interleaved
    events: int = 0
    venue_errors: Counter = field(default_factory=Counter)   # code -> count
    internal: Counter = field(default_factory=Counter)       # "internal" errors: exception type -> count
    ops: Counter = field(default_factory=Counter)
    by_key: Counter = field(default_factory=Counter)
    books_checked: int = 0
    gaps: int = 0
    findings: list[str] = field(default_factory=list)
    finding_kinds: Counter = field(default_factory=Counter)
    max_input_s: float = 0.0
    seconds: float = 0.0

    def merge(self, o: "Stats") -> None:
        for f in ("inputs", "clean", "events", "books_checked", "gaps"):
            setattr(self, f, getattr(self, f) + getattr(o, f))
        for f in ("venue_errors", "internal", "ops", "by_key", "finding_kinds"):
            getattr(self, f).update(getattr(o, f))
        self.findings += o.findings[: max(0, 50 - len(self.findings))]
        self.max_input_s = max(self.max_input_s, o.max_input_s)


class Target:
    """One decoder session fed a tape of seed frames, clean and corrupted."""

    RENEW = 20_000  # inputs per session (decoders accept every stream they see: bound the state)

    def __init__(self, key: Key, tape: list[tuple[bytes, bool]]) -> None:
        self.key = key
        self.tape = tape
        self.pos = 0
        self.t_ns = 1_700_000_000_000_000_000
        self._new()

    def _new(self) -> None:
        self.session: Session = get_venue(self.key[0]).decoder(self.key[1])
        self.fed = 0
        self.ever_valid: set[str] = set()

    def step(self, rng: random.Random, mut: Mutator, st: Stats, hang_s: float, corrupt: bool | None = None) -> None:
        if self.fed >= self.RENEW:
            self._new()
        self.fed += 1
        payload, binary = self.tape[self.pos % len(self.tape)]
        if corrupt is None:
            corrupt = rng.random() < 0.6
        op = "clean"
        if corrupt:
            if rng.random() < 0.1:  # now and then a frame of elsewhere on the tape
                payload, binary = self.tape[rng.randrange(len(self.tape))]
            payload, binary, op = mut.mutate(payload, binary)
            st.inputs += 1
            st.ops[op] += 1
            st.by_key[f"{self.key[0]}/{self.key[1]}"] += 1
            if rng.random() < 0.5:
                self.pos += 1
        else:
            st.clean += 1
            self.pos += 1
        self.t_ns += 1_000_000
        self.feed(payload, binary, op, st, hang_s)

    def feed(self, payload: bytes, binary: bool, op: str, st: Stats, hang_s: float) -> None:
        s = self.session
        t0 = time.perf_counter()
        try:
            out = s.decode_safely(payload, binary, self.t_ns)
            if self.fed % 50 == 0:
                s.on_timer(self.t_ns)
            out = out + [x for x in s.drain() if hasattr(x, "venue")]
        except _Hang:
            self._finding(st, "hang", f"{self.key}: {op} input took over {hang_s:g}s: {bytes(payload[:120])!r}")
            self._new()
            return
        except Exception as e:  # nothing may raise out of a session
            self._finding(st, "raised", f"{self.key}: {op} input raised {type(e).__name__}: {e}: "
                                        f"{bytes(payload[:160])!r}")
            self._new()
            return
        dt = time.perf_counter() - t0
        if dt > st.max_input_s:
            st.max_input_s = dt
        if dt > hang_s:
            self._finding(st, "slow", f"{self.key}: {op} input took {dt:.2f}s: {bytes(payload[:120])!r}")
        self.check(out, op, payload, st)

    def check(self, out: list, op: str, payload: bytes, st: Stats) -> None:
        st.events += len(out)
        for i, ev in enumerate(out):
            name = type(ev).__name__
            if name == "VenueError":
                st.venue_errors[ev.code] += 1
                if ev.code == "internal":
                    m = re.search(r"\((\w+):", ev.msg)
                    st.internal[f"{self.key[0]}: {m.group(1) if m else '?'}"] += 1
            elif name == "Gap":
                st.gaps += 1
            elif isinstance(ev, BookUpdate) and ev.book is not None and ev.book.valid:
                for lv in list(ev.bids) + list(ev.asks):
                    if not (_good(lv[0]) and _good(lv[1])):
                        self._finding(st, "bad level in a valid book",
                                      f"{self.key}: {op}: level {tuple(lv)!r} accepted into a valid book: "
                                      f"{bytes(payload[:160])!r}")
                        break
            if (st.events + i) % 8 == 0:
                try:
                    to_json(ev)
                except Exception as e:
                    self._finding(st, "unencodable event", f"{self.key}: {op}: {name} does not encode "
                                                           f"({type(e).__name__}: {e})")
        full = self.fed % 64 == 0
        for st_ in self.session.streams.values():
            b = st_.book
            if b is None:
                continue
            topic = st_.sub.topic
            if b.valid:
                self.ever_valid.add(topic)
                if full:
                    st.books_checked += 1
                    for side in (b.bids, b.asks):
                        bad = next(((p, q) for p, q in side.items() if not (_good(p) and _good(q, size=True))), None)
                        if bad is not None:
                            self._finding(st, "bad level in a valid book",
                                          f"{self.key} {topic}: valid book holds {bad!r} (after {op})")
                            break
            elif topic in self.ever_valid and not st_.gap_reported:
                self._finding(st, "broken book without a Gap",
                              f"{self.key} {topic}: the book went invalid and no Gap is open (after {op}): "
                              f"{bytes(payload[:160])!r}")
                self.ever_valid.discard(topic)

    @staticmethod
    def _finding(st: Stats, kind: str, text: str) -> None:
        st.finding_kinds[kind] += 1
        if st.finding_kinds[kind] <= 5:
            st.findings.append(text)


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def _watchdog(seconds: float):  # type: ignore[no-untyped-def]
    def on_alarm(signum: int, frame: Any) -> None:
        raise _Hang()

    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, on_alarm)
        return lambda: signal.setitimer(signal.ITIMER_REAL, seconds), lambda: signal.setitimer(signal.ITIMER_REAL, 0)
    return (lambda: None), (lambda: None)


def fuzz(seeds: dict[Key, list[tuple[bytes, bool]]], n: int, seed: int = 0, batch: int = 250, hang_s: float = 2.0,
         use_hypothesis: bool = True) -> Stats:
    """``n`` corrupted inputs over the tapes; hypothesis draws each batch's tape and generator."""
    keys = sorted(k for k, v in seeds.items() if v)
    targets = {k: Target(k, seeds[k]) for k in keys}
    st = Stats()
    arm, disarm = _watchdog(hang_s * 5)
    t0 = time.perf_counter()

    def play(key_i: int, rng: random.Random) -> None:
        target = targets[keys[key_i % len(keys)]]
        mut = Mutator(rng)
        for _ in range(batch):
            if st.inputs >= n:
                return
            arm()
            try:
                target.step(rng, mut, st, hang_s)
            except _Hang:
                target._finding(st, "hang", f"{target.key}: an input hung (watchdog)")
                target._new()
            finally:
                disarm()

    if use_hypothesis:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as hseed
        from hypothesis import strategies as hs

        examples = max(1, -(-n // batch))

        @hseed(seed)
        @settings(max_examples=examples, database=None, deadline=None, derandomize=False, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(hs.integers(0, 10**6), hs.randoms(use_true_random=True))
        def run(key_i: int, rng: random.Random) -> None:
            play(key_i, rng)

        run()
    rng = random.Random(seed)
    while st.inputs < n:  # whatever hypothesis left (it may stop early on duplicate examples)
        play(rng.randrange(10**6), random.Random(rng.getrandbits(64)))
    st.seconds = time.perf_counter() - t0
    return st


def _worker(args: tuple[dict[Key, list[tuple[bytes, bool]]], int, int, float]) -> Stats:
    seeds, n, seed, hang_s = args
    return fuzz(seeds, n, seed=seed, hang_s=hang_s)


def run_offline(seeds: dict[Key, list[tuple[bytes, bool]]], n: int, jobs: int, seed: int, hang_s: float) -> Stats:
    if jobs <= 1:
        return fuzz(seeds, n, seed=seed, hang_s=hang_s)
    import multiprocessing as mp

    t0 = time.perf_counter()
    per = -(-n // jobs)
    with mp.get_context("fork").Pool(jobs) as pool:
        parts = pool.map(_worker, [(seeds, per, seed + i, hang_s) for i in range(jobs)])
    total = Stats()
    for p in parts:
        total.merge(p)
    total.seconds = time.perf_counter() - t0
    return total


async def run_live(venues: list[str], seconds: float) -> list[Any]:
    """The live reader path: the simulators' garble fault under a real feed (bench/chaos.py)."""
    from . import chaos

    rows = []
    for v in venues:
        detectable = chaos.Case(v, "garble", [(0.3, "garble=20")])
        rows.append(await chaos.run_case(detectable, seconds=seconds, mode="live, detectable garbling 20%"))
        anything = chaos.Case(v, "garble-any", [(0.3, "garble=20")], sim_options={"garble_detectable": False},
                              strict_books=False)
        rows.append(await chaos.run_case(anything, seconds=seconds, mode="live, any garbling 20%"))
    return rows


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def report(st: Stats, seeds: dict[Key, list[tuple[bytes, bool]]], live: list[Any], jobs: int) -> str:
    rate = st.inputs / st.seconds if st.seconds else 0.0
    lines = [
        f"**Offline** (`decode_safely`, then `on_timer`/`drain`): {st.inputs:,} corrupted inputs "
        f"(+{st.clean:,} clean frames interleaved) in {st.seconds:.0f} s on {jobs} process{'es' if jobs > 1 else ''}: "
        f"**{rate:,.0f} inputs/s**; slowest input {st.max_input_s * 1000:.0f} ms; {st.events:,} events, "
        f"{st.gaps:,} Gaps, {st.books_checked:,} full book checks.",
        "",
        f"Seeds: {sum(len(v) for v in seeds.values()):,} frames — " + ", ".join(
            f"{k[0]}/{k[1]} {len(v):,}" for k, v in sorted(seeds.items())) + ".",
        "",
        "| operation | inputs |",
        "|---|---:|",
    ]
    lines += [f"| {op} | {st.ops[op]:,} |" for op in OPS if st.ops[op]]
    lines += ["", "| venue/endpoint | inputs |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in sorted(st.by_key.items())]
    own = {k: v for k, v in st.venue_errors.items() if k in _OWN_CODES}
    echoed = sum(v for k, v in st.venue_errors.items() if k not in _OWN_CODES)
    lines += ["", "VenueErrors: " + ", ".join(f"{k} {v:,}" for k, v in sorted(own.items(), key=lambda x: -x[1]))
              + f", and {echoed:,} refusals carrying the (corrupted) venue's own code."]
    if st.internal:
        lines += ["", "Of which `internal` (a dialect raised, the session caught it): " +
                  ", ".join(f"{k} {v:,}" for k, v in st.internal.most_common(12)) + "."]
    lines += ["", "**Findings (offline):** " + (", ".join(f"{k}: {v}" for k, v in st.finding_kinds.items())
                                                  if st.finding_kinds else "none") + "."]
    lines += [f"- {f}" for f in st.findings[:20]]
    if live:
        from . import chaos

        lines += ["", "**Live** (the engine's reader on real sockets: the simulators' `garble` fault under a feed; "
                      "detectable corruption must leave every valid book equal to the venue's truth; any corruption "
                      "must leave the feed running and exact again once it stops):", "", chaos.table(live), ""]
        fl = [f"- {r.venue} {r.case}: {x}" for r in live for x in r.findings]
        lines += ["**Findings (live):** " + ("none." if not fl else "")] + fl[:20]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("fuzz")
    g.add_argument("--inputs", type=int, default=None, help="fuzz: corrupted inputs (default 1,000,000; --quick 50,000)")
    g.add_argument("--jobs", type=int, default=None, help="fuzz: processes (default: the CPUs available)")
    g.add_argument("--fuzz-seed", type=int, default=1, help="fuzz: seed")
    g.add_argument("--hang-s", type=float, default=2.0, help="fuzz: an input slower than this is a finding")
    g.add_argument("--no-live", action="store_true", help="fuzz: skip the live reader part")


def run(args: argparse.Namespace, ctx: dict) -> tuple[str, str]:
    venues = [v.strip() for v in getattr(args, "venues", ",".join(VENUES)).split(",") if v.strip()]
    n = args.inputs or (50_000 if args.quick else 1_000_000)
    jobs = args.jobs or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    t0 = time.monotonic()
    print("fuzz: collecting seeds (recorded captures, simulator frames)...", file=sys.stderr, flush=True)
    seeds = corpus(venues, 2.0 if args.quick else 4.0, args.fuzz_seed)
    print(f"fuzz: {sum(map(len, seeds.values())):,} seed frames; {n:,} inputs on {jobs} processes",
          file=sys.stderr, flush=True)
    st = run_offline(seeds, n, jobs, args.fuzz_seed, args.hang_s)
    live = [] if args.no_live else asyncio.run(run_live(venues, 3.0 if args.quick else 8.0))
    body_main = report(st, seeds, live, jobs)
    print(body_main)
    from .results import tickwire_version

    section = "\n".join([
        "## Decoder fuzzing",
        "",
        f"Run at {time.strftime('%Y-%m-%d %H:%M:%S %Z')} with `{ctx.get('command', 'python -m bench fuzz')}` "
        f"({time.monotonic() - t0:.0f} s; tickwire {tickwire_version()}). Seeds: the recorded captures and the "
        "simulators' frames; corruption: `tickwire.sim.framework.mutate`; driven by hypothesis; oracle and method: "
        "bench/fuzz.py and bench/README.md.",
        "",
        body_main,
        "",
    ])
    live_bad = sum(len(r.findings) for r in live)
    summary = (f"{st.inputs:,} inputs at {st.inputs / st.seconds:,.0f}/s, {sum(st.finding_kinds.values())} offline "
               f"findings, {live_bad} live findings")
    return section, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--venues", default=",".join(VENUES))
    add_arguments(ap)
    _, summary = run(ap.parse_args(argv), {})
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
