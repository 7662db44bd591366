"""Validation of everything a user can set on a feed, up front, with one-line errors.

A typo in a timer (``ping_intervl_s``) used to surface as a TypeError inside a connection task:
the feed never connected and said nothing. Every timer, limit and venue option is checked here
against what exists before any connection starts (pydantic models derived from the dataclasses
that define them, so a new field is valid the moment it exists), and a bad one is an
:class:`OptionError` naming the key and the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from functools import lru_cache
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

import pydantic

from tickwire.subscription import SpecError

PROXY_SCHEMES = ("http", "socks4", "socks5")
"""Proxy URL schemes the WebSocket side (python-socks via picows) accepts."""


class OptionError(SpecError):
    """A bad option, timer, limit, venue option or proxy: the message names it and the valid ones."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown(what: str, key: str, valid: Iterable[str]) -> OptionError:
    valid = sorted(valid)
    return OptionError(f"unknown {what} {key!r}{did_you_mean(key, valid)}; valid: {', '.join(valid)}")


@lru_cache(maxsize=None)
def _model(cls: type) -> type[pydantic.BaseModel]:
    """A strict pydantic model with the fields of dataclass ``cls`` (extra keys forbidden)."""
    fields: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else ...)  # type: ignore[misc]
        fields[f.name] = (hints[f.name], default)
    return pydantic.create_model(f"{cls.__name__}Options", __config__=pydantic.ConfigDict(extra="forbid"),
                                 **fields)


def check_fields(what: str, cls: type, values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Validate ``values`` as fields of dataclass ``cls``; returns them converted (e.g. "5" -> 5.0)."""
    names = [f.name for f in dataclasses.fields(cls)]
    for k in values:
        if k not in names:
            raise unknown(f"{what}{where}", k, names)
    try:
        model = _model(cls).model_validate(dict(values))
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(x) for x in err["loc"])
        raise OptionError(f"bad {what}{where} {key}={values.get(key)!r}: {err['msg']}") from None
    return {k: getattr(model, k) for k in values}


def check_positive(what: str, values: Mapping[str, Any]) -> None:
    for k, v in values.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            raise OptionError(f"bad {what} {k}={v!r}: must not be negative")


def check_proxy(proxy: str | None) -> None:
    """A proxy URL the connections can use: scheme://host:port (user:password@ allowed)."""
    if not proxy:
        return
    u = urlsplit(proxy)
    shown = proxy.replace(f"{u.username}:{u.password}@", "***@") if u.password else proxy
    if not u.scheme or "://" not in proxy:
        raise OptionError(f"bad proxy {shown!r}: no scheme; use one of {', '.join(s + '://' for s in PROXY_SCHEMES)} "
                          "e.g. socks5://127.0.0.1:1080")
    if u.scheme not in PROXY_SCHEMES:
        raise OptionError(f"bad proxy {shown!r}: scheme {u.scheme!r} is not supported; use one of "
                          f"{', '.join(PROXY_SCHEMES)}")
    try:
        port = u.port
    except ValueError:
        raise OptionError(f"bad proxy {shown!r}: the port is not a number") from None
    if not u.hostname or port is None:
        raise OptionError(f"bad proxy {shown!r}: expected {u.scheme}://HOST:PORT")
