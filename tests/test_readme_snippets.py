"""The README's runnable snippets run as printed (en and zh), only shortened in time."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(name: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / name).read_text(), re.S)


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_the_iterate_snippet_prints_mid_and_spread(readme):
    pytest.importorskip("tickwire.sim")
    blocks = [b for b in python_blocks(readme) if "tickwire.iterate(" in b]
    assert len(blocks) == 1
    code = blocks[0].replace("duration=60", "duration=4")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("import tickwire\n" + code, readme, "exec"), {})
    lines = out.getvalue().split("\n")[:-1]
    assert len(lines) >= 2, out.getvalue()  # one snapshot a second
    for line in lines:
        mid, spread = line.split()
        assert float(mid) > 0 and float(spread) >= 0


def test_the_dotted_names_the_readme_uses_resolve_after_a_plain_import():
    """``tickwire.bus.subscribe(...)``, ``tickwire.sinks.Recorder``, ``tickwire.query(...)`` with
    nothing but ``import tickwire``, in a fresh interpreter (as a user's script starts)."""
    import subprocess
    import sys

    names = set()
    for readme in ("README.md", "README.zh-CN.md"):
        names |= set(re.findall(r"(?<![\w/.-])tickwire(?:\.[A-Za-z_]\w*)+", (ROOT / readme).read_text()))
    names = sorted(names)
    assert {"tickwire.bus.subscribe", "tickwire.sinks.Recorder", "tickwire.query"} <= set(names)
    code = "import tickwire, functools\n" + "".join(
        f"functools.reduce(getattr, {n.split('.')[1:]!r}, tickwire)\n" for n in names)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (names, p.stderr[-1500:])
