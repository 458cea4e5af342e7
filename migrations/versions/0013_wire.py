"""execution records of close_all: no signal

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 15:00:00.000000

A close_all instruction (EA_PROTOCOL 5.3) belongs to no signal, and the device's ack,
fill or error on it is an execution record like any other: its ``signal_id`` may be NULL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("execution_records", schema=None) as batch_op:
        batch_op.alter_column("signal_id", existing_type=sa.INTEGER(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM execution_records WHERE signal_id IS NULL")
    with op.batch_alter_table("execution_records", schema=None) as batch_op:
        batch_op.alter_column("signal_id", existing_type=sa.INTEGER(), nullable=False)
