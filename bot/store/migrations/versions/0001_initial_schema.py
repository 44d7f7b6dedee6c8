"""Initial schema: fix requests, the audit log and its chain head, snapshots, idempotency keys,
scheduled runs, time-bound grants.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first audit entry; the chain head names it until the first append."""


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.bulk_insert(
        sa.table(
            "audit_chain_head", sa.column("id", sa.Integer), sa.column("seq", sa.Integer), sa.column("hash", sa.String)
        ),
        [{"id": 1, "seq": 0, "hash": GENESIS_HASH}],
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("result", sa.String(length=64), nullable=False),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_recorded_at"), ["recorded_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_request_id"), ["request_id"], unique=False)

    op.create_table(
        "audit_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("rows", sa.Text(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_snapshots")),
    )
    with op.batch_alter_table("audit_snapshots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_snapshots_taken_at"), ["taken_at"], unique=False)

    op.create_table(
        "fix_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("right", sa.String(length=32), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("trustee", sa.String(length=320), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("origin_channel", sa.String(length=64), nullable=False),
        sa.Column("origin_thread_ts", sa.String(length=32), nullable=True),
        sa.Column("origin_test_user", sa.String(length=320), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("card_channel", sa.String(length=64), nullable=True),
        sa.Column("card_ts", sa.String(length=32), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('grant', 'revoke')", name=op.f("ck_fix_requests_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'denied', 'expired', 'done', 'failed')",
            name=op.f("ck_fix_requests_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fix_requests")),
    )
    with op.batch_alter_table("fix_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fix_requests_status_expires_at"), ["status", "expires_at"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_claimed_at"), ["claimed_at"], unique=False)

    op.create_table(
        "scheduled_runs",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job", "slot", name=op.f("pk_scheduled_runs")),
    )
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


def downgrade() -> None:
    with op.batch_alter_table("timed_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timed_grants_status_expires_at"))

    op.drop_table("timed_grants")
    op.drop_table("scheduled_runs")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_claimed_at"))

    op.drop_table("idempotency_keys")
    with op.batch_alter_table("fix_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fix_requests_status_expires_at"))

    op.drop_table("fix_requests")
    with op.batch_alter_table("audit_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_snapshots_taken_at"))

    op.drop_table("audit_snapshots")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_request_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_recorded_at"))

    op.drop_table("audit_log")
    op.drop_table("audit_chain_head")
