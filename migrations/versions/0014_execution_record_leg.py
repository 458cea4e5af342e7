"""execution records: the leg of a fill

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 15:57:46.027367

A fill of one leg of a split open (EA_PROTOCOL 5.2) names its leg; it is stored with the
fill (NULL for a position that is not split, and for every report before).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("execution_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leg", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("execution_records", schema=None) as batch_op:
        batch_op.drop_column("leg")
