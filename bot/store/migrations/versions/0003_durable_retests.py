"""Durable re-tests: the re-test after a granted fix is a row (``retests``) run by whichever replica holds its
lease, so it survives a restart and posts its result once; a change's Slack view backs off when Slack refuses
it (``changes.show_failures``, ``changes.show_after``).

Re-tests that were running in memory when this migration runs are not carried over (there is no row to carry):
the grant itself is settled and shown as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "retests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("test_user", sa.String(length=320), nullable=False),
        sa.Column("right", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("thread_ts", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress_ts", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("result_text", sa.Text(), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slack_failures", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('testing', 'posting', 'done')", name=op.f("ck_retests_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retests")),
        sa.UniqueConstraint("change_id", name=op.f("uq_retests_change_id")),
    )
    with op.batch_alter_table("retests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retests_request_id"), ["request_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_retests_state_due_at"), ["state", "due_at"], unique=False)
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("show_failures", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("show_after", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_column("show_after")
        batch_op.drop_column("show_failures")
    with op.batch_alter_table("retests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retests_state_due_at"))
        batch_op.drop_index(batch_op.f("ix_retests_request_id"))
    op.drop_table("retests")
