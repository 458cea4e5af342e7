"""trade management: device settings, state, alerts, position events

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 14:39:20.040196

Protocol v1.1 (EA_PROTOCOL section 5): per-device sizing, take-profit split, breakeven,
trailing, guards and protections; the latest device state; health alerts once per cause;
position events. Instructions gain the frozen v1.1 fields of an open, a skip reason, and
close_all (no signal, no symbol). Existing devices keep trading exactly as before
(fixed lots, the first take profit only matters to v1.1 devices).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_alerts",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("raised_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_alerts_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "cause", name=op.f("pk_device_alerts")),
    )
    op.create_table(
        "device_states",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("ea_name", sa.String(length=64), nullable=False),
        sa.Column("ea_version", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("build", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("balance", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("equity", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("margin_free", sa.Numeric(precision=20, scale=8), nullable=False),
        sa.Column("leverage", sa.Integer(), nullable=False),
        sa.Column("trade_allowed", sa.Boolean(), nullable=False),
        sa.Column("company", sa.String(length=128), nullable=True),
        sa.Column("server", sa.String(length=128), nullable=True),
        sa.Column("positions", sa.JSON(), nullable=False),
        sa.Column("symbols", sa.JSON(), nullable=False),
        sa.Column("received_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_states_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_states")),
    )
    op.create_table(
        "position_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.String(length=64), nullable=False),
        sa.Column("instruction_id", sa.Integer(), nullable=False),
        sa.Column("signal_id", sa.Integer(), nullable=True),
        sa.Column("leg", sa.Integer(), nullable=True),
        sa.Column("ticket", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("price", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("volume", sa.Numeric(precision=18, scale=8), nullable=True),
        sa.Column("profit", sa.Numeric(precision=20, scale=8), nullable=True),
        sa.Column("stop_loss", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("take_profit", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("executed_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_position_events_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["instruction_id"],
            ["instructions.id"],
            name=op.f("fk_position_events_instruction_id_instructions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signals.id"],
            name=op.f("fk_position_events_signal_id_signals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_position_events")),
        sa.UniqueConstraint(
            "device_id", "report_id", name=op.f("uq_position_events_device_id_report_id")
        ),
        sa.UniqueConstraint("public_id", name=op.f("uq_position_events_public_id")),
    )
    with op.batch_alter_table("position_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_position_events_device_id_executed_at", ["device_id", "executed_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_position_events_instruction_id"), ["instruction_id"], unique=False
        )
        batch_op.create_index(
            "ix_position_events_signal_id_device_id", ["signal_id", "device_id"], unique=False
        )

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "sizing_mode",
                sa.String(length=16),
                nullable=False,
                server_default=sa.text("'fixed'"),
            )
        )
        batch_op.add_column(
            sa.Column("risk_percent", sa.Numeric(precision=8, scale=4), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "risk_of", sa.String(length=8), nullable=False, server_default=sa.text("'balance'")
            )
        )
        batch_op.add_column(sa.Column("risk_money_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("max_lots", sa.Numeric(precision=18, scale=8), nullable=True))
        batch_op.add_column(
            sa.Column(
                "tp_mode", sa.String(length=8), nullable=False, server_default=sa.text("'first'")
            )
        )
        batch_op.add_column(sa.Column("tp_shares", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("breakeven_after_leg", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "breakeven_offset_points", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )
        batch_op.add_column(sa.Column("trailing_distance_points", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "trailing_step_points", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )
        batch_op.add_column(
            sa.Column(
                "trailing_start",
                sa.String(length=16),
                nullable=False,
                server_default=sa.text("'at_open'"),
            )
        )
        batch_op.add_column(sa.Column("max_spread_points", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_distance_points", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_open_positions", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("daily_loss_limit_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("symbols_allowed", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("symbols_denied", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(sa.Column("trading_hours", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("loss_limit_tripped_at", db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("loss_limit_resumed_at", db.types.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sizing", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("legs", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("management", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("guards", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("skip_reason", sa.String(length=32), nullable=True))
        batch_op.alter_column("signal_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.alter_column(
            "action",
            existing_type=sa.VARCHAR(length=8),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
        batch_op.alter_column("symbol", existing_type=sa.VARCHAR(length=64), nullable=True)

    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reference_price", sa.Numeric(precision=20, scale=10), nullable=True)
        )

    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notify_closes", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("user_settings", schema=None) as batch_op:
        batch_op.drop_column("notify_closes")

    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_column("reference_price")

    op.execute("DELETE FROM instructions WHERE action = 'close_all'")
    with op.batch_alter_table("instructions", schema=None) as batch_op:
        batch_op.alter_column("symbol", existing_type=sa.VARCHAR(length=64), nullable=False)
        batch_op.alter_column(
            "action",
            existing_type=sa.String(length=16),
            type_=sa.VARCHAR(length=8),
            existing_nullable=False,
        )
        batch_op.alter_column("signal_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("skip_reason")
        batch_op.drop_column("guards")
        batch_op.drop_column("management")
        batch_op.drop_column("legs")
        batch_op.drop_column("sizing")

    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("loss_limit_resumed_at")
        batch_op.drop_column("loss_limit_tripped_at")
        batch_op.drop_column("trading_hours")
        batch_op.drop_column("symbols_denied")
        batch_op.drop_column("symbols_allowed")
        batch_op.drop_column("daily_loss_limit_minor")
        batch_op.drop_column("max_open_positions")
        batch_op.drop_column("max_distance_points")
        batch_op.drop_column("max_spread_points")
        batch_op.drop_column("trailing_start")
        batch_op.drop_column("trailing_step_points")
        batch_op.drop_column("trailing_distance_points")
        batch_op.drop_column("breakeven_offset_points")
        batch_op.drop_column("breakeven_after_leg")
        batch_op.drop_column("tp_shares")
        batch_op.drop_column("tp_mode")
        batch_op.drop_column("max_lots")
        batch_op.drop_column("risk_money_minor")
        batch_op.drop_column("risk_of")
        batch_op.drop_column("risk_percent")
        batch_op.drop_column("sizing_mode")

    with op.batch_alter_table("position_events", schema=None) as batch_op:
        batch_op.drop_index("ix_position_events_signal_id_device_id")
        batch_op.drop_index(batch_op.f("ix_position_events_instruction_id"))
        batch_op.drop_index("ix_position_events_device_id_executed_at")

    op.drop_table("position_events")
    op.drop_table("device_states")
    op.drop_table("device_alerts")
