from __future__ import annotations

from pathlib import Path

from plugin.diagnosis import Code
from plugin.troubleshooting import render

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"


def test_committed_guide_matches_the_catalogue() -> None:
    assert GUIDE.read_text(encoding="utf-8") == render(), (
        "docs/troubleshooting.md is out of date: run `python -m plugin.troubleshooting > docs/troubleshooting.md`"
    )


def test_guide_has_a_section_per_code() -> None:
    text = render()
    for code in Code:
        assert f"\n## {code}\n" in text
