"""`emaildoctor check`: the result model, the runner and the checklist.

Each package adds its checks through the ``emaildoctor.checks`` entry-point group (``pyproject.toml``), so the
core runs Microsoft 365, Slack and store checks without importing them: a provider names the areas it covers
and returns :class:`CheckResult` rows. Providers run concurrently; one that fails unexpectedly becomes one
failed row, never a traceback, and never hides the others' results.

``ok`` is True (works), False (fails: ``fix`` says what to do) or None (not configured, or not verifiable
without changing something: ``detail`` says which).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import Protocol, TextIO

from rich.console import Console
from rich.markup import escape

from plugin.errors import EmailDoctorError
from plugin.redact import redact
from plugin.settings import Settings

AREAS = ("m365", "exchange", "smtp", "directory", "slack", "store")
"""The areas of ``--only``, in the order the checklist shows them."""


@dataclass(frozen=True)
class CheckResult:
    area: str
    name: str
    ok: bool | None
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}

    def redacted(self, secrets: Iterable[str]) -> CheckResult:
        values = list(secrets)
        return replace(
            self, name=redact(self.name, values), detail=redact(self.detail, values), fix=redact(self.fix, values)
        )


def passed(area: str, name: str, detail: str) -> CheckResult:
    return CheckResult(area, name, True, detail)


def failed(area: str, name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(area, name, False, detail, fix)


def skipped(area: str, name: str, detail: str) -> CheckResult:
    return CheckResult(area, name, None, detail)


class CheckProvider(Protocol):
    """Checks for some areas. ``run`` returns rows only for areas in ``only``; it does no I/O for the others."""

    name: str
    areas: tuple[str, ...]

    async def run(self, settings: Settings, environ: Mapping[str, str], only: frozenset[str]) -> list[CheckResult]: ...


def discover_providers() -> list[CheckProvider]:
    from plugin.checks_local import PROVIDERS  # the core's own checks (directory file, SMTP servers)

    found: list[CheckProvider] = list(PROVIDERS)
    found += [entry.load() for entry in entry_points(group="emaildoctor.checks")]
    return found


@dataclass(frozen=True)
class CheckReport:
    results: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok is not False for result in self.results)

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "checks": [result.to_json() for result in self.results]}


async def run_checks(
    providers: Sequence[CheckProvider],
    settings: Settings,
    environ: Mapping[str, str],
    only: frozenset[str] = frozenset(AREAS),
    secrets: Iterable[str] = (),
) -> CheckReport:
    """Run every provider that covers an area in ``only``, side by side; results in :data:`AREAS` order."""
    chosen = [p for p in providers if only & set(p.areas)]
    outcomes = await asyncio.gather(*(_run_one(p, settings, environ, only) for p in chosen))
    rows = [row for rows in outcomes for row in rows if row.area in only]
    rank = {area: index for index, area in enumerate(AREAS)}
    ordered = sorted(enumerate(rows), key=lambda item: (rank.get(item[1].area, len(rank)), item[0]))
    values = list(secrets)
    return CheckReport(tuple(row.redacted(values) for _, row in ordered))


async def _run_one(
    provider: CheckProvider, settings: Settings, environ: Mapping[str, str], only: frozenset[str]
) -> list[CheckResult]:
    area = next(a for a in provider.areas if a in only)
    try:
        return await provider.run(settings, environ, only)
    except EmailDoctorError as exc:
        return [failed(area, f"{provider.name} checks", str(exc), "Fix the problem named, then run the check again.")]
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others' results
        return [
            failed(
                area,
                f"{provider.name} checks",
                f"the checks stopped: {type(exc).__name__}: {exc}",
                "Report this as a bug in emaildoctor, with the output of emaildoctor check --json.",
            )
        ]


_MARKS = {True: ("✓", "green"), False: ("✗", "red"), None: ("–", "dim")}


def render(report: CheckReport, out: TextIO) -> None:
    """The checklist: one line per check (✓ works, ✗ fails, – not configured or not verified), each ✗ with its fix.

    The rows are redacted already; markup is escaped so text from servers cannot style or hide anything."""
    console = Console(file=out, highlight=False, soft_wrap=True)
    area = None
    for row in report.results:
        if row.area != area:
            area = row.area
            console.print(f"[bold]{escape(area)}[/bold]")
        mark, colour = _MARKS[row.ok]
        console.print(f"  [{colour}]{mark}[/{colour}] {escape(row.name)}: {escape(row.detail)}")
        if row.ok is False and row.fix:
            console.print(f"      [yellow]fix:[/yellow] {escape(row.fix)}")
        elif row.fix:
            console.print(f"      note: {escape(row.fix)}")
    failures = sum(1 for row in report.results if row.ok is False)
    console.print(
        "All configured checks passed." if report.ok else f"{failures} check(s) failed: fix them, then run again."
    )
