"""The few REST calls a feed needs (book snapshots), made with ``httpx``.

Why a maintained client rather than a hand-written GET: the REST request must go where the
WebSocket goes, through the feed's ``proxy`` (HTTP CONNECT for https, plain forwarding for
http, SOCKS5) and with the feed's TLS settings (``verify_tls=False`` included). ``httpx``
does all of that (SOCKS5 through its ``socks`` extra), plus chunked bodies, timeouts and TLS.

The calls are rare (a few per book resync), so each makes its own client and closes it:
no connection outlives the call, and nothing is shared across event loops.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
"""Proxy URL schemes the REST client can use (``socks5h``: the proxy resolves host names)."""

_default_ctx: ssl.SSLContext | None = None


def _default_ssl_context() -> ssl.SSLContext:
    """Verified TLS with the default CA store (as the WebSocket side); made once, then shared."""
    global _default_ctx
    if _default_ctx is None:
        _default_ctx = ssl.create_default_context()
    return _default_ctx


def redact(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@`` (for messages), with or
    without a ``scheme://`` in front."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}{sep}***@{authority.rpartition('@')[2]}{slash}{tail}"


def check_proxy(proxy: str) -> None:
    """ValueError (credentials redacted) if ``proxy`` is not a URL the REST client can use."""
    u = urlsplit(proxy)
    scheme = u.scheme.lower() if "://" in proxy else ""
    if scheme not in PROXY_SCHEMES or not u.hostname:
        raise ValueError(
            f"proxy {redact(proxy)!r}: scheme {scheme or '(none)'!r} cannot be used for REST requests; "
            f"use a URL like http://host:port with scheme http, https or socks5 (or socks5h)")


async def get_json(url: str, *, timeout_s: float = 10.0, proxy: str | None = None,
                   ssl_context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> Any:
    """GET ``url`` and decode its JSON body (msgspec).

    ``proxy``: ``http://``, ``https://``, ``socks5://`` or ``socks5h://`` URL (credentials in it
    are used, never shown), else ValueError. ``ssl_context``: None means verified TLS with the
    default CA store; pass the feed's context (unverified when it has ``verify_tls=False``).
    The whole call is bounded by ``timeout_s`` (TimeoutError). HTTP status >= 400, a refused
    connection, a proxy or TLS failure: ConnectionError naming host and path (never the query).
    """
    if proxy:
        check_proxy(proxy)
    u = urlsplit(url)
    where = f"{u.hostname}{':' + str(u.port) if u.port else ''}{u.path or '/'}"
    hdrs = {"Accept": "application/json", "User-Agent": "tickwire"}
    if headers:
        hdrs.update(headers)
    secret = urlsplit(proxy).password if proxy else None
    try:
        async with asyncio.timeout(timeout_s):
            async with httpx.AsyncClient(proxy=proxy or None, verify=ssl_context or _default_ssl_context(),
                                         timeout=httpx.Timeout(timeout_s), trust_env=False,
                                         follow_redirects=False) as client:
                resp = await client.get(url, headers=hdrs)
    except httpx.TimeoutException as e:
        raise TimeoutError(f"GET {where}: no reply within {timeout_s:g} s") from e
    except TimeoutError:
        raise TimeoutError(f"GET {where}: no reply within {timeout_s:g} s") from None
    except httpx.HTTPError as e:
        text = str(e) or type(e).__name__
        if secret:
            text = text.replace(secret, "***")
        via = f" via proxy {redact(proxy)}" if proxy else ""
        raise ConnectionError(f"GET {where}{via}: {type(e).__name__}: {text}") from (None if secret else e)
    if resp.status_code >= 400:
        raise ConnectionError(f"HTTP {resp.status_code} from {where}: {resp.content[:200]!r}")
    return msgspec.json.decode(resp.content)
