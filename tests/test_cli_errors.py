"""Every user error on the command line is one or two lines on stderr and an exit code, never a
traceback (each case below was observed as a 77-98 line traceback or as silence)."""

from __future__ import annotations

import json

import pytest

from tickwire.cli import main

SPEC = "bybit.linear:tickers:BTCUSDT"


def run(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err

LOOP = "bybit=ws://127.0.0.1:9"


@pytest.mark.parametrize("argv, code, words", [
    (["tail", "--sim", "--timer", "bybit.ping_intervl_s=5", SPEC], 2, ["ping_intervl_s", "ping_interval_s"]),
    (["tail", "--sim", "--timer", "bybit.ping_interval_s=abc", SPEC], 2, ["ping_interval_s='abc'"]),
    (["tail", "--sim", "--timer", "nope", SPEC], 2, ["--timer must look like"]),
    (["tail", "--sim", "--limit", "0", SPEC], 2, ["--limit must be at least 1"]),
    (["tail", "--sim", "--limit", "-5", SPEC], 2, ["--limit must be at least 1"]),
    (["tail", "--sim", "--duration", "0", SPEC], 2, ["--duration"]),
    (["tail", "--sim", "--limit", "x", SPEC], 2, ["--limit", "valid integer"]),
    (["tail", "--sim", "--credentials", "/nonexistent/creds.toml", SPEC], 2, ["cannot read credentials file"]),
    (["tail", "--proxy", "socks5h://127.0.0.1:1080", SPEC], 2, ["socks5h", "http, socks4, socks5"]),
    (["tail", "--proxy", "127.0.0.1:1080", SPEC], 2, ["no scheme"]),
    (["tail", "--network", "testnet", "okx:books:BTC-USDT"], 2, ["okx has no 'testnet' network", "demo"]),
    (["tail", "--network", "bybit=testnet,okx", SPEC], 2, ["--network must be"]),
    (["tail", "okx:books"], 2, ["expected VENUE[.MARKET]:CHANNEL:SYMBOL"]),
    (["tail", "--sim", "--fault", "nope", SPEC], 2, ["unknown fault 'nope'", "drop-every"]),
    # (an --endpoint on loopback: were the check to regress, nothing would reach a real venue)
    (["tail", "--fault", "drop-every=5s", "--duration", "3", "--endpoint", LOOP, SPEC], 2, ["--fault needs --sim", "local simulator"]),
    (["record", "--fault", "drop-every=5s", "--seed", "3", "--duration", "3", "--endpoint", LOOP, "-o", "{tmp}/d", SPEC], 2,
     ["--fault, --seed need --sim"]),
    (["collect", "--bus", "nats://127.0.0.1:1", "--sim-option", "bybit.speed=2", "--duration", "3", "--endpoint", LOOP,
      SPEC], 2, ["--sim-option needs --sim"]),
    (["tail", "--venue-option", "okx.prot=8443", "--endpoint", "okx=ws://127.0.0.1:9", "--duration", "3",
      "okx:books:BTC-USDT"], 2, ["'prot'", "did you mean 'port'"]),
    (["sim", "--venues", "bybitt"], 2, ["bybitt", "bge, bybit, okx, okxdex"]),
    (["sim", "--fault", "drop-every=soon"], 2, ["'soon'", "5s"]),
    (["record", "--sim", "--kinds", "nope", "-o", "{tmp}/d", SPEC], 2, ["unknown kinds", "trades"]),
    (["record", "--sim", "--timer", "bybit.pong_timeout=1", "-o", "{tmp}/d", SPEC], 2, ["pong_timeout_s"]),
    (["record", "--config", "{tmp}/bad.toml"], 2, ["unknown key 'stream'", "did you mean 'streams'"]),
    (["record", "--credentials", "{tmp}/creds.json", "-o", "{tmp}/d", SPEC], 2, ["needs api_key and secret"]),
    (["tail", "--log-level", "loud", SPEC], 2, ["unknown log level 'loud'", "debug, info, warning, error"]),
    (["nope"], 2, ["No such command"]),
])
def test_one_line_errors_with_exit_codes(capsys, tmp_path, argv, code, words):
    (tmp_path / "bad.toml").write_text('stream = ["bybit.linear:tickers:BTCUSDT"]\n')
    (tmp_path / "creds.json").write_text(json.dumps({"okx": {"api_key": "k", "secret_key": "TOPSECRET-123"}}))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    got, out, err = run(capsys, *argv)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert got == code, err
    assert len(errors) == 1 and "Traceback" not in err, err
    assert all(w in errors[0] for w in words), errors[0]
    assert "TOPSECRET-123" not in err + out
    assert not (tmp_path / "d").exists()  # nothing created by a run that could not start


def test_version(capsys):
    from tickwire import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"tickwire {__version__}"


def test_help_shows_defaults_and_networks(capsys):
    code, out, _ = run(capsys, "record", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "[default: 2]" in text and "[default: 300]" in text and "[default: ./data]" in text
    assert "okx: mainnet, demo, aws" in text and "bybit: mainnet, testnet, demo" in text
    code, out, _ = run(capsys, "demo", "--help")
    text = " ".join(out.split())
    assert "Comma-separated venues [default:" in text and "seconds ." not in text and "venues ." not in text


def test_connection_states_are_one_line_each_on_stderr(capsys):
    code, out, err = run(capsys, "tail", "--endpoint", "bybit=ws://127.0.0.1:9", "--max-retries", "2", SPEC)
    assert code == 3
    lines = err.strip().splitlines()
    assert sum("connecting to ws://127.0.0.1:9" in x for x in lines) == 3
    assert sum("next attempt in" in x for x in lines) == 2
    assert "gave up after 3 failed attempts" in lines[-1] and lines[-1].startswith("error:")


def test_json_logs_carry_structured_fields(capsys):
    code, out, err = run(capsys, "tail", "--log-format", "json", "--endpoint", "bybit=ws://127.0.0.1:9",
                         "--max-retries", "1", SPEC)
    recs = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    assert code == 3 and recs
    assert {r["event"] for r in recs} >= {"connecting", "disconnected"}
    assert all(r["venue"] == "bybit" and r["conn"] == "bybit/public/linear#1" for r in recs)
