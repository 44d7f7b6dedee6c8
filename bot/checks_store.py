"""`emaildoctor check` for the store: reachable, schema at this version's Alembic head, writable, and the audit
log's hash chain intact. Read-only: the write test runs inside a transaction that is rolled back, and a SQLite
file that does not exist yet is not created (the bot creates and migrates it at start-up).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import Store, StoreError, create_store_engine, schema
from bot.store.engine import WRITE
from plugin.checks import CheckResult, failed, passed
from plugin.paths import data_dir
from plugin.settings import Settings

_UPGRADE = "Start `emaildoctor bot` once: it upgrades the schema at start-up (every replica may do so safely)."


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None


class StoreChecks:
    name = "store"
    areas: tuple[str, ...] = ("store",)

    async def run(self, settings: Settings, environ: Mapping[str, str], only: frozenset[str]) -> list[CheckResult]:
        url = settings.store.url
        where = make_url(url).render_as_string(hide_password=True)
        path = _sqlite_path(url)
        if path is not None and not path.exists():
            folder = path.parent if str(path.parent) else Path(".")
            if (folder.is_dir() and os.access(folder, os.W_OK)) or folder.expanduser() == data_dir():
                return [passed("store", "store", f"{where}: no database yet; `emaildoctor bot` creates it at start-up")]
            return [
                failed(
                    "store",
                    "store",
                    f"{where}: the folder {folder} does not exist or is not writable",
                    "Create the folder (writable by the bot's user) or set EMAILDOCTOR_STORE__URL to another path.",
                )
            ]
        engine = create_store_engine(url)
        try:
            return await _checks(engine, where, list(settings.secret_values()))
        finally:
            await engine.dispose()


async def _checks(engine: AsyncEngine, where: str, secrets: list[str]) -> list[CheckResult]:
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(schema.current_revision)
    except Exception as exc:  # noqa: BLE001 - any driver error means "not reachable"; its words are shown
        return [
            failed(
                "store",
                "store reachable",
                f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                "Check EMAILDOCTOR_STORE__URL (host, database, user) and that the database server is running.",
            )
        ]
    rows = [passed("store", "store reachable", where)]
    head = schema.head_revision()
    if current != head:
        scripts = ScriptDirectory.from_config(schema.alembic_config())
        known = current is None or current in {script.revision for script in scripts.walk_revisions()}
        fix = _UPGRADE if known else "This database was migrated by a newer emaildoctor: upgrade emaildoctor."
        rows.append(
            failed("store", "migrations current", f"schema at {current or '(empty)'}, this version needs {head}", fix)
        )
        return rows
    rows.append(passed("store", "migrations current", f"schema at {head} (the latest)"))
    try:
        async with engine.execution_options(**WRITE).connect() as connection:
            transaction = await connection.begin()
            await connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
            await transaction.rollback()
    except Exception as exc:  # noqa: BLE001 - a read-only file or user: the driver's words say which
        rows.append(
            failed(
                "store",
                "store writable",
                f"cannot write: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                "Give the bot's database user write access (SQLite: the file and its folder must be writable).",
            )
        )
        return rows
    rows.append(passed("store", "store writable", "a write was accepted (and rolled back)"))
    try:
        report = await Store(engine, secrets=secrets).verify_audit_chain()
    except StoreError as exc:
        rows.append(failed("store", "audit log chain", str(exc), "See the message; the audit log could not be read."))
        return rows
    if report.ok:
        rows.append(
            passed("store", "audit log chain", f"intact: {report.checked} entries, head {report.head_hash[:12]}…")
        )
    else:
        rows.append(
            failed(
                "store",
                "audit log chain",
                f"broken at entry {report.first_bad_seq}: {report.problem}",
                "The audit log was changed outside emaildoctor: restore the database from a backup and compare "
                "with the last published head hash.",
            )
        )
    return rows


PROVIDER = StoreChecks()
