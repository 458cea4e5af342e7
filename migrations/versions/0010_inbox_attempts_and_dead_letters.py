"""inbox: failed attempts of an update, and the dead letters

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 09:20:00

An update whose processing fails is no longer settled at once: processed_updates counts
its failed attempts in a row (attempts, the last error's class, the first failure, when
the next attempt is due) and after inbox.max_attempts it moves to dead_letters, with its
raw JSON, for an admin to retry.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("last_error", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("first_failed_at", db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("retry_at", db.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "dead_letters",
        sa.Column(
            "update_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=100), nullable=False),
        sa.Column("retried_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("retried_by", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_dead_letters")),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.drop_column("retry_at")
        batch_op.drop_column("first_failed_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("attempts")
