"""webhook inbox: received, handled, payload

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 09:07:04.092408

processed_at becomes received_at (ids already stored stay, marked handled at that time);
handled_at and payload let an accepted update survive a crash until it is processed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_updates_processed_at"))
        batch_op.alter_column("processed_at", new_column_name="received_at")
        batch_op.add_column(
            sa.Column("handled_at", db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("payload", sa.Text(), nullable=True))
    op.execute("UPDATE processed_updates SET handled_at = received_at")
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_updates_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_processed_updates_handled_at"), ["handled_at"], unique=False
        )


def downgrade() -> None:
    # Updates still pending are dropped with their payload: the old table cannot hold them.
    op.execute("DELETE FROM processed_updates WHERE handled_at IS NULL")
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_updates_handled_at"))
        batch_op.drop_index(batch_op.f("ix_processed_updates_received_at"))
        batch_op.drop_column("payload")
        batch_op.drop_column("handled_at")
        batch_op.alter_column("received_at", new_column_name="processed_at")
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_updates_processed_at"), ["processed_at"], unique=False
        )
