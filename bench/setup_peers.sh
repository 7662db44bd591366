#!/usr/bin/env bash
# Create bench/.venv-peers with the peer feed handlers the benchmark compares against
# (cryptofeed, ccxt/ccxt.pro, pybit, python-okx), pinned in bench/requirements-peers.txt.
# Separate from the project venv on purpose: the peers' dependencies never leak into tickwire.
# Usage: bash bench/setup_peers.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-peers"
py="${PYTHON:-python3}"

"$py" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
if ! "$venv/bin/python" -m pip install -q -r "$here/requirements-peers.txt" -c "$here/constraints-peers.txt"; then
    echo "setup_peers: pinned dependency set not available; installing the four peers with their own deps" >&2
    "$venv/bin/python" -m pip install -q -r "$here/requirements-peers.txt"
fi
"$venv/bin/python" - <<'PY'
from importlib.metadata import version
for name in ("cryptofeed", "ccxt", "pybit", "python-okx", "websockets", "aiohttp", "websocket-client", "uvloop"):
    print(f"  {name} {version(name)}")
PY
echo "peers venv ready: $venv"
