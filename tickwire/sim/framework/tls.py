"""TLS for the simulators: a throw-away certificate authority made at start-up.

``tickwire sim --tls`` (``Simulator(tls=True)``) serves ``wss://`` and ``https://`` with a server
certificate for ``127.0.0.1``, ``::1``, ``localhost`` (and the bound host) signed by a CA created
for this run. The CA's PEM bundle is written to a file whose path is on the ready line
(``"tls": {"ca_file": ...}``); point clients at it::

    SSL_CERT_FILE=/tmp/tickwire-sim-tls-xxxx/ca.pem   # OpenSSL default paths: Python's ssl default
                                                       # context, websockets, websocket-client,
                                                       # httpx, aiohttp with trust_env
    REQUESTS_CA_BUNDLE=...same path...                 # requests (pybit's REST session)

ccxt reads neither variable: give it ``{"cafile": path}`` in its config.

The certificates come from ``trustme`` (on top of ``cryptography``): ``pip install 'tickwire[tls]'``.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from typing import Iterable

__all__ = ["SimCertificates"]


class SimCertificates:
    """A CA and one server certificate for ``hosts``, with the CA bundle written to ``ca_file``.

    ``directory``: where to write ``ca.pem`` (created if needed, kept on :meth:`cleanup`); by
    default a fresh temporary directory that :meth:`cleanup` removes.
    """

    def __init__(self, hosts: Iterable[str] = ("127.0.0.1", "::1", "localhost"), directory: str | None = None):
        try:
            import trustme
        except ImportError:  # pragma: no cover - trustme is in the test and tls extras
            raise RuntimeError("TLS needs the 'trustme' package: pip install 'tickwire[tls]'") from None
        names = []
        for h in hosts:
            h = h.strip("[]")
            if h and h not in names and h not in ("0.0.0.0", "::"):
                names.append(h)
        self.hosts = names
        self._ca = trustme.CA(organization_name="tickwire simulator")
        self._cert = self._ca.issue_cert(*names)
        self._own_dir = directory is None
        self.directory = tempfile.mkdtemp(prefix="tickwire-sim-tls-") if directory is None else directory
        os.makedirs(self.directory, exist_ok=True)
        self.ca_file = os.path.join(self.directory, "ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_file)

    def server_context(self) -> ssl.SSLContext:
        """The servers' context (TLS 1.2+, the issued certificate and its chain)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this run's CA only (for tests and in-process clients)."""
        ctx = ssl.create_default_context()
        self._ca.configure_trust(ctx)
        return ctx

    def cleanup(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)
