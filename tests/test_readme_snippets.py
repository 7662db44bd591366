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
