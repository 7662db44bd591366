"""The Chinese documentation stays in step with the English: every command shown in a code block
of one (a line starting with ``tickwire `` or ``make ``) is shown in the other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [
    ("README.md", "README.zh-CN.md"),
    ("docs/recording.md", "docs/zh/recording.md"),
    ("docs/scale-out.md", "docs/zh/scale-out.md"),
]


def commands(text: str) -> list[str]:
    """Command lines in fenced code blocks, whitespace normalized, a trailing ``# comment`` cut
    (comments are translated, commands are not)."""
    out: list[str] = []
    fence = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("```"):
            fence = not fence
            continue
        if not fence:
            continue
        s = s.removeprefix("$ ")
        if s.startswith(("tickwire ", "make ")):
            s = re.split(r"\s+#", s, maxsplit=1)[0]
            out.append(" ".join(s.split()))
    return out


def test_the_extraction():
    text = "x\n```\n$ tickwire tail a   b  # 注释\nmake test\nprint()\n```\ntickwire not-in-a-block\n"
    assert commands(text) == ["tickwire tail a b", "make test"]


@pytest.mark.parametrize("en,zh", PAIRS, ids=[zh for _, zh in PAIRS])
def test_every_command_is_in_both_languages(en, zh):
    e = commands((ROOT / en).read_text(encoding="utf-8"))
    z = commands((ROOT / zh).read_text(encoding="utf-8"))
    assert e, f"no command found in {en}"
    missing_zh = [c for c in dict.fromkeys(e) if c not in z]
    missing_en = [c for c in dict.fromkeys(z) if c not in e]
    assert not missing_zh, f"commands of {en} missing from {zh} (add them, with the text around them):\n" + \
        "\n".join(missing_zh)
    assert not missing_en, f"commands of {zh} missing from {en}:\n" + "\n".join(missing_en)


@pytest.mark.parametrize("en,zh", PAIRS, ids=[zh for _, zh in PAIRS])
def test_the_pages_link_each_other_and_are_chinese(en, zh):
    ztext = (ROOT / zh).read_text(encoding="utf-8")
    assert Path(en).name in "\n".join(ztext.splitlines()[:5]), f"{zh} links its English page at the top"
    prose = re.sub(r"```.*?```", "", ztext, flags=re.S)
    cjk = len(re.findall(r"[\u4e00-\u9fff]", prose))
    assert cjk > 1000, f"{zh}: {cjk} Chinese characters outside code blocks"


def test_the_english_readme_links_the_chinese_one_at_the_top():
    head = "\n".join((ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:5])
    assert "README.zh-CN.md" in head
