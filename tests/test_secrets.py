"""Secrets never appear in any output: logs at every level and format, errors, reprs, events,
metrics and recordings — with distinctive secret strings, wrong and right, through login
failures (each of these was a way a secret could leak)."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

import tickwire
from tickwire.credentials import Credentials
from tickwire.net import FeedError
from tickwire.sinks import Recorder

pytest.importorskip("tickwire.sim")
from tickwire.sim import Simulator  # noqa: E402

SECRET = "S3CRET-do-not-leak-7f3a9c"
PASSPHRASE = "PASS-do-not-leak-19b2"
KEY = "KEY-do-not-leak-0e1d2c3b4a"
NEEDLES = (SECRET, PASSPHRASE, KEY)


def assert_clean(*texts: object) -> None:
    for t in texts:
        s = t if isinstance(t, str) else repr(t)
        for n in NEEDLES:
            assert n not in s, f"{n!r} leaked in: {s[:300]}"


def test_reprs_and_options_never_show_credentials():
    creds = {"okx": {"api_key": KEY, "secret": SECRET, "passphrase": PASSPHRASE}}
    opts = tickwire.FeedOptions(credentials=creds, proxy=f"http://user:{SECRET}@127.0.0.1:3128")
    c = Credentials(api_key=KEY, secret=SECRET, passphrase=PASSPHRASE)
    assert_clean(repr(opts), str(opts), repr(c), str(c), repr([c]), repr({"okx": c}))


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_wrong_secret_login_failure_leaks_nothing_at_debug(fmt, tmp_path):
    from tickwire import logs

    buf = io.StringIO()
    logs.setup("debug", fmt, stream=buf)
    events = []
    try:
        async with Simulator(venues=["okx"], seed=51, options={"okx": {"api_keys": {KEY: ["wrong", "x"]}}}) as sim:
            with pytest.raises(FeedError) as err:
                async with tickwire.stream("okx:orders:ANY", endpoints=sim.endpoints,
                                           credentials={"okx": {"api_key": KEY, "secret": SECRET,
                                                                "passphrase": PASSPHRASE}}) as feed:
                    rec = Recorder(tmp_path / "data")
                    rec.attach(feed)
                    async with asyncio.timeout(10):
                        async for ev in feed:
                            events.append(ev)
                            rec.add(ev)
            rec.close()
    finally:
        logs.setup("warning", "text")
    assert "login" in str(err.value)
    logging.getLogger("tickwire.test").info("the key was %s", SECRET)  # any record: scrubbed
    out = buf.getvalue()
    assert "connecting to" in out
    assert_clean(out, str(err.value), repr(err.value), *[tickwire.to_json(e).decode() for e in events],
                 *[repr(e) for e in events])
    for f in (tmp_path / "data").rglob("*"):
        if f.is_file():
            assert_clean(f.read_bytes().decode("latin-1"))
            if f.suffix == ".zst":
                from tickwire.sinks.archive import read_archive

                assert_clean(*[r.data for r in read_archive(f)])


def test_cli_with_a_credentials_file_leaks_nothing(tmp_path, capsys):
    from tickwire.cli import main

    path = tmp_path / "creds.json"
    path.write_text(json.dumps({"okx": {"api_key": KEY, "secret": SECRET, "passphrase": PASSPHRASE}}))
    for level in ("debug", "info"):
        with pytest.raises(SystemExit) as e:
            main(["tail", "--sim", "--sim-option", "okx.login_fail_close=false", "--credentials", str(path),
                  "--log-level", level, "--duration", "3", "okx:orders:ANY"])
        out = capsys.readouterr()
        assert e.value.code == 3, out.err
        assert_clean(out.out, out.err)


async def test_metrics_leak_nothing():
    pytest.importorskip("prometheus_client")
    async with Simulator(venues=["okx"], seed=52) as sim:
        with pytest.raises(FeedError):
            async with tickwire.stream("okx:orders:ANY", endpoints=sim.endpoints, metrics_port=0,
                                       credentials={"okx": Credentials(KEY, SECRET, PASSPHRASE)}) as feed:
                from tickwire.metrics import generate_latest

                async with asyncio.timeout(10):
                    async for _ in feed:
                        assert_clean(generate_latest(feed.metrics.registry).decode())
