"""The check runner and checklist (pure logic, no server): providers run side by side, one that breaks becomes one
failed row without hiding the others, areas come in a fixed order, output is redacted and carries no control
character."""

from __future__ import annotations

import io
from collections.abc import Mapping

from plugin.checks import CheckResult, failed, passed, render, run_checks, skipped
from plugin.settings import Settings

SECRET = "s3cr3t-value-0123456789"


class Fixed:
    def __init__(self, name: str, area: str, rows: list[CheckResult]) -> None:
        self.name, self.areas, self.rows = name, (area,), rows

    async def run(self, settings: Settings, environ: Mapping[str, str], only: frozenset[str]) -> list[CheckResult]:
        return self.rows


class Broken:
    name = "broken"
    areas = ("slack",)

    async def run(self, settings: Settings, environ: Mapping[str, str], only: frozenset[str]) -> list[CheckResult]:
        raise RuntimeError(f"boom with {SECRET}\x1b[31m")


async def test_a_broken_provider_is_one_failed_row_and_the_others_still_report() -> None:
    providers = [
        Broken(),
        Fixed("store", "store", [passed("store", "store", "fine")]),
        Fixed("m365", "m365", [skipped("m365", "Entra sign-in", "not configured"), passed("m365", "t", "ok")]),
    ]
    report = await run_checks(providers, Settings(), {}, secrets=[SECRET])
    assert [r.area for r in report.results] == ["m365", "m365", "slack", "store"]
    broken = report.results[2]
    assert broken.ok is False and "RuntimeError" in broken.detail
    assert SECRET not in broken.detail and "\x1b" not in broken.detail
    assert report.ok is False and report.to_json()["ok"] is False
    out = io.StringIO()
    render(report, out)
    text = out.getvalue()
    assert "✗ broken checks" in text and "– Entra sign-in: not configured" in text and "✓ store: fine" in text
    assert "1 check(s) failed" in text


async def test_only_runs_the_providers_of_the_areas_asked_for() -> None:
    providers = [Broken(), Fixed("store", "store", [passed("store", "store", "fine")])]
    report = await run_checks(providers, Settings(), {}, only=frozenset({"store"}))
    assert report.ok and [r.name for r in report.results] == ["store"]


def test_markup_from_a_server_is_shown_as_text() -> None:
    out = io.StringIO()
    row = failed("smtp", "[bold]x[/bold]", "[red]said[/red]", "do [link=http://e]this[/link]")
    render(type("R", (), {"results": (row,), "ok": False})(), out)  # type: ignore[arg-type]
    assert "[bold]x[/bold]" in out.getvalue() and "[link=http://e]this[/link]" in out.getvalue()
