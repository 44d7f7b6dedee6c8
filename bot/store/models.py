"""The tables, as typed SQLAlchemy ORM models. Changing one needs a migration in ``migrations/versions``
(``tests/bot/store/test_migrations.py`` fails while the models and the migrations disagree).

Nothing outside :mod:`bot.store` sees these classes: the store converts rows to :mod:`bot.store.records`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Dialect, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

REQUEST_STATUSES = ("pending", "approved", "denied", "expired", "done", "failed")
CHANGE_STATES = ("approved", "applying", "applied", "verified", "failed")
CHANGE_ORIGINS = ("request", "direct", "time_limit")
RETEST_STATES = ("testing", "posting", "done")


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that takes and returns aware UTC datetimes on every backend.

    SQLite has no time zones: values are stored as naive UTC text (which sorts and compares
    correctly) and come back with ``tzinfo=UTC``. Naive datetimes are refused rather than guessed.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: the store needs timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}  # noqa: RUF012 - SQLAlchemy's declared class attribute


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class RequestRow(Base):
    __tablename__ = "fix_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    right: Mapped[str] = mapped_column(String(32))
    mailbox: Mapped[str] = mapped_column(String(320))
    trustee: Mapped[str] = mapped_column(String(320))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(64))
    origin_channel: Mapped[str] = mapped_column(String(64))
    origin_thread_ts: Mapped[str | None] = mapped_column(String(32))
    origin_test_user: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    card_channel: Mapped[str | None] = mapped_column(String(64))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("kind IN ('grant', 'revoke')", name="kind"),
        CheckConstraint(_one_of("status", REQUEST_STATUSES), name="status"),
        Index(None, "status", "expires_at"),
    )


class AuditRow(Base):
    """The audit log. ``seq`` is assigned by the store under the chain-head lock, never by the database."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recorded_at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    """Canonical JSON of the subject (mailbox, trustee, right …)."""
    result: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(128))
    request_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHeadRow(Base):
    """The single row (``id = 1``) naming the last audit entry: appends lock it, so the chain never forks."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class SnapshotRow(Base):
    __tablename__ = "audit_snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    taken_at: Mapped[datetime] = mapped_column(index=True)
    summary: Mapped[str] = mapped_column(Text)
    rows: Mapped[str] = mapped_column(Text)
    """Every row of the audit as one JSON array: tens of thousands of rows load in one read."""
    row_count: Mapped[int] = mapped_column(Integer)


class IdempotencyKeyRow(Base):
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(index=True)


class ScheduledRunRow(Base):
    __tablename__ = "scheduled_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[datetime] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)


class ChangeRow(Base):
    """One change of rights in Exchange, written before Exchange is touched (see :mod:`bot.pipeline`)."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))
    right: Mapped[str] = mapped_column(String(32))
    mailbox: Mapped[str] = mapped_column(String(320))
    trustee: Mapped[str] = mapped_column(String(320))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime | None]
    """A time-bound grant's end (and its revocation's original due time)."""
    request_id: Mapped[int | None] = mapped_column(Integer, index=True)
    parent_id: Mapped[int | None] = mapped_column(Integer, unique=True)
    """For a time-limit revocation: the grant it ends."""
    requested_by: Mapped[str] = mapped_column(String(128))
    approved_by: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    shown: Mapped[str | None] = mapped_column(String(16))
    """The state that Slack last showed (card, notice): views lag behind and catch up."""
    escalated_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    show_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Slack refused to show the change this many times in a row (reset when it shows it)."""
    show_after: Mapped[datetime | None]
    """A final change Slack refused to show is shown again from then on (back-off), not on every tick."""

    __table_args__ = (
        CheckConstraint("kind IN ('grant', 'revoke')", name="kind"),
        CheckConstraint(_one_of("state", CHANGE_STATES), name="state"),
        CheckConstraint(_one_of("origin", CHANGE_ORIGINS), name="origin"),
        Index(None, "state", "due_at"),
    )


class RetestRow(Base):
    """The re-test after a granted fix: the original user's test run again until it passes or the limit passes,
    by whichever replica holds its lease (see :mod:`bot.retest`)."""

    __tablename__ = "retests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change_id: Mapped[int] = mapped_column(Integer, unique=True)
    """The verified grant the re-test follows."""
    request_id: Mapped[int] = mapped_column(Integer, index=True)
    test_user: Mapped[str] = mapped_column(String(320))
    right: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(64))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None]
    progress_ts: Mapped[str | None] = mapped_column(String(32))
    """The thread message that shows the re-test's progress, then its result."""
    outcome: Mapped[str | None] = mapped_column(String(16))
    result_text: Mapped[str | None] = mapped_column(Text)
    report: Mapped[str | None] = mapped_column(Text)
    """The last test's report as a Slack message (JSON), posted in the thread with the result."""
    posted_at: Mapped[datetime | None]
    """When a replica took the report's post: set in the same transaction that claims it, so it is posted once."""
    slack_failures: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(_one_of("state", RETEST_STATES), name="state"),
        Index(None, "state", "due_at"),
    )
