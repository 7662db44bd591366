"""Logging for people and for log shippers, with secrets scrubbed from every record.

``setup(level, fmt)`` sends tickwire's logs to stderr: ``text`` is one human line per record
(``12:00:01 INFO  okx/public#1 connected to wss://...``), ``json`` is one JSON object per line
with the structured fields the engine attaches (``venue``, ``conn``, ``event``, ``reason``,
``url``, ``reconnect_in_s``...). Every record passes through :class:`SecretFilter`: any
credential value tickwire has seen (:func:`tickwire.credentials.known_secrets`) is replaced by
``***`` in the message, its arguments and its fields, whatever the level.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
# Fields the engine attaches with ``extra=`` (see net/connection.py); copied into JSON records.
FIELDS = ("venue", "conn", "socket", "event", "url", "reason", "code", "reconnect_in_s", "stream", "attempt",
          "state", "pending", "dropped")
_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def scrub(text: str) -> str:
    from tickwire.credentials import known_secrets

    for s in known_secrets():
        if s and s in text:
            text = text.replace(s, "***")
    return text


class SecretFilter(logging.Filter):
    """Replace every known secret by *** in a record (message, args, extra fields)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:
            msg = str(record.msg)
        clean = scrub(msg)
        if clean != msg or record.args:
            record.msg, record.args = clean, None
        for k in FIELDS:
            v = record.__dict__.get(k)
            if isinstance(v, str):
                record.__dict__[k] = scrub(v)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 6), "level": record.levelname.lower(),
                               "logger": record.name, "msg": record.getMessage()}
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_") and k not in out:
                out[k] = v
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{t} {record.levelname:<7} {record.getMessage()}"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


def setup(level: str = "info", fmt: str = "text", stream: Any = None) -> None:
    """Configure the ``tickwire`` loggers (and quiet the libraries under them) for a CLI run."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; valid: {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; valid: {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(SecretFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_tickwire", False):
            root.removeHandler(h)
    handler._tickwire = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("tickwire").setLevel(level.upper())
    # picows/httpx log every connection at INFO: only with --log-level debug
    for name in ("picows", "httpx", "httpcore", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
