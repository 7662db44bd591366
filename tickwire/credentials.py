"""API credentials: from the environment or a config file, never logged or printed.

Environment: ``TICKWIRE_<VENUE>_API_KEY``, ``TICKWIRE_<VENUE>_SECRET`` and
``TICKWIRE_<VENUE>_PASSPHRASE`` (VENUE upper-cased, e.g. ``OKX``, ``OKXDEX``, ``BGE``, ``BYBIT``;
Bybit and BG Exchange need no passphrase).
Config file (``--credentials FILE`` / ``load_file``): TOML or JSON
``{"okx": {"api_key": "...", "secret": "...", "passphrase": "..."}}``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field


_SECRETS: set[str] = set()


def known_secrets() -> frozenset[str]:
    """Every secret and passphrase (and full API key) seen by this process: the log filter
    (:mod:`tickwire.logs`) replaces them wherever they appear."""
    return frozenset(_SECRETS)


class CredentialsError(ValueError):
    """A credentials file that is missing, unreadable or malformed (the message names it)."""


@dataclass(frozen=True)
class Credentials:
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    passphrase: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        for v in (self.api_key, self.secret, self.passphrase):
            if v and len(v) >= 4:
                _SECRETS.add(v)

    def __repr__(self) -> str:  # never show secrets, not even the key
        return f"Credentials(api_key={redact(self.api_key)}, secret=***, passphrase=***)"

    __str__ = __repr__


# The key every simulator accepts (`tickwire sim`); used by `stream(sim=True)` when no
# credentials are configured. Not a secret.
SIM_TEST_KEY = Credentials(api_key="sim-key", secret="sim-secret", passphrase="sim-passphrase")
_SECRETS.difference_update({"sim-key", "sim-secret", "sim-passphrase"})


def redact(value: str) -> str:
    """``abcd…wxyz``-style hint for keys (enough to tell two keys apart), ``***`` if short."""
    return f"{value[:3]}…{value[-2:]}" if len(value) >= 12 else "***"


def from_env(venue: str, environ: dict[str, str] | None = None) -> Credentials | None:
    env = os.environ if environ is None else environ
    prefix = f"TICKWIRE_{venue.upper()}_"
    key, secret = env.get(prefix + "API_KEY"), env.get(prefix + "SECRET")
    if not key or not secret:
        return None
    return Credentials(api_key=key, secret=secret, passphrase=env.get(prefix + "PASSPHRASE", ""))


def load_file(path: str) -> dict[str, Credentials]:
    """Credentials per venue from a TOML or JSON file; :class:`CredentialsError` names what is wrong
    (never a value from the file)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise CredentialsError(f"cannot read credentials file {path}: {e.strerror or e}") from None
    try:
        if path.endswith(".toml"):
            import tomllib

            data = tomllib.loads(raw.decode())
        elif path.endswith(".json"):
            data = json.loads(raw)
        else:
            try:
                import tomllib

                data = tomllib.loads(raw.decode())
            except Exception:
                data = json.loads(raw)
    except Exception:
        raise CredentialsError(f"credentials file {path} is neither valid TOML nor JSON; expected e.g. "
                               '{"okx": {"api_key": "...", "secret": "...", "passphrase": "..."}}') from None
    if not isinstance(data, dict):
        raise CredentialsError(f"credentials file {path}: expected a table of venue -> credentials")
    out: dict[str, Credentials] = {}
    for venue, v in data.items():
        if not isinstance(v, dict) or not isinstance(v.get("api_key"), str) or not isinstance(v.get("secret"), str):
            raise CredentialsError(f"credentials file {path}: [{venue}] needs api_key and secret strings "
                                   "(and passphrase for OKX / OKX DEX)")
        extra = sorted(set(v) - {"api_key", "secret", "passphrase"})
        if extra:
            raise CredentialsError(f"credentials file {path}: [{venue}] has unknown keys {', '.join(extra)}; "
                                   "valid: api_key, secret, passphrase")
        out[venue] = Credentials(api_key=v["api_key"], secret=v["secret"], passphrase=str(v.get("passphrase", "")))
    return out


def resolve(venue: str, given: dict | None = None) -> Credentials | None:
    """Explicit credentials first, then the environment."""
    if given and venue in given and given[venue] is not None:
        c = given[venue]
        return c if isinstance(c, Credentials) else Credentials(**c)
    return from_env(venue)
