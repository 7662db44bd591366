"""A minimal async HTTP/1.1 GET for the few REST calls a feed needs (book snapshots).

Kept tiny on purpose (no extra dependency): one request per connection, JSON body,
Content-Length or chunked encoding, TLS verified by default.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlsplit

import msgspec


async def get_json(url: str, timeout_s: float = 10.0, headers: dict[str, str] | None = None) -> Any:
    async with asyncio.timeout(timeout_s):
        return msgspec.json.decode(await _get(url, headers or {}))


async def _get(url: str, headers: dict[str, str]) -> bytes:
    u = urlsplit(url)
    secure = u.scheme == "https"
    port = u.port or (443 if secure else 80)
    ctx = ssl.create_default_context() if secure else None
    reader, writer = await asyncio.open_connection(u.hostname, port, ssl=ctx)
    try:
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        lines = [f"GET {path} HTTP/1.1", f"Host: {u.netloc}", "Accept: application/json",
                 "Connection: close", "User-Agent: tickwire"] + [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ConnectionError(f"bad HTTP status line from {u.netloc}: {status_line[:80]!r}")
        status = int(parts[1])
        hdrs: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                body += await reader.readexactly(size)
                await reader.readline()
            data = bytes(body)
        elif "content-length" in hdrs:
            data = await reader.readexactly(int(hdrs["content-length"]))
        else:
            data = await reader.read()
        if status >= 400:
            raise ConnectionError(f"HTTP {status} from {u.netloc}{u.path}: {data[:200]!r}")
        return data
    finally:
        writer.close()
