"""The README's settings table lists every setting the code reads, and nothing else (issue 13): the fields of the
Settings model, nested sections included, as `EMAILDOCTOR_<SECTION>__<NAME>` variables, against the table's rows
(full names, and the short `__NAME` forms, which belong to their row's section)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from plugin.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def settings_the_code_reads() -> set[str]:
    names = set()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), section
        names |= {f"EMAILDOCTOR_{section.upper()}__{name.upper()}" for name in model.model_fields}
    return names


def settings_the_readme_lists() -> set[str]:
    names: set[str] = set()
    for row in (line for line in README.splitlines() if line.startswith("| `EMAILDOCTOR_")):
        cell = row.split(" | ")[0]
        section = re.search(r"EMAILDOCTOR_([A-Z0-9]+)__", cell)
        assert section is not None, row
        names |= set(re.findall(r"EMAILDOCTOR_[A-Z0-9]+__[A-Z0-9_]+", cell))
        names |= {f"EMAILDOCTOR_{section.group(1)}__{short}" for short in re.findall(r"`__([A-Z0-9_]+)`", cell)}
    return names


def test_every_setting_the_code_reads_is_in_the_readme_table() -> None:
    assert sorted(settings_the_code_reads() - settings_the_readme_lists()) == []


def test_the_readme_table_lists_only_settings_the_code_reads() -> None:
    listed = settings_the_readme_lists()
    assert len(listed) > 40
    assert sorted(listed - settings_the_code_reads()) == []
