#!/usr/bin/env bash
# Create (or reuse) tests/.venv-sdk with the SDKs of tests/sdk_clients/requirements.txt, from PyPI.
# A second run with the same requirements is a no-op (stamp file keyed on the file's hash).
# Exit 0: ready. Exit 75: PyPI unreachable (the SDK tests skip). Other: a real failure.
# Usage: bash tests/sdk_clients/setup_env.sh         (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${TICKWIRE_SDK_VENV:-$here/../.venv-sdk}"
req="$here/requirements.txt"
py="${PYTHON:-python3}"
want="$(sha256sum "$req" | cut -d' ' -f1) $("$py" -c 'import sys; print(sys.version.split()[0])')"
stamp="$venv/.tickwire-sdk-stamp"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "sdk venv up to date: $venv"
    exit 0
fi
rm -rf "$venv"
"$py" -m venv "$venv"
log="$(mktemp)"
if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >"$log" 2>&1; then
    cat "$log" >&2
    rm -rf "$venv"
    if grep -qiE "could not find a version|connection|network|temporary failure|max retries|timed out|name resolution" "$log"; then
        echo "setup_env: PyPI unreachable" >&2
        rm -f "$log"
        exit 75
    fi
    rm -f "$log"
    exit 1
fi
rm -f "$log"
"$venv/bin/python" - <<'PY'
from importlib.metadata import version
for name in ("pybit", "python-okx", "ccxt", "websocket-client", "websockets", "aiohttp", "requests", "httpx"):
    print(f"  {name} {version(name)}")
PY
echo "$want" > "$stamp"
echo "sdk venv ready: $venv"
