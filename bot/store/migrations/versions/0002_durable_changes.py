"""Durable changes: one row per change to Exchange, written before Exchange is touched; time limits become
revocation rows retried until done (they replace ``timed_grants``).

Carried over: a time-bound grant not yet revoked (active, being revoked, or failed for good) becomes a
due revocation; a request approved but never finished becomes a change to drive to completion.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TIME_LIMIT_ACTOR = "emaildoctor (time limit)"

_TIMES = {"expires_at", "due_at", "created_at", "updated_at", "finished_at", "decided_at", "claimed_at", "revoked_at"}


def _table(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c, sa.DateTime(timezone=True)) if c in _TIMES else sa.column(c) for c in columns))


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands times back naive (they are stored as UTC)."""
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)


_changes = _table(
    "changes", "id", "kind", "origin", "right", "mailbox", "trustee", "duration_seconds", "expires_at",
    "request_id", "parent_id", "requested_by", "approved_by", "state", "due_at", "attempts", "created_at",
    "updated_at", "finished_at",
)  # fmt: skip
_timed = _table(
    "timed_grants", "id", "right", "mailbox", "trustee", "expires_at", "request_id", "granted_by", "created_at",
    "status", "claimed_by", "claimed_at", "revoked_at", "detail",
)  # fmt: skip
_requests = _table(
    "fix_requests", "id", "kind", "right", "mailbox", "trustee", "duration_seconds", "requested_by", "status",
    "decided_by", "decided_at",
)  # fmt: skip


def _timed_grants_table() -> None:
    op.create_table(
        "timed_grants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("right", sa.String(length=32), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("trustee", sa.String(length=320), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("granted_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'revoking', 'revoked', 'failed')", name=op.f("ck_timed_grants_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timed_grants")),
    )
    with op.batch_alter_table("timed_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_timed_grants_status_expires_at"), ["status", "expires_at"], unique=False)


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("right", sa.String(length=32), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("trustee", sa.String(length=320), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("approved_by", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shown", sa.String(length=16), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('grant', 'revoke')", name=op.f("ck_changes_kind")),
        sa.CheckConstraint(
            "state IN ('approved', 'applying', 'applied', 'verified', 'failed')", name=op.f("ck_changes_state")
        ),
        sa.CheckConstraint("origin IN ('request', 'direct', 'time_limit')", name=op.f("ck_changes_origin")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
        sa.UniqueConstraint("parent_id", name=op.f("uq_changes_parent_id")),
    )
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_changes_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_changes_state_due_at"), ["state", "due_at"], unique=False)
    _carry_over()
    with op.batch_alter_table("timed_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timed_grants_status_expires_at"))
    op.drop_table("timed_grants")


def _carry_over() -> None:
    bind = op.get_bind()
    now = datetime.now(UTC)
    pending = bind.execute(
        sa.select(_timed).where(_timed.c.status.in_(("active", "revoking", "failed"))).order_by(_timed.c.id)
    ).all()
    for grant in pending:
        bind.execute(
            _changes.insert().values(
                kind="revoke", origin="time_limit", right=grant.right, mailbox=grant.mailbox, trustee=grant.trustee,
                expires_at=_utc(grant.expires_at), request_id=grant.request_id, requested_by=TIME_LIMIT_ACTOR,
                approved_by=grant.granted_by, state="approved", due_at=_utc(grant.expires_at), attempts=0,
                created_at=_utc(grant.created_at), updated_at=now,
            )
        )  # fmt: skip
    approved = bind.execute(sa.select(_requests).where(_requests.c.status == "approved").order_by(_requests.c.id))
    for request in approved.all():
        decided = _utc(request.decided_at) or now
        expires = decided + timedelta(seconds=request.duration_seconds) if request.duration_seconds else None
        values = {
            "right": request.right, "mailbox": request.mailbox, "trustee": request.trustee,
            "request_id": request.id, "approved_by": request.decided_by or "unknown", "state": "approved",
            "attempts": 0, "created_at": decided, "updated_at": now, "expires_at": expires,
        }  # fmt: skip
        change_id = bind.execute(
            _changes.insert()
            .values(
                kind=request.kind, origin="request", duration_seconds=request.duration_seconds,
                requested_by=request.requested_by, due_at=now, **values,
            )
            .returning(_changes.c.id)
        ).scalar_one()  # fmt: skip
        if expires is not None:
            bind.execute(
                _changes.insert().values(
                    kind="revoke", origin="time_limit", parent_id=change_id, requested_by=TIME_LIMIT_ACTOR,
                    due_at=expires, **values,
                )
            )  # fmt: skip


def downgrade() -> None:
    _timed_grants_table()
    bind = op.get_bind()
    waiting = bind.execute(
        sa.select(_changes).where(_changes.c.origin == "time_limit", _changes.c.state.not_in(("verified", "failed")))
    ).all()
    for change in waiting:
        bind.execute(
            _timed.insert().values(
                right=change.right, mailbox=change.mailbox, trustee=change.trustee, expires_at=_utc(change.expires_at),
                request_id=change.request_id, granted_by=change.approved_by, created_at=_utc(change.created_at),
                status="active",
            )
        )  # fmt: skip
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_changes_state_due_at"))
        batch_op.drop_index(batch_op.f("ix_changes_request_id"))
    op.drop_table("changes")
