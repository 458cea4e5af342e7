"""instructions and execution records

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 10:11:23.483106
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instructions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("signal_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=True),
        sa.Column("order_type", sa.String(length=8), nullable=True),
        sa.Column("entry", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("stop_loss", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("take_profit", sa.JSON(), nullable=True),
        sa.Column("volume", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("fraction", sa.Numeric(precision=12, scale=10), nullable=True),
        sa.Column("comment", sa.String(length=500), nullable=True),
        sa.Column("issued_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_instructions_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signals.id"],
            name=op.f("fk_instructions_signal_id_signals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instructions")),
        sa.UniqueConstraint("public_id", name=op.f("uq_instructions_public_id")),
    )
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_instructions_device_id_state", ["device_id", "state"], unique=False
        )
        batch_op.create_index(
            "ix_instructions_signal_id_device_id", ["signal_id", "device_id"], unique=False
        )

    op.create_table(
        "execution_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("instruction_id", sa.Integer(), nullable=False),
        sa.Column("signal_id", sa.Integer(), nullable=False),
        sa.Column("ticket", sa.BigInteger(), nullable=True),
        sa.Column("price", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("volume", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("profit", sa.Numeric(precision=20, scale=8), nullable=True),
        sa.Column("code", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=True),
        sa.Column("executed_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_execution_records_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["instruction_id"],
            ["instructions.id"],
            name=op.f("fk_execution_records_instruction_id_instructions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signals.id"],
            name=op.f("fk_execution_records_signal_id_signals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_records")),
        sa.UniqueConstraint(
            "device_id", "report_id", name=op.f("uq_execution_records_device_id_report_id")
        ),
        sa.UniqueConstraint("public_id", name=op.f("uq_execution_records_public_id")),
    )
    with op.batch_alter_table("execution_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_execution_records_instruction_id"), ["instruction_id"], unique=False
        )
        batch_op.create_index(
            "ix_execution_records_signal_id_device_id", ["signal_id", "device_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("execution_records", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_records_signal_id_device_id")
        batch_op.drop_index(batch_op.f("ix_execution_records_instruction_id"))

    op.drop_table("execution_records")
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.drop_index("ix_instructions_signal_id_device_id")
        batch_op.drop_index("ix_instructions_device_id_state")

    op.drop_table("instructions")
