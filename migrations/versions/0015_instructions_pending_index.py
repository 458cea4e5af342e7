"""instructions: a partial index of the pending ones, instead of (device, state)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 18:20:00

``ix_instructions_device_id_state`` held every instruction under its state, so each
report moved an entry (acked → filled: out of one part of the index, into another), on
one index page per device of the batch. Polls and the health sweep only ever look for
pending instructions: a partial index of those (``ix_instructions_pending``) answers
them, and a report on an instruction that is no longer pending does not touch it. Queries
by device alone use ``ix_instructions_device_id``, which no report changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.create_index("ix_instructions_device_id", "instructions", ["device_id"])
    op.create_index(
        "ix_instructions_pending",
        "instructions",
        ["device_id", "id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
    op.drop_index("ix_instructions_device_id_state", table_name="instructions")


def downgrade() -> None:
    op.create_index("ix_instructions_device_id_state", "instructions", ["device_id", "state"])
    op.drop_index("ix_instructions_pending", table_name="instructions")
    op.drop_index("ix_instructions_device_id", table_name="instructions")
