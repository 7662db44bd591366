"""Run one client runner in this (fresh) process and write its result as JSON.

    python -m bench.runner CLIENT URL VENUE EXPECTED_MSGS --out FILE [--cpu N]

Used by the harness with either the project interpreter or ``bench/.venv-peers/bin/python``;
stdlib only, apart from the client module it loads.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import traceback
from typing import Any

from .common import write_result

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "", None}


def install_loopback_guard() -> None:
    """Refuse name resolution and connects to anything but loopback through the socket module.

    Belt and braces: runners only get 127.0.0.1 URLs and pre-loaded market data; this makes a
    forgotten REST call fail loudly instead of reaching out.
    """
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def _host_ok(host: Any) -> bool:
        if isinstance(host, bytes):
            host = host.decode()
        return host in _LOOPBACK or (isinstance(host, str) and host.startswith("127."))

    def getaddrinfo(host: Any, *a: Any, **k: Any) -> Any:
        if not _host_ok(host):
            raise OSError(f"bench: non-loopback address refused: {host!r}")
        return real_getaddrinfo(host, *a, **k)

    def _check(addr: Any) -> None:
        if isinstance(addr, tuple) and addr and not _host_ok(addr[0]):
            raise OSError(f"bench: non-loopback connect refused: {addr!r}")

    def connect(self: socket.socket, addr: Any) -> Any:
        _check(addr)
        return real_connect(self, addr)

    def connect_ex(self: socket.socket, addr: Any) -> Any:
        _check(addr)
        return real_connect_ex(self, addr)

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]


def prepare_child(cpu: int | None) -> None:
    """What every measured child process does first: pin to its core, loopback only, quiet logs."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    install_loopback_guard()
    logging.basicConfig(level=logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("client")
    ap.add_argument("url")
    ap.add_argument("venue")
    ap.add_argument("expected_msgs", type=int)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cpu", type=int, default=None)
    a = ap.parse_args(argv)
    prepare_child(a.cpu)

    from bench.clients import CLIENTS, NotSupported

    res: dict[str, Any]
    try:
        res = CLIENTS[a.client](a.url, a.venue, a.expected_msgs)
        res["status"] = "ok"
    except NotSupported as e:
        res = {"status": "skip", "reason": str(e) or "not supported"}
    except Exception as e:  # reported in the table, never hidden
        res = {"status": "error", "reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    write_result(res, a.out)


if __name__ == "__main__":
    sys.exit(main())
